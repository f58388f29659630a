package backendtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"smolchat/engine"
)

// EngineTokens is n pseudo-random tokens of e's vocabulary, from seed, less its end-of-generation
// tokens.
func EngineTokens(e *engine.Engine, n int, seed uint64) []int32 {
	tok := e.Tokenizer()
	return slices.DeleteFunc(SeqTokens(tok.VocabSize(), n, seed), tok.IsEOG)
}

// BatchPrompts are the prompts of the batched-against-solo tests: five of 3 to 150 tokens, and one that
// shares its first 100 tokens with the third (a fork of a sequence still running).
func BatchPrompts(e *engine.Engine) [][]int32 {
	var prompts [][]int32
	for i, n := range []int{40, 3, 150, 70, 12} {
		prompts = append(prompts, EngineTokens(e, n, uint64(10+i)))
	}
	return append(prompts, append(slices.Clone(prompts[2][:100]), prompts[1]...))
}

// GenerateTogether starts a generation of every prompt at once on e (continuous batching on a
// SeqBackend) and returns each one's tokens.
func GenerateTogether(t testing.TB, e *engine.Engine, prompts [][]int32, p engine.GenParams) [][]int32 {
	t.Helper()
	type out struct {
		tokens []int32
		err    error
	}
	results := make([]chan out, len(prompts))
	for i, prompt := range prompts {
		results[i] = make(chan out, 1)
		go func() {
			r, err := e.Generate(context.Background(), prompt, p, false, nil)
			results[i] <- out{r.Tokens, err}
		}()
	}
	tokens := make([][]int32, len(prompts))
	for i := range prompts {
		r := <-results[i]
		if r.err != nil {
			t.Fatal(r.err)
		}
		tokens[i] = r.tokens
	}
	return tokens
}

// Streams is the aggregate generation speed of 1 and 4 greedy streams of 128 tokens after 32-token
// prompts, generated together by e (loaded with --parallel 4): continuous batching reads each weight
// once per step for every stream. The sub-benchmarks alternate, so a run with -count gives interleaved
// samples.
func Streams(b *testing.B, e *engine.Engine) {
	const tokens = 128
	// The end-of-generation tokens are banned, so that every stream runs its 128 tokens (random weights
	// end some streams early otherwise, and the steps would decode fewer sequences than the benchmark
	// says).
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0, LogitBias: map[int32]float32{}}, MaxTokens: tokens}
	for id := range int32(e.Tokenizer().VocabSize()) {
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
					prompt := EngineTokens(e, 32, round) // no cache hits
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
