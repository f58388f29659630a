package cpu

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"smolchat/engine"
	"smolchat/engine/backendtest"
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
