package cpu

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
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
	tok := e.Tokenizer()
	var prompts [][]int32
	for i, n := range []int{40, 3, 150, 70, 12} {
		p := seqTokens(tok.VocabSize(), n, uint64(10+i))
		p = slices.DeleteFunc(p, tok.IsEOG)
		prompts = append(prompts, p)
	}
	prompts = append(prompts, append(slices.Clone(prompts[2][:100]), prompts[1]...)) // shares 100 tokens with a running one
	const max = 20
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: max}

	type out struct {
		tokens []int32
		err    error
	}
	results := make([]chan out, len(prompts))
	for i, p := range prompts {
		results[i] = make(chan out, 1)
		go func() {
			r, err := e.Generate(context.Background(), p, params, false, nil)
			results[i] <- out{r.Tokens, err}
		}()
	}
	batched := make([][]int32, len(prompts))
	for i := range prompts {
		r := <-results[i]
		if r.err != nil {
			t.Fatal(r.err)
		}
		batched[i] = r.tokens
	}
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

// BenchmarkStreams is the aggregate generation speed of 1 and 4 greedy streams of 128 tokens after
// 32-token prompts, generated together by the engine (--parallel 4, 2 threads): continuous batching
// reads each weight once per step for every stream. The end-of-generation tokens are banned, so that
// every stream runs its 128 tokens (random weights end some streams early otherwise, and the steps
// would decode fewer sequences than the benchmark says). It loads $SMOLCHAT_BENCH_MODEL when set (e.g. a
// SmolLM3-3B-shaped Q4_K_M file from `smolchat synth --preset smollm3-3b`), else the tiny fixture; the
// sub-benchmarks alternate, so run it with -count for interleaved samples.
func BenchmarkStreams(b *testing.B) {
	e := benchEngine(b, 1024)
	vocab := e.Tokenizer().VocabSize()
	const tokens = 128
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0, LogitBias: map[int32]float32{}}, MaxTokens: tokens}
	for id := range int32(vocab) {
		if e.Tokenizer().IsEOG(id) {
			params.LogitBias[id] = -1e9
		}
	}
	round := uint64(0)
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprint(streams), func(b *testing.B) {
			generated := 0
			for b.Loop() {
				var wg sync.WaitGroup
				counts := make([]int, streams)
				for s := range streams {
					round++
					prompt := slices.DeleteFunc(seqTokens(vocab, 32, round), e.Tokenizer().IsEOG) // no cache hits
					wg.Go(func() {
						r, err := e.Generate(context.Background(), prompt, params, false, nil)
						if err != nil {
							b.Error(err)
						}
						counts[s] = len(r.Tokens)
					})
				}
				wg.Wait()
				for _, n := range counts {
					if n != tokens {
						b.Fatalf("a stream generated %d tokens, want %d", n, tokens)
					}
					generated += n
				}
			}
			b.ReportMetric(float64(generated)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

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
