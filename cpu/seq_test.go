package cpu

import (
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
