// Package backendtest checks that a Backend keeps engine.Backend's contract, so that the backends (cpu,
// gpu) behave alike where the engine relies on them: the same answers whether tokens come in one call
// or in pieces, Truncate's rewinding and its bounds, cancellation that leaves the cache as it was, and
// bad input refused with an error. Each backend's tests call Contract with a constructor.
package backendtest

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"smolchat/engine"
	"smolchat/model"
	"smolchat/model/synth"
)

// Model is what the contract needs to know about the model under test.
type Model struct {
	Vocab int
	// Tol bounds max |Δlogit| / max |logit| between a prefill and the same tokens one at a time: the
	// backend's own rounding differences between its batched and single-token paths.
	Tol float64
}

// Contract runs the checks on a backend from newBackend, which opens one whose cache holds ctx positions
// (the test closes it), over 24 pseudo-random tokens.
func Contract(t *testing.T, m Model, newBackend func(t *testing.T, ctx int) engine.Backend) {
	tokens := make([]int32, 24)
	seed := uint32(12345)
	for i := range tokens {
		seed = seed*1664525 + 1013904223
		tokens[i] = int32(seed % uint32(m.Vocab))
	}
	ctxSize := len(tokens) + 8
	b := newBackend(t, ctxSize)
	ctx := context.Background()
	all := forward(t, b, tokens, allRows(len(tokens)))
	if b.Len() != len(tokens) {
		t.Fatalf("Len = %d after %d tokens, want %d", b.Len(), len(tokens), len(tokens))
	}

	t.Run("pieces", func(t *testing.T) {
		// The same tokens in uneven pieces, each appended to the cache, give the same logits.
		b.Truncate(0)
		for off, n := 0, 1; off < len(tokens); off, n = off+n, n*2+1 {
			piece := tokens[off:min(off+n, len(tokens))]
			got := forward(t, b, piece, allRows(len(piece)))
			for i := range got {
				if e := relErr(got[i], all[off+i]); e > m.Tol {
					t.Errorf("position %d, fed in a piece from %d: logits differ by %.3g (tolerance %.3g)", off+i, off, e, m.Tol)
				}
			}
		}
	})

	t.Run("truncate", func(t *testing.T) {
		b.Truncate(0)
		forward(t, b, tokens, nil)
		for _, c := range []struct {
			n, want int
		}{
			{len(tokens) + 5, len(tokens)}, // past the end: keeps every position
			{len(tokens), len(tokens)},
			{10, 10},
			{-3, 0}, // negative: keeps none
		} {
			b.Truncate(c.n)
			if b.Len() != c.want {
				t.Errorf("Truncate(%d): Len = %d, want %d", c.n, b.Len(), c.want)
			}
		}
		// Rewinding and continuing gives the logits of one uninterrupted run.
		b.Truncate(0)
		forward(t, b, tokens, nil)
		b.Truncate(10)
		got := forward(t, b, tokens[10:12], []int{0, 1})
		for i := range got {
			if e := relErr(got[i], all[10+i]); e > m.Tol {
				t.Errorf("after Truncate(10), position %d differs by %.3g", 10+i, e)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		// A cancelled context stops the call with ctx.Err() and leaves the cache as it was.
		b.Truncate(0)
		forward(t, b, tokens[:5], nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := b.Forward(cctx, tokens[5:9], []int{3}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Forward: err = %v, want context.Canceled", err)
		}
		if b.Len() != 5 {
			t.Errorf("Len after a cancelled Forward = %d, want 5", b.Len())
		}
		got := forward(t, b, tokens[5:6], []int{0})
		if e := relErr(got[0], all[5]); e > m.Tol {
			t.Errorf("after a cancelled Forward, position 5 differs by %.3g", e)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		b.Truncate(0)
		for _, c := range []struct {
			name   string
			tokens []int32
			want   []int
		}{
			{"token past the vocabulary", []int32{1, int32(m.Vocab)}, nil},
			{"negative token", []int32{-1}, nil},
			{"no tokens with a wanted row", nil, []int{0}},
			{"wanted row past the tokens", []int32{1}, []int{1}},
			{"wanted rows not ascending", []int32{1, 2}, []int{1, 0}},
			{"wanted row twice", []int32{1, 2}, []int{1, 1}},
		} {
			if _, err := b.Forward(ctx, c.tokens, c.want); err == nil {
				t.Errorf("%s: no error", c.name)
			}
			if b.Len() != 0 {
				t.Fatalf("%s: Len = %d after a refused Forward, want 0", c.name, b.Len())
			}
		}
		if _, err := b.Forward(ctx, make([]int32, ctxSize+1), nil); !errors.Is(err, engine.ErrContextFull) {
			t.Errorf("a call past the context: err = %v, want ErrContextFull", err)
		}
		if b.Len() != 0 {
			t.Errorf("Len = %d after a refused Forward, want 0", b.Len())
		}
	})
}

func forward(t *testing.T, b engine.Backend, tokens []int32, want []int) [][]float32 {
	t.Helper()
	out, err := b.Forward(context.Background(), tokens, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(want) {
		t.Fatalf("Forward returned %d rows, want %d", len(out), len(want))
	}
	return out
}

func allRows(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// relErr is max |got - want| over the row divided by max |want|.
func relErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i]-want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	if s == 0 {
		return d
	}
	return d / s
}

// OpenSynth writes synth's preset (smollm3-tiny, say) with seed to a temporary file and opens it, so
// that whole-model tests need no shared fixtures.
func OpenSynth(t testing.TB, preset string, seed uint64) *model.Model {
	t.Helper()
	m, err := model.Open(WriteSynth(t, preset, seed))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// WriteSynth writes synth's preset with seed to a temporary file and returns its path.
func WriteSynth(t testing.TB, preset string, seed uint64) string {
	t.Helper()
	p, err := synth.PresetByName(preset)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), preset+".gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Write(context.Background(), f, p, synth.Options{Seed: seed}); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
