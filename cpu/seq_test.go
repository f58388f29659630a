package cpu

import (
	"context"
	"slices"
	"testing"

	"smolchat/engine"
	"smolchat/engine/backendtest"
)

// seqTokens is n pseudo-random tokens of the vocabulary, from seed.
func seqTokens(vocab, n int, seed uint64) []int32 { return backendtest.SeqTokens(vocab, n, seed) }

// TestSeqContract runs engine.SeqBackend's contract (backendtest) in every numerics mode: batching is
// bit for bit invariant on the CPU (tolerance 0), since each row's arithmetic is the same whatever the
// other rows of its batch.
func TestSeqContract(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	for _, num := range []Numerics{Fast, Llama, Exact} {
		t.Run(num.String(), func(t *testing.T) {
			backendtest.SeqContract(t, backendtest.Model{Vocab: m.Config.Vocab}, func(t *testing.T, ctx int, kvMemory int64) engine.SeqBackend {
				return newBackend(t, m, Options{Context: ctx, Threads: 2, Numerics: num, KVMemory: kvMemory})
			}, 0)
		})
	}
}

// TestSeqBudgetHoldsContext refuses a KV budget smaller than one context.
func TestSeqBudgetHoldsContext(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	c := m.Config
	block := int64(kvBlockBytes(c.Layers, c.KVDim()))
	if _, err := New(m, Options{Context: 4 * kvBlock, KVMemory: 3 * block}); err == nil {
		t.Fatal("a budget of 3 blocks for a context of 4 blocks: no error")
	}
}

// TestBatchPasses: a batch of more rows than a pass holds (maxBatch) goes through the layers in passes,
// and its logits are those of its sequences fed a few tokens at a time, bit for bit.
func TestBatchPasses(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	vocab := m.Config.Vocab
	b := newBackend(t, m, Options{Context: 2 * maxBatch, Threads: 2})
	a, c := seqTokens(vocab, maxBatch-10, 1), seqTokens(vocab, 40, 2) // c's rows 10.. are a second pass
	at := []engine.SeqEntry{
		{Seq: b.NewSeq(), Tokens: a, Want: []int{len(a) - 1}},
		{Seq: b.NewSeq(), Tokens: c, Want: []int{5, 39}},
	}
	got, err := b.ForwardSeqs(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range at {
		id, p := b.NewSeq(), e.Tokens
		rows := map[int][]float32{}
		for off := 0; off < len(p); off += 30 {
			n := min(30, len(p)-off)
			var want []int
			for _, w := range e.Want {
				if w >= off && w < off+n {
					want = append(want, w-off)
				}
			}
			out, err := b.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: p[off : off+n], Want: want}})
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range want {
				rows[off+w] = out[0][k]
			}
		}
		for k, w := range e.Want {
			if !slices.Equal(got[i][k], rows[w]) {
				t.Errorf("entry %d, row %d: the logits of the batch of %d rows differ from those fed 30 tokens at a time", i, w, len(a)+len(c))
			}
		}
	}
}
