package cpu

import (
	"context"
	"os"
	"testing"

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
func BenchmarkPrefill64(b *testing.B) {
	m := benchModel(b)
	be := newBackend(b, m, Options{Threads: 2, Context: 512})
	ctx := context.Background()
	prompt := benchTokens(m, 64)
	for b.Loop() {
		be.Truncate(0)
		if _, err := be.Forward(ctx, prompt, []int{63}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "tok/s")
}
