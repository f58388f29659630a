package cpu

import (
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
