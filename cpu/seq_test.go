package cpu

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"smolchat/engine"
	"smolchat/engine/backendtest"
)

// seqTokens is n pseudo-random tokens of the vocabulary, from seed.
func seqTokens(vocab, n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}

// solo evaluates tokens alone, at once, on a fresh backend and returns every row's logits.
func solo(t *testing.T, b *Backend, tokens []int32) [][]float32 {
	t.Helper()
	b.Truncate(0)
	out, err := b.Forward(context.Background(), tokens, allRows(len(tokens)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSeqBatchInvariance checks the property continuous batching relies on: a sequence's logits are bit
// for bit the same whether its tokens are evaluated alone and at once, or in uneven chunks in batches
// beside other sequences (at other positions, with other lengths), in every numerics mode.
func TestSeqBatchInvariance(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	vocab := m.Config.Vocab
	// The first crosses a block boundary.
	prompts := [][]int32{seqTokens(vocab, kvBlock+40, 1), seqTokens(vocab, 7, 2), seqTokens(vocab, 90, 3)}
	for _, num := range []Numerics{Fast, Llama, Exact} {
		t.Run(num.String(), func(t *testing.T) {
			b := newBackend(t, m, Options{Context: 2 * kvBlock, Threads: 2, Numerics: num})
			want := make([][][]float32, len(prompts))
			for i, p := range prompts {
				want[i] = solo(t, b, p)
			}
			b.Truncate(0)
			ids := make([]engine.SeqID, len(prompts))
			for i := range ids {
				ids[i] = b.NewSeq()
			}
			// Each step gives every sequence with tokens left its next chunk: sizes 1, 2, 3, ... per
			// step for the first, 1 each step for the second (a decode step), 40 for the third.
			// (Exact numerics are slow: the first sequence goes 30 tokens a step.)
			fed := make([]int, len(prompts))
			for step := 1; ; step++ {
				var batch []engine.SeqEntry
				var who []int
				for i, p := range prompts {
					size := []int{step, 1, 40}[i]
					if num == Exact && i == 0 {
						size = 30
					}
					if fed[i] == len(p) {
						continue
					}
					chunk := p[fed[i]:min(fed[i]+size, len(p))]
					batch = append(batch, engine.SeqEntry{Seq: ids[i], Tokens: chunk, Want: allRows(len(chunk))})
					who = append(who, i)
				}
				if len(batch) == 0 {
					break
				}
				out, err := b.ForwardSeqs(context.Background(), batch)
				if err != nil {
					t.Fatal(err)
				}
				for k, i := range who {
					for r, row := range out[k] {
						if pos := fed[i] + r; !slices.Equal(row, want[i][pos]) {
							t.Fatalf("sequence %d, position %d (step %d, beside %d others): logits differ from the solo run by %g",
								i, pos, step, len(batch)-1, maxDiff(row, want[i][pos]))
						}
					}
					fed[i] += len(batch[k].Tokens)
				}
			}
			for i, id := range ids {
				if got := b.SeqLen(id); got != len(prompts[i]) {
					t.Errorf("sequence %d: SeqLen = %d, want %d", i, got, len(prompts[i]))
				}
			}
		})
	}
}

// TestSeqForkCopyOnWrite forks a sequence in the middle of a block: the two share the prefix's blocks
// until each writes into the shared partial block, when the writer gets a copy. Both must then give the
// logits of an unshared run, and the pool's count of blocks in use must follow.
func TestSeqForkCopyOnWrite(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	vocab := m.Config.Vocab
	b := newBackend(t, m, Options{Context: 3 * kvBlock, Threads: 2})
	ctx := context.Background()
	prefix := seqTokens(vocab, kvBlock+36, 4) // a full block and 36 positions of the second
	tailA, tailB := seqTokens(vocab, 30, 5), seqTokens(vocab, 30, 6)
	const at = kvBlock + 16 // B forks A here, inside A's second block
	wantA := solo(t, b, append(slices.Clone(prefix), tailA...))
	wantB := solo(t, b, append(slices.Clone(prefix[:at]), tailB...))
	b.Truncate(0)
	used := func() int { return b.KV().Used }

	a := b.NewSeq()
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: a, Tokens: prefix}}); err != nil {
		t.Fatal(err)
	}
	if used() != 2 {
		t.Fatalf("after %d positions: %d blocks in use, want 2", len(prefix), used())
	}
	fb, err := b.Fork(a, at)
	if err != nil {
		t.Fatal(err)
	}
	if used() != 2 || b.SeqLen(fb) != at {
		t.Fatalf("after the fork: %d blocks in use (want 2, shared), fork length %d (want %d)", used(), b.SeqLen(fb), at)
	}
	// Both write into the shared second block in one batch: one of them copies it.
	out, err := b.ForwardSeqs(ctx, []engine.SeqEntry{
		{Seq: a, Tokens: tailA, Want: allRows(len(tailA))},
		{Seq: fb, Tokens: tailB, Want: allRows(len(tailB))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each holds two blocks, of which the first is shared.
	if used() != 3 {
		t.Errorf("after both wrote: %d blocks in use, want 3 (one shared, one each)", used())
	}
	for r := range tailA {
		if !slices.Equal(out[0][r], wantA[len(prefix)+r]) {
			t.Fatalf("A at position %d differs from an unshared run", len(prefix)+r)
		}
		if !slices.Equal(out[1][r], wantB[at+r]) {
			t.Fatalf("B at position %d differs from an unshared run", at+r)
		}
	}
	b.FreeSeq(a)
	if used() != 2 {
		t.Errorf("after freeing A: %d blocks in use, want B's 2", used())
	}
	b.TruncateSeq(fb, 10)
	if used() != 1 {
		t.Errorf("after truncating B to 10: %d blocks in use, want 1", used())
	}
	if b.SeqLen(fb) != 10 {
		t.Errorf("after truncating B to 10: length %d", b.SeqLen(fb))
	}
	b.FreeSeq(fb)
	if used() != 0 {
		t.Errorf("after freeing B: %d blocks in use, want 0", used())
	}
}

// TestSeqKVFull fills a two-block budget: a batch that needs a third block is refused with ErrKVFull
// before any work, the sequences keep what they had, and freeing one makes room.
func TestSeqKVFull(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	c := m.Config
	block := int64(kvBlockBytes(c.Layers, c.KVDim()))
	if _, err := New(m, Options{Context: 4 * kvBlock, KVMemory: 3 * block}); err == nil {
		t.Fatal("a budget of 3 blocks for a context of 4 blocks: no error")
	}
	b := newBackend(t, m, Options{Context: 2 * kvBlock, Threads: 2, KVMemory: 2 * block})
	ctx := context.Background()
	a, other := b.NewSeq(), b.NewSeq()
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: a, Tokens: seqTokens(c.Vocab, kvBlock+1, 7)}}); err != nil {
		t.Fatal(err)
	}
	_, err := b.ForwardSeqs(ctx, []engine.SeqEntry{
		{Seq: a, Tokens: seqTokens(c.Vocab, 1, 8), Want: []int{0}},
		{Seq: other, Tokens: seqTokens(c.Vocab, 1, 9), Want: []int{0}},
	})
	if !errors.Is(err, engine.ErrKVFull) {
		t.Fatalf("a batch past the budget: err = %v, want ErrKVFull", err)
	}
	if b.SeqLen(a) != kvBlock+1 || b.SeqLen(other) != 0 || b.KV().Used != 2 {
		t.Errorf("after the refusal: lengths %d and %d, %d blocks in use; want %d, 0 and 2", b.SeqLen(a), b.SeqLen(other), b.KV().Used, kvBlock+1)
	}
	b.FreeSeq(a)
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: other, Tokens: seqTokens(c.Vocab, 3, 9), Want: []int{2}}}); err != nil {
		t.Errorf("after freeing a sequence: %v", err)
	}
}

