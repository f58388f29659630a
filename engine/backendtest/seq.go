package backendtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"smolchat/engine"
)

// NewSeqBackend opens a backend whose sequences hold ctx positions, with a KV budget of kvMemory bytes
// (0: the backend's default). The test closes it.
type NewSeqBackend func(t *testing.T, ctx int, kvMemory int64) engine.SeqBackend

// SeqContract checks engine.SeqBackend's contract, the properties the scheduler relies on: a sequence's
// logits do not depend on the other sequences of its batch, sequences made by Fork share blocks until
// one writes into a shared block (copy on write), a batch past the KV budget is refused before any work,
// and malformed batches are refused with an error, the sequences left as they were.
//
// tol bounds max |Δlogit| / max |logit| between a sequence evaluated alone, at once, and the same
// tokens in pieces beside other sequences; 0 asks for bit-identical logits.
func SeqContract(t *testing.T, m Model, newBackend NewSeqBackend, tol float64) {
	kv := newBackend(t, 64, 0).KV()
	blockLen, blockBytes := kv.BlockLen, int64(kv.BlockBytes)
	if blockLen <= 0 || blockBytes <= 0 {
		t.Fatalf("KV() = %+v: want positive block length and bytes", kv)
	}
	t.Run("batch invariance", func(t *testing.T) { seqBatchInvariance(t, m, newBackend(t, 2*blockLen, 0), tol) })
	t.Run("fork copy on write", func(t *testing.T) { seqForkCopyOnWrite(t, m, newBackend(t, 3*blockLen, 0), tol) })
	t.Run("kv full", func(t *testing.T) { seqKVFull(t, m, newBackend(t, 2*blockLen, 2*blockBytes)) })
	t.Run("bad input", func(t *testing.T) { seqBadInput(t, m, newBackend(t, 64, 0)) })
}

// SeqTokens is n pseudo-random tokens of a vocabulary of vocab, from seed.
func SeqTokens(vocab, n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}

// solo evaluates tokens alone and at once on b's own sequence and returns the logits of the rows in
// want, by row (nil for the others); the sequence is emptied again after. (Few rows are wanted: on the
// GPU each costs a read-back of the vocabulary.)
func solo(t *testing.T, b engine.Backend, tokens []int32, want []int) [][]float32 {
	t.Helper()
	b.Truncate(0)
	out := forward(t, b, tokens, want)
	b.Truncate(0)
	rows := make([][]float32, len(tokens))
	for i, w := range want {
		rows[w] = out[i]
	}
	return rows
}

// sameLogits reports how far got is from want, and whether that is within tol (0: bit-identical).
func sameLogits(got, want []float32, tol float64) (float64, bool) {
	e := relErr(got, want)
	if tol == 0 {
		return e, slices.Equal(got, want)
	}
	return e, e <= tol
}

