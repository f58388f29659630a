package cpu

import (
	"context"
	"math"
	"runtime"
	"smolchat/cpu/kernels"
	"testing"

	"smolchat/model/quant"
)

// TestInterleavedWeightsMatchMapped runs the same prompt and continuation through a backend with its
// interleaved copies of the weights and one that uses the mapped file's rows, and requires the same
// logits to the bit: every kernel computes each dot product with the same arithmetic.
func TestInterleavedWeightsMatchMapped(t *testing.T) {
	m := openModel(t, tinyFile)
	il := newBackend(t, m, Options{Threads: 2})
	if il.output.il == nil || il.layers[0].gate.il == nil {
		t.Skip("skipping: the weights are not interleaved on this CPU or build")
	}
	mapped := newBackend(t, m, Options{Threads: 2})
	mats := []*matrix{&mapped.output}
	for i := range mapped.layers {
		L := &mapped.layers[i]
		mats = append(mats, &L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down)
	}
	for _, mt := range mats {
		mt.il, mt.ilMul = nil, nil
	}
	ctx := context.Background()
	prompt := benchTokens(m, 37) // a batch of 36 (nine groups of four) and a single token
	for _, b := range []*Backend{il, mapped} {
		b.Truncate(0)
	}
	for _, step := range [][2]int{{0, 36}, {36, 37}} {
		want, err := mapped.Forward(ctx, prompt[step[0]:step[1]], []int{step[1] - step[0] - 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := il.Forward(ctx, prompt[step[0]:step[1]], []int{step[1] - step[0] - 1})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want[0] {
			if math.Float32bits(got[0][i]) != math.Float32bits(want[0][i]) {
				t.Fatalf("tokens %d-%d: logit %d = %g interleaved, %g from the mapped rows", step[0], step[1]-1, i, got[0][i], want[0][i])
			}
		}
	}
}

// TestInterleavedWeightsOffHeap checks that the interleaved copies are not allocated on the Go heap, where
// they would let the garbage collector defer collections until as much garbage had piled up.
func TestInterleavedWeightsOffHeap(t *testing.T) {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly", "windows":
	default:
		t.Skipf("skipping: weights come from the Go heap on %s", runtime.GOOS)
	}
	if !kernels.Interleaves(quant.Q6_K) {
		t.Skip("skipping: the weights are not interleaved on this CPU or build")
	}
	m := openModel(t, tinyFile)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b := newBackend(t, m, Options{Threads: 1})
	runtime.GC()
	runtime.ReadMemStats(&after)
	size := len(b.output.il)
	for i := range b.layers {
		L := &b.layers[i]
		for _, mt := range []*matrix{&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down} {
			size += len(mt.il)
		}
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > int64(size)/2 {
		t.Errorf("the Go heap grew by %d bytes for %d bytes of interleaved weights", grew, size)
	}
}

// TestMulRowsUnalignedChunks multiplies an interleaved matrix in row ranges that start and end inside
// groups of four, as a chunk does when an earlier product in the same job has a row count that is not a
// multiple of four, and compares with the whole matrix at once.
func TestMulRowsUnalignedChunks(t *testing.T) {
	m := openModel(t, tinyFile)
	b := newBackend(t, m, Options{Threads: 1})
	mt := &b.layers[0].gate
	if mt.il == nil {
		t.Skip("skipping: the weights are not interleaved on this CPU or build")
	}
	for _, tokens := range []int{1, 5} {
		x := make([]float32, tokens*mt.Cols)
		for i := range x {
			x[i] = float32(i%13) - 6
		}
		var e encoded
		e.reset(x, tokens, mt.Cols)
		whole := make([]float32, tokens*mt.Rows)
		parts := make([]float32, tokens*mt.Rows)
		ps := []product{{m: mt, out: whole}}
		if err := b.encode(&e, ps); err != nil {
			t.Fatal(err)
		}
		var scratch kernels.Scratch
		mulRows(ps[0], &e, 0, mt.Rows, &scratch)
		for _, r := range [][2]int{{0, 3}, {3, 10}, {10, 11}, {11, 24}, {24, mt.Rows}} {
			for i := range parts {
				parts[i] = float32(math.NaN())
			}
			p := ps[0]
			p.out = parts
			mulRows(p, &e, r[0], r[1], &scratch)
			for j := range tokens {
				for i := range mt.Rows {
					got, want := parts[j*mt.Rows+i], whole[j*mt.Rows+i]
					inside := i >= r[0] && i < r[1]
					if inside && math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("%d tokens, rows %d-%d: row %d = %g, %g at once", tokens, r[0], r[1]-1, i, got, want)
					}
					if !inside && !math.IsNaN(float64(got)) {
						t.Fatalf("%d tokens, rows %d-%d: wrote row %d", tokens, r[0], r[1]-1, i)
					}
				}
			}
		}
	}
}
