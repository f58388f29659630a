package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestQueueOrderAndBound(t *testing.T) {
	var depth float64
	var mu sync.Mutex
	q := newQueue(2, func(d float64) { mu.Lock(); depth = d; mu.Unlock() })
	first, err := q.enqueue()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.wait(context.Background(), time.Second, nil); err != nil {
		t.Fatalf("a free model must be had at once: %v", err)
	}
	second, _ := q.enqueue()
	third, _ := q.enqueue()
	if _, err := q.enqueue(); !errors.Is(err, errQueueFull) {
		t.Fatalf("fourth ticket: err = %v, want errQueueFull", err)
	}
	if !q.full() || second.position() != 1 || third.position() != 2 {
		t.Fatalf("full %v, positions %d %d", q.full(), second.position(), third.position())
	}
	mu.Lock()
	if depth != 2 {
		t.Fatalf("depth = %v, want 2", depth)
	}
	mu.Unlock()

	// The third reports its position as it moves up, and gets the model after the second. Each waiter
	// reports its position when it joins the line and when it moves (the heartbeat is an hour away), and
	// the test moves the line only after the reports it expects.
	var order []string
	var wg sync.WaitGroup
	var omu sync.Mutex
	secondPos, thirdPos := make(chan int, 8), make(chan int, 8)
	letSecondGo := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := second.wait(context.Background(), time.Hour, func(pos int) error { secondPos <- pos; return nil }); err != nil {
			t.Error(err)
		}
		omu.Lock()
		order = append(order, "second")
		omu.Unlock()
		<-letSecondGo
		second.release()
	}()
	if pos := nextPos(t, secondPos); pos != 1 {
		t.Fatalf("second joined at position %d, want 1", pos)
	}
	go func() {
		defer wg.Done()
		err := third.wait(context.Background(), time.Hour, func(pos int) error { thirdPos <- pos; return nil })
		if err != nil {
			t.Error(err)
		}
		omu.Lock()
		order = append(order, "third")
		omu.Unlock()
		third.release()
	}()
	if pos := nextPos(t, thirdPos); pos != 2 {
		t.Fatalf("third joined at position %d, want 2", pos)
	}
	first.release()
	if pos := nextPos(t, thirdPos); pos != 1 {
		t.Fatalf("third moved to position %d when the first left, want 1", pos)
	}
	close(letSecondGo)
	wg.Wait()
	if len(order) != 2 || order[0] != "second" || order[1] != "third" {
		t.Fatalf("order = %v", order)
	}
	if q.full() || q.running != 0 {
		t.Fatal("queue not free after every ticket was released")
	}
}

// nextPos is the next position a waiting ticket reports; ten seconds without one fail the test.
func nextPos(t *testing.T, reports <-chan int) int {
	t.Helper()
	select {
	case pos := <-reports:
		return pos
	case <-time.After(10 * time.Second):
		t.Fatal("no position reported in 10 s")
		return 0
	}
}

func TestQueueLeaveWhileWaiting(t *testing.T) {
	q := newQueue(4, func(float64) {})
	holder, _ := q.enqueue()
	waiter, _ := q.enqueue()
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("client gone")
	errc := make(chan error, 1)
	go func() { errc <- waiter.wait(ctx, time.Hour, nil) }()
	cancel(stop)
	if err := <-errc; !errors.Is(err, stop) {
		t.Fatalf("wait = %v, want the cancel cause", err)
	}
	waiter.release()
	waiter.release() // idempotent
	if waiter.position() != 0 || len(q.waiting) != 0 {
		t.Fatal("a cancelled ticket stays in the queue")
	}
	holder.release()
	if q.running != 0 {
		t.Fatal("the model stays taken after the holder released it")
	}

	// A progress error (a gone client noticed on the heartbeat) also ends the wait.
	holder, _ = q.enqueue()
	waiter, _ = q.enqueue()
	gone := errors.New("write failed")
	calls := 0
	err := waiter.wait(context.Background(), 5*time.Millisecond, func(int) error {
		if calls++; calls == 3 {
			return gone
		}
		return nil
	})
	if !errors.Is(err, gone) {
		t.Fatalf("wait = %v, want the progress error", err)
	}
	waiter.release()
	holder.release()
}

// TestQueueReservations: a reservation counts against the bound but neither holds the model nor stands
// in line until it joins; released unjoined, it gives its place back.
func TestQueueReservations(t *testing.T) {
	q := newQueue(1, func(float64) {})
	r1, err := q.reserve()
	if err != nil {
		t.Fatal(err)
	}
	// The model is still free for a ticket.
	run, err := q.enqueue()
	if err != nil || run.state != ticketRunning {
		t.Fatalf("enqueue beside a reservation: state %v, err %v; want it running", run.state, err)
	}
	// The model runs and one place is reserved: the bound of one waiting is reached.
	if _, err := q.reserve(); !errors.Is(err, errQueueFull) {
		t.Fatalf("second reservation: err = %v, want errQueueFull", err)
	}
	if _, err := q.enqueue(); !errors.Is(err, errQueueFull) {
		t.Fatalf("ticket beyond the reservation: err = %v, want errQueueFull", err)
	}
	// Joining puts the reservation in line behind the running ticket.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r1.wait(ctx, time.Hour, nil); err == nil || r1.position() != 1 {
		t.Fatalf("joined while busy: err %v, position %d; want a cancelled wait at position 1", err, r1.position())
	}
	r1.release()
	run.release()
	// Released unjoined, a reservation gives its place back.
	r2, _ := q.reserve()
	r3, err := q.reserve()
	if err != nil {
		t.Fatalf("two reservations on a free model: %v", err)
	}
	if _, err := q.reserve(); !errors.Is(err, errQueueFull) {
		t.Fatalf("third reservation: err = %v, want errQueueFull", err)
	}
	r2.release()
	r3.release()
	if q.full() || q.reserved != 0 || q.running != 0 {
		t.Fatalf("after releases: full %v, reserved %d, running %d", q.full(), q.reserved, q.running)
	}
}

// full reports whether a new request would be refused.
func (q *queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.fullLocked()
}

// TestQueueSlots gives the model to as many tickets as the engine runs together, and queues the others.
func TestQueueSlots(t *testing.T) {
	q := newQueue(1, func(float64) {})
	q.setSlots(2)
	a, _ := q.enqueue()
	b, _ := q.enqueue()
	c, err := q.enqueue()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.enqueue(); !errors.Is(err, errQueueFull) {
		t.Fatalf("a fourth ticket with two slots and one place in line: err = %v, want errQueueFull", err)
	}
	for i, tk := range []*ticket{a, b} {
		select {
		case <-tk.turn:
		default:
			t.Errorf("ticket %d does not hold a slot", i)
		}
	}
	select {
	case <-c.turn:
		t.Fatal("the third ticket holds the model while two slots are taken")
	default:
	}
	b.release()
	select {
	case <-c.turn:
	default:
		t.Fatal("the third ticket does not get the slot released")
	}
	a.release()
	c.release()
	if q.running != 0 || len(q.waiting) != 0 {
		t.Errorf("after every release: %d running, %d waiting", q.running, len(q.waiting))
	}
}
