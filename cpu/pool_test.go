package cpu

import (
	"slices"
	"sync/atomic"
	"testing"
)

func TestPool(t *testing.T) {
	for _, threads := range []int{1, 2, 5} {
		p := newPool(threads)
		for job := range 200 {
			n := job*7 + 1 // includes sizes smaller than the thread count
			hits := make([]atomic.Int32, n)
			var seen [8]atomic.Bool
			var work chunks
			work.reset(n, 3)
			p.run(func(w int) {
				seen[w].Store(true)
				for {
					lo, hi, ok := work.claim()
					if !ok {
						return
					}
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("%d threads, job %d: item %d processed %d times", threads, job, i, h)
				}
			}
			for w := range threads {
				if !seen[w].Load() {
					t.Fatalf("%d threads, job %d: worker %d did not run", threads, job, w)
				}
			}
		}
		p.close()
	}
}

// BenchmarkPoolRun measures the cost of handing an empty job to the workers and waiting for them.
func BenchmarkPoolRun(b *testing.B) {
	p := newPool(2)
	defer p.close()
	for b.Loop() {
		p.run(func(int) {})
	}
}

// TestSpans checks that spans hands out every item exactly once, in chunks that start on multiples of the
// chunk size, and that a thread takes its own span before the others'.
func TestSpans(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 5} {
		p := newPool(threads)
		var s spans
		for job := range 100 {
			n, size := job*13+1, 1+job%5
			hits := make([]atomic.Int32, n)
			var bad atomic.Bool
			s.reset(n, size, threads)
			p.run(func(w int) {
				for {
					lo, hi, ok := s.claim(w)
					if !ok {
						return
					}
					if lo%size != 0 || hi <= lo || hi-lo > size {
						bad.Store(true)
					}
					for i := lo; i < hi; i++ {
						hits[i].Add(1)
					}
				}
			})
			if bad.Load() {
				t.Fatalf("%d threads, job %d (n %d, size %d): a chunk off the chunk grid", threads, job, n, size)
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("%d threads, job %d (n %d, size %d): item %d processed %d times", threads, job, n, size, i, h)
				}
			}
		}
		p.close()
	}
	// One thread alone: its own span first (100 items in 10 chunks over 4 threads: thread 2 has 50-69),
	// then the next thread's.
	var s spans
	s.reset(100, 10, 4)
	var got []int
	for range 4 {
		lo, _, _ := s.claim(2)
		got = append(got, lo)
	}
	if want := []int{50, 60, 70, 80}; !slices.Equal(got, want) {
		t.Errorf("thread 2 claimed %v, want %v", got, want)
	}
}