// seqBatchInvariance evaluates three prompts alone, then in uneven chunks in batches beside each other
// (at other positions, with other lengths, one of them a decode-like row a step), and compares.
func seqBatchInvariance(t *testing.T, m Model, b engine.SeqBackend, tol float64) {
	bl := b.KV().BlockLen
	// The first crosses a block boundary.
	prompts := [][]int32{SeqTokens(m.Vocab, bl+40, 1), SeqTokens(m.Vocab, 7, 2), SeqTokens(m.Vocab, 90, 3)}
	// Each step gives every sequence with tokens left its next chunk: sizes 1, 2, 3, ... per step for
	// the first, 1 each step for the second (a decode step), 40 for the third. The last row of every
	// chunk is compared.
	type chunk struct{ seq, off, n int }
	var steps [][]chunk
	wantRows := make([][]int, len(prompts))
	fed := make([]int, len(prompts))
	for step := 1; ; step++ {
		var cs []chunk
		for i, p := range prompts {
			if fed[i] == len(p) {
				continue
			}
			n := min([]int{step, 1, 40}[i], len(p)-fed[i])
			cs = append(cs, chunk{i, fed[i], n})
			wantRows[i] = append(wantRows[i], fed[i]+n-1)
			fed[i] += n
		}
		if len(cs) == 0 {
			break
		}
		steps = append(steps, cs)
	}
	want := make([][][]float32, len(prompts))
	for i, p := range prompts {
		want[i] = solo(t, b, p, wantRows[i])
	}
	ids := make([]engine.SeqID, len(prompts))
	for i := range ids {
		ids[i] = b.NewSeq()
	}
	worst := 0.0
	for step, cs := range steps {
		batch := make([]engine.SeqEntry, len(cs))
		for k, c := range cs {
			batch[k] = engine.SeqEntry{Seq: ids[c.seq], Tokens: prompts[c.seq][c.off : c.off+c.n], Want: []int{c.n - 1}}
		}
		out, err := b.ForwardSeqs(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for k, c := range cs {
			pos := c.off + c.n - 1
			e, ok := sameLogits(out[k][0], want[c.seq][pos], tol)
			worst = max(worst, e)
			if !ok {
				t.Fatalf("sequence %d, position %d (step %d, beside %d others): logits differ from the solo run by %.3g (tolerance %.3g)",
					c.seq, pos, step+1, len(cs)-1, e, tol)
			}
		}
	}
	t.Logf("%d steps: batched logits differ from solo ones by at most %.3g", len(steps), worst)
	for i, id := range ids {
		if got := b.SeqLen(id); got != len(prompts[i]) {
			t.Errorf("sequence %d: SeqLen = %d, want %d", i, got, len(prompts[i]))
		}
	}
}

// seqForkCopyOnWrite forks a sequence in the middle of a block: the two share the prefix's blocks until
// each writes into the shared partial block, when the writer gets a copy. Both must then give the
// logits of an unshared run, and the pool's count of blocks in use must follow.
func seqForkCopyOnWrite(t *testing.T, m Model, b engine.SeqBackend, tol float64) {
	bl := b.KV().BlockLen
	ctx := context.Background()
	prefix := SeqTokens(m.Vocab, bl+36, 4) // a full block and 36 positions of the second
	tailA, tailB := SeqTokens(m.Vocab, 12, 5), SeqTokens(m.Vocab, 12, 6)
	at := bl + 16 // B forks A here, inside A's second block
	tails := func(from int) []int {
		rows := make([]int, len(tailA))
		for i := range rows {
			rows[i] = from + i
		}
		return rows
	}
	wantA := solo(t, b, append(slices.Clone(prefix), tailA...), tails(len(prefix)))
	wantB := solo(t, b, append(slices.Clone(prefix[:at]), tailB...), tails(at))
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
	if n := b.BlocksOnlyIn([]engine.SeqID{fb}); n != 0 {
		t.Errorf("after the fork: %d blocks only in the fork, want 0 (both shared)", n)
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
	if n := b.BlocksOnlyIn([]engine.SeqID{fb}); n != 1 {
		t.Errorf("after both wrote: %d blocks only in the fork, want its copy", n)
	}
	for r := range tailA {
		if e, ok := sameLogits(out[0][r], wantA[len(prefix)+r], tol); !ok {
			t.Fatalf("A at position %d differs from an unshared run by %.3g", len(prefix)+r, e)
		}
		if e, ok := sameLogits(out[1][r], wantB[at+r], tol); !ok {
			t.Fatalf("B at position %d differs from an unshared run by %.3g", at+r, e)
		}
	}
	b.FreeSeq(a)
	if used() != 2 {
		t.Errorf("after freeing A: %d blocks in use, want B's 2", used())
	}
	b.TruncateSeq(fb, 10)
	if used() != 1 || b.SeqLen(fb) != 10 {
		t.Errorf("after truncating B to 10: %d blocks in use (want 1), length %d", used(), b.SeqLen(fb))
	}
	b.FreeSeq(fb)
	if used() != 0 {
		t.Errorf("after freeing B: %d blocks in use, want 0", used())
	}
	if b.SeqLen(fb) != 0 {
		t.Errorf("a freed sequence has length %d", b.SeqLen(fb))
	}
}

// seqKVFull fills a two-block budget: a batch that needs a third block is refused with ErrKVFull
// before any work, the sequences keep what they had, and freeing one makes room.
func seqKVFull(t *testing.T, m Model, b engine.SeqBackend) {
	if kv := b.KV(); kv.Blocks != 2 {
		t.Fatalf("a budget of two blocks' bytes: KV() = %+v, want 2 blocks", kv)
	}
	bl := b.KV().BlockLen
	ctx := context.Background()
	a, other := b.NewSeq(), b.NewSeq()
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: a, Tokens: SeqTokens(m.Vocab, bl+1, 7)}}); err != nil {
		t.Fatal(err)
	}
	_, err := b.ForwardSeqs(ctx, []engine.SeqEntry{
		{Seq: a, Tokens: SeqTokens(m.Vocab, 1, 8), Want: []int{0}},
		{Seq: other, Tokens: SeqTokens(m.Vocab, 1, 9), Want: []int{0}},
	})
	if !errors.Is(err, engine.ErrKVFull) {
		t.Fatalf("a batch past the budget: err = %v, want ErrKVFull", err)
	}
	if b.SeqLen(a) != bl+1 || b.SeqLen(other) != 0 || b.KV().Used != 2 {
		t.Errorf("after the refusal: lengths %d and %d, %d blocks in use; want %d, 0 and 2", b.SeqLen(a), b.SeqLen(other), b.KV().Used, bl+1)
	}
	b.FreeSeq(a)
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: other, Tokens: SeqTokens(m.Vocab, 3, 9), Want: []int{2}}}); err != nil {
		t.Errorf("after freeing a sequence: %v", err)
	}
}

// seqBadInput refuses malformed batches with an error and leaves the sequences as they were.
func seqBadInput(t *testing.T, m Model, b engine.SeqBackend) {
	a := b.NewSeq()
	past := make([]int32, b.MaxContext()+1)
	for _, c := range []struct {
		name  string
		batch []engine.SeqEntry
	}{
		{"unknown sequence", []engine.SeqEntry{{Seq: a + 100, Tokens: []int32{1}}}},
		{"a sequence twice", []engine.SeqEntry{{Seq: a, Tokens: []int32{1}}, {Seq: a, Tokens: []int32{2}}}},
		{"token past the vocabulary", []engine.SeqEntry{{Seq: a, Tokens: []int32{int32(m.Vocab)}}}},
		{"negative token", []engine.SeqEntry{{Seq: a, Tokens: []int32{-1}}}},
		{"wanted row past the tokens", []engine.SeqEntry{{Seq: a, Tokens: []int32{1}, Want: []int{1}}}},
		{"wanted rows not ascending", []engine.SeqEntry{{Seq: a, Tokens: []int32{1, 2}, Want: []int{1, 0}}}},
		{"past the context", []engine.SeqEntry{{Seq: a, Tokens: past}}},
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
	// A cancelled batch evaluates nothing.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.ForwardSeqs(cctx, []engine.SeqEntry{{Seq: a, Tokens: []int32{1, 2}, Want: []int{1}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled batch: err = %v, want context.Canceled", err)
	}
	if b.SeqLen(a) != 0 || b.KV().Used != 0 {
		t.Errorf("after a cancelled batch: length %d, %d blocks in use", b.SeqLen(a), b.KV().Used)
	}
}
