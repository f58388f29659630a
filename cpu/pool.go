package cpu

import (
	"runtime"
	"sync/atomic"
)

// spinLimit is how many times a waiting thread polls before it parks on a channel. A forward pass hands
// out hundreds of short jobs per token with little serial work between them, so a worker that keeps
// polling for a few microseconds picks up the next job without a trip through the scheduler; a worker
// that finds nothing to do for longer parks, so an idle backend costs no CPU.
const spinLimit = 1 << 14

// pool is a fixed set of worker goroutines, started once, that run one job at a time together with the
// calling goroutine. A job is a function of the worker index (0 is the caller); it splits the work
// itself, usually by claiming chunks from an atomic counter so that a thread slowed down by the
// operating system takes fewer chunks instead of holding everyone up.
//
// Waking is a generation counter the workers poll, backed by a one-slot channel per worker for the ones
// that have parked; completion is a pending counter the caller polls, backed by a one-slot channel. A
// stale token left in a channel only causes one extra check of the counter, never a missed wake-up.
type pool struct {
	n       int // threads, the caller included
	spin    int // polls before parking: spinLimit, or 0 when there are more threads than Go runs at once
	job     func(worker int)
	gen     atomic.Uint64 // bumped once per job
	pending atomic.Int32  // workers still running the current job
	wake    []chan struct{}
	done    chan struct{}
	quit    atomic.Bool
	exited  chan struct{}
}

func newPool(threads int) *pool {
	p := &pool{n: max(threads, 1), spin: spinLimit, done: make(chan struct{}, 1), exited: make(chan struct{}, threads)}
	if p.n > runtime.GOMAXPROCS(0) {
		p.spin = 0 // a polling thread would hold up one that has work
	}
	for w := 1; w < p.n; w++ {
		c := make(chan struct{}, 1)
		p.wake = append(p.wake, c)
		go p.worker(w, c)
	}
	return p
}

// run calls job(w) for every worker w in 0..n-1 concurrently and returns when all have returned.
func (p *pool) run(job func(worker int)) {
	if p.n == 1 {
		job(0)
		return
	}
	p.job = job
	p.pending.Store(int32(p.n - 1))
	p.gen.Add(1) // publishes job and pending to the workers
	for _, c := range p.wake {
		select {
		case c <- struct{}{}:
		default: // already holds a token
		}
	}
	job(0)
	for spins := 0; p.pending.Load() != 0; spins++ {
		if spins >= p.spin {
			<-p.done
			spins = 0
		}
	}
	p.job = nil
}

func (p *pool) worker(w int, wake chan struct{}) {
	defer func() { p.exited <- struct{}{} }()
	var seen uint64 // the generation before the first job; reading p.gen here could miss a job run before this goroutine started
	for {
		for spins := 0; p.gen.Load() == seen; spins++ {
			if spins >= p.spin {
				<-wake
				spins = 0
			}
			if p.quit.Load() {
				return
			}
		}
		seen = p.gen.Load()
		p.job(w)
		if p.pending.Add(-1) == 0 {
			select {
			case p.done <- struct{}{}:
			default:
			}
		}
	}
}

// close stops the workers and waits for them to exit. The pool must be idle.
func (p *pool) close() {
	p.quit.Store(true)
	for _, c := range p.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	for range p.wake {
		<-p.exited
	}
	p.wake = nil
	p.n = 1
}

// chunks hands out the integers 0..n-1 in contiguous chunks of size (the last one shorter) to whichever
// thread asks next.
type chunks struct {
	next atomic.Int64
	n    int
	size int
}

func (c *chunks) reset(n, size int) {
	c.next.Store(0)
	c.n, c.size = n, max(size, 1)
}

// claim returns the next chunk [lo, hi), or ok == false when all are taken.
func (c *chunks) claim() (lo, hi int, ok bool) {
	lo = int(c.next.Add(int64(c.size))) - c.size
	if lo >= c.n {
		return 0, 0, false
	}
	return lo, min(lo+c.size, c.n), true
}

// spans hands out the integers 0..n-1 in chunks of size, like chunks, but each of the threads first
// works through a contiguous span of its own (n/threads of them) and only then helps with what is left of
// the others'. A thread streaming weights from memory then reads one long run per product, which the
// hardware prefetchers follow best, and threads slowed down by the operating system still finish
// together.
type spans struct {
	next []paddedCounter // per thread: the start of the next chunk of its span
	end  []int           // per thread: the end of its span
	size int
}

// paddedCounter is an atomic counter alone on its cache line, so that threads claiming from their own
// spans do not contend.
type paddedCounter struct {
	atomic.Int64
	_ [56]byte
}

func (s *spans) reset(n, size, threads int) {
	if len(s.next) < threads {
		s.next, s.end = make([]paddedCounter, threads), make([]int, threads)
	}
	s.next, s.end = s.next[:threads], s.end[:threads]
	s.size = max(size, 1)
	// Spans start and end on chunk boundaries, so that chunk alignment (multiples of 4 rows) holds.
	chunksTotal := (n + s.size - 1) / s.size
	for w := range threads {
		s.next[w].Store(int64(w * chunksTotal / threads * s.size))
		s.end[w] = min(n, (w+1)*chunksTotal/threads*s.size)
	}
}

// claim returns a chunk [lo, hi) for thread w: from its own span while it lasts, then from the others'.
func (s *spans) claim(w int) (lo, hi int, ok bool) {
	for i := range s.next {
		v := (w + i) % len(s.next)
		lo := int(s.next[v].Add(int64(s.size))) - s.size
		if lo < s.end[v] {
			return lo, min(lo+s.size, s.end[v]), true
		}
	}
	return 0, 0, false
}

// defaultThreads is the thread count used when Options.Threads is 0.
func defaultThreads() int { return runtime.NumCPU() }
