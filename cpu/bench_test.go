package cpu

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/model"
)

// benchModel opens $SMOLCHAT_BENCH_MODEL when set (e.g. a SmolLM3-3B-shaped Q4_K_M file), else the
// smollm3 tiny fixture.
func benchModel(b *testing.B) *model.Model {
	if p := os.Getenv("SMOLCHAT_BENCH_MODEL"); p != "" {
		m, err := model.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		return m
	}
	return openModel(b, tinyFile)
}

func benchTokens(m *model.Model, n int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(200 + i*7919%(m.Config.Vocab-300))
	}
	return toks
}

// BenchmarkDecode is one generated token after a 32-token prompt: a forward pass of one position with
// its logits.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	be := newBackend(b, m, Options{Threads: 2, Context: 512})
	ctx := context.Background()
	prompt := benchTokens(m, 33)
	if _, err := be.Forward(ctx, prompt[:32], nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		be.Truncate(32)
		if _, err := be.Forward(ctx, prompt[32:], []int{0}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkPrefill64 is a 64-token prompt into an empty cache, with the last row's logits.
func BenchmarkPrefill64(b *testing.B) { benchPrefill(b, 64) }

// BenchmarkPrefill256 is BenchmarkPrefill64 for 256 tokens, the most a scheduler step evaluates.
func BenchmarkPrefill256(b *testing.B) { benchPrefill(b, 256) }

func benchPrefill(b *testing.B, n int) {
	m := benchModel(b)
	be := newBackend(b, m, Options{Threads: 2, Context: 512})
	ctx := context.Background()
	prompt := benchTokens(m, n)
	for b.Loop() {
		be.Truncate(0)
		if _, err := be.Forward(ctx, prompt, []int{n - 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkAttentionDecode is one decode step's attention in one layer of the SmolLM3-3B shape (16
// query heads, 4 KV heads, head size 128) over 1024 cached positions, in each numerics mode.
func BenchmarkAttentionDecode(b *testing.B) {
	for _, num := range []Numerics{Fast, Llama, Exact} {
		b.Run(num.String(), func(b *testing.B) { benchAttention(b, num, 1024, 1) })
	}
}

// BenchmarkAttentionTurn is the attention, in one layer of the SmolLM3-3B shape, of a conversation's
// next turn: 21 new tokens after 3,000 cached positions (BenchmarkReturnToConversation's step), Fast
// numerics.
func BenchmarkAttentionTurn(b *testing.B) { benchAttention(b, Fast, 3000, 21) }

// benchAttention times the attention of T tokens at positions n-T..n-1 of one sequence.
func benchAttention(b *testing.B, num Numerics, n, T int) {
	c := model.Config{Layers: 1, Heads: 16, KVHeads: 4, HeadDim: 128}
	be := &Backend{cfg: c, threads: 2, pool: newPool(2), kv: newKVPool(1, c.KVDim(), (n+kvBlock-1)/kvBlock), num: num}
	be.s.attn = make([]attnScratch, 2)
	b.Cleanup(be.pool.close)
	rows := make([][]float32, n)
	for p := range rows {
		rows[p] = make([]float32, c.KVDim())
		for i := range rows[p] {
			rows[p][i] = float32((p*31+i*7)%13-6) / 6
		}
	}
	at := slots(fillSeq(be, rows, rows), n-T, T)
	q := make([]float32, T*c.QDim())
	for i := range q {
		q[i] = float32(i%11-5) / 5
	}
	out := make([]float32, T*c.QDim())
	for b.Loop() {
		be.attention(0, at, q, out)
	}
}

// BenchmarkDecodeRows is one decode step of 1 to 8 sequences together (ForwardSeqs, one token
// each after a 32-token prompt): what continuous batching costs per step as the batch grows. Besides the
// mean it reports the fastest step (min-ms), the figure least disturbed by other load on a shared machine.
func BenchmarkDecodeRows(b *testing.B) {
	m := benchModel(b)
	be := newBackend(b, m, Options{Threads: 2, Context: 512})
	ctx := context.Background()
	prompt := benchTokens(m, 33)
	for _, rows := range []int{1, 2, 3, 4, 5, 8} {
		b.Run(fmt.Sprint(rows), func(b *testing.B) {
			batch := make([]engine.SeqEntry, rows)
			for i := range batch {
				id := be.NewSeq()
				b.Cleanup(func() { be.FreeSeq(id) })
				if _, err := be.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: id, Tokens: prompt[:32]}}); err != nil {
					b.Fatal(err)
				}
				batch[i] = engine.SeqEntry{Seq: id, Tokens: prompt[32:], Want: []int{0}}
			}
			fastest := time.Duration(math.MaxInt64)
			for b.Loop() {
				for _, e := range batch {
					be.TruncateSeq(e.Seq, 32)
				}
				t0 := time.Now()
				if _, err := be.ForwardSeqs(ctx, batch); err != nil {
					b.Fatal(err)
				}
				fastest = min(fastest, time.Since(t0))
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(fastest.Microseconds())/1000, "min-ms")
		})
	}
}