// TestSeqBadInput refuses malformed batches with an error and leaves the sequences as they were.
func TestSeqBadInput(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	b := newBackend(t, m, Options{Context: 64, Threads: 1})
	a := b.NewSeq()
	for _, c := range []struct {
		name  string
		batch []engine.SeqEntry
	}{
		{"unknown sequence", []engine.SeqEntry{{Seq: a + 100, Tokens: []int32{1}}}},
		{"a sequence twice", []engine.SeqEntry{{Seq: a, Tokens: []int32{1}}, {Seq: a, Tokens: []int32{2}}}},
		{"token past the vocabulary", []engine.SeqEntry{{Seq: a, Tokens: []int32{int32(m.Config.Vocab)}}}},
		{"wanted row past the tokens", []engine.SeqEntry{{Seq: a, Tokens: []int32{1}, Want: []int{1}}}},
		{"past the context", []engine.SeqEntry{{Seq: a, Tokens: make([]int32, 65)}}},
	} {
		if _, err := b.ForwardSeqs(context.Background(), c.batch); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if b.SeqLen(a) != 0 || b.KV().Used != 0 {
			t.Fatalf("%s: length %d, %d blocks in use after a refused batch", c.name, b.SeqLen(a), b.KV().Used)
		}
	}
	if _, err := b.Fork(a+100, 0); err == nil {
		t.Error("fork of an unknown sequence: no error")
	}
}
