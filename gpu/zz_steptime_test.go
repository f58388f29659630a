package gpu

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"smolchat/engine"
)

func TestZZStepTime(t *testing.T) {
	e := loadEngine(t, "/work/shared/testdata/smollm3-tiny-synthetic-Q4_K_M.gguf", 1024, 4)
	sb := e.Backend().(engine.SeqBackend)
	ctx := context.Background()
	for _, n := range []int{1, 4, 1, 4, 1, 4, 1, 4} {
		var ids []engine.SeqID
		var batch []engine.SeqEntry
		for i := range n {
			id := sb.NewSeq()
			ids = append(ids, id)
			batch = append(batch, engine.SeqEntry{Seq: id, Tokens: make([]int32, 32), Want: []int{31}})
			_ = i
		}
		if _, err := sb.ForwardSeqs(ctx, batch); err != nil {
			t.Fatal(err)
		}
		var ds []float64
		for s := 0; s < 60; s++ {
			batch = batch[:0]
			for _, id := range ids {
				batch = append(batch, engine.SeqEntry{Seq: id, Tokens: []int32{int32(s + 5)}, Want: []int{0}})
			}
			t0 := time.Now()
			if _, err := sb.ForwardSeqs(ctx, batch); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(t0).Seconds()*1000)
		}
		sort.Float64s(ds)
		fmt.Printf("rows %d: step ms min %.1f median %.1f\n", n, ds[0], ds[len(ds)/2])
		for _, id := range ids {
			sb.FreeSeq(id)
		}
	}
}
