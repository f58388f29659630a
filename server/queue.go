package server

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errQueueFull refuses a request when too many are already waiting for the model.
var errQueueFull = errors.New("the server is busy: too many requests are waiting for the model")

// queue hands the model to up to slots requests at a time (the engine's Parallel: one on a backend
// that runs one generation at a time), in arrival order, with at most max waiting. A request takes a
// ticket first (refused at once when the queue is full, so that an HTTP handler can
// still answer 503), then waits for its turn, then releases the ticket.
//
// A page's message takes a reservation instead (reserve): a place counted against the bound, so that
// the answer cannot be refused once the message is stored, but one that neither holds the model nor
// stands in line until the page opens the answer's stream (join, in wait). A page that never connects
// then holds nothing up.
type queue struct {
	mu       sync.Mutex
	max      int
	slots    int       // tickets that may hold the model together
	running  int       // tickets that hold it
	waiting  []*ticket // in arrival order
	reserved int       // reservations not yet in line
	depth    func(float64)
}

type ticketState int

const (
	ticketWaiting ticketState = iota
	ticketRunning
	ticketReserved
	ticketDone
)

type ticket struct {
	q     *queue
	state ticketState
	turn  chan struct{} // closed when the ticket gets the model
	moved chan struct{} // signalled when a ticket ahead left the queue
}

func newQueue(max int, depth func(float64)) *queue {
	return &queue{max: max, slots: 1, depth: depth}
}

// setSlots sets how many tickets hold the model together (at least one), and gives the new places to
// waiting tickets.
func (q *queue) setSlots(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.slots = max(n, 1)
	moved := false
	for q.running < q.slots && len(q.waiting) > 0 {
		q.startLocked(q.waiting[0])
		q.waiting = q.waiting[1:]
		moved = true
	}
	if moved {
		q.notifyMoved(0)
		q.depth(float64(len(q.waiting)))
	}
}

// startLocked gives t the model.
func (q *queue) startLocked(t *ticket) {
	q.running++
	t.state = ticketRunning
	close(t.turn)
}

// enqueue takes a ticket, which holds the model at once when it is free.
func (q *queue) enqueue() (*ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fullLocked() {
		return nil, errQueueFull
	}
	t := q.newTicket()
	q.line(t)
	return t, nil
}

// capacity is the most tickets the queue holds: slots running, max waiting.
func (q *queue) capacity() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.max + q.slots
}

// enqueueN takes n tickets at once (the choices of one request), or none when they would not all fit.
func (q *queue) enqueueN(n int) ([]*ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running+len(q.waiting)+q.reserved+n > q.max+q.slots {
		return nil, errQueueFull
	}
	ts := make([]*ticket, n)
	for i := range ts {
		ts[i] = q.newTicket()
		q.line(ts[i])
	}
	return ts, nil
}

// reserve takes a reservation: a place that wait turns into a place in line.
func (q *queue) reserve() (*ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fullLocked() {
		return nil, errQueueFull
	}
	t := q.newTicket()
	t.state = ticketReserved
	q.reserved++
	return t, nil
}

func (q *queue) newTicket() *ticket {
	return &ticket{q: q, turn: make(chan struct{}), moved: make(chan struct{}, 1)}
}

// fullLocked reports whether a new ticket would be refused: those running, those waiting and the
// reservations fill the model's slots and the max places in line. A reservation is counted as if in
// line, since it may join the line at any time.
func (q *queue) fullLocked() bool {
	return q.running+len(q.waiting)+q.reserved >= q.max+q.slots
}

// line gives t the model if a slot is free, else a place at the end of the line.
func (q *queue) line(t *ticket) {
	if q.running < q.slots {
		q.startLocked(t)
		return
	}
	t.state = ticketWaiting
	q.waiting = append(q.waiting, t)
	q.depth(float64(len(q.waiting)))
}

// join puts a reserved ticket in line; other tickets are left as they are.
func (t *ticket) join() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.state == ticketReserved {
		q.reserved--
		q.line(t)
	}
}

// position is the ticket's place among the waiting (1 = next), or 0 when it holds the model or left.
func (t *ticket) position() int {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	for i, w := range t.q.waiting {
		if w == t {
			return i + 1
		}
	}
	return 0
}

// wait puts a reserved ticket in line, then blocks until the ticket holds the model. While it waits,
// progress gets the queue position at the start, whenever it changes, and every heartbeat (so that a
// stream notices a gone client); an error from progress or the end of ctx stops the wait. The caller
// releases the ticket in every case.
func (t *ticket) wait(ctx context.Context, heartbeat time.Duration, progress func(pos int) error) error {
	t.join()
	select {
	case <-t.turn:
		return nil
	default:
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	report := func() error {
		if pos := t.position(); pos > 0 && progress != nil {
			return progress(pos)
		}
		return nil
	}
	if err := report(); err != nil {
		return err
	}
	for {
		select {
		case <-t.turn:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.moved:
		case <-tick.C:
		}
		if err := report(); err != nil {
			return err
		}
	}
}

// release gives the ticket's slot to the next waiting ticket, or leaves the queue. It is idempotent.
func (t *ticket) release() {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	switch t.state {
	case ticketRunning:
		q.running--
		if len(q.waiting) == 0 || q.running >= q.slots {
			break
		}
		next := q.waiting[0]
		q.waiting = q.waiting[1:]
		q.startLocked(next)
		q.notifyMoved(0)
	case ticketReserved:
		q.reserved--
	case ticketWaiting:
		for i, w := range q.waiting {
			if w == t {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				q.notifyMoved(i)
				break
			}
		}
	}
	t.state = ticketDone
	q.depth(float64(len(q.waiting)))
}

// notifyMoved tells the waiting tickets from index i on that their position changed.
func (q *queue) notifyMoved(i int) {
	for _, w := range q.waiting[i:] {
		select {
		case w.moved <- struct{}{}:
		default:
		}
	}
}
