package cpu

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/engine/backendtest"
	"smolchat/internal/testutil"
)

// TestEngineBatchedMatchesSolo generates greedily for several prompts at once (continuous batching,
// --parallel 4: prompts evaluated beside other sequences' decode steps, two prompts sharing a prefix)
// and for each prompt alone on a fresh engine: the tokens must be the same, since a row's logits do not
// depend on the rest of its batch.
func TestEngineBatchedMatchesSolo(t *testing.T) {
	path := backendtest.WriteSynth(t, "smollm3-tiny", 7)
	load := func(parallel int) *engine.Engine {
		e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: 512, Parallel: parallel})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	e := load(4)
	prompts := backendtest.BatchPrompts(e)
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 20}
	batched := backendtest.GenerateTogether(t, e, prompts, params)
	for i, p := range prompts {
		t.Run(fmt.Sprint("prompt ", i), func(t *testing.T) {
			r, err := load(1).Generate(context.Background(), p, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(batched[i], r.Tokens) {
				t.Errorf("batched %v\nalone   %v", batched[i], r.Tokens)
			}
		})
	}
}

// BenchmarkStreams is the aggregate generation speed of 1 and 4 greedy streams (backendtest.Streams) on
// the CPU, 2 threads. It loads $SMOLCHAT_BENCH_MODEL when set (e.g. a SmolLM3-3B-shaped Q4_K_M file from
// `smolchat synth --preset smollm3-3b`), else the tiny fixture; run it with -count for interleaved
// samples.
func BenchmarkStreams(b *testing.B) { backendtest.Streams(b, benchEngine(b, 1024)) }

// BenchmarkReturnToConversation is the time to first token of a 3,000-token conversation's next turn
// (20 new tokens) after another conversation ran: the conversation cache keeps its blocks, so only the
// new tokens are evaluated. Model as in BenchmarkStreams. (The first turn, not timed, is a full prefill.)
func BenchmarkReturnToConversation(b *testing.B) {
	e := benchEngine(b, 4096)
	tok := e.Tokenizer()
	words := func(n int, seed uint64) []int32 {
		return slices.DeleteFunc(seqTokens(tok.VocabSize(), n, seed), tok.IsEOG)
	}
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 1}
	generate := func(prompt []int32) engine.Result {
		r, err := e.Generate(context.Background(), prompt, params, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	conv := words(3000, 1)
	first := generate(conv)
	var ttft time.Duration
	cached := 0
	round := uint64(1)
	for b.Loop() {
		round++
		generate(words(300, 1000+round)) // another conversation
		conv = append(append(conv, first.Tokens...), words(20, round)...)
		r := generate(conv)
		ttft += r.Timings.TimeToFirstToken
		cached = r.Timings.CachedTokens
		first = r
	}
	b.ReportMetric(float64(ttft.Milliseconds())/float64(b.N), "ttft-ms")
	b.ReportMetric(float64(first.Timings.PromptTokens), "prompt-tokens")
	b.ReportMetric(float64(cached), "cached-tokens")
}

// benchEngine loads $SMOLCHAT_BENCH_MODEL, else the tiny fixture, on 2 threads with --parallel 4.
func benchEngine(b *testing.B, ctx int) *engine.Engine {
	path := os.Getenv("SMOLCHAT_BENCH_MODEL")
	if path == "" {
		path = testutil.SharedFile(b, tinyFile)
	}
	e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: ctx, Parallel: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}
