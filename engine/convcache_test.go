package engine

import (
	"context"
	"slices"
	"testing"
)

// converse runs a greedy generation of n tokens alone and returns its result and the tokens the fake
// model evaluated for it.
func converse(t *testing.T, e *Engine, f *seqFake, prompt []int32, n int) (Result, int) {
	t.Helper()
	f.mu.Lock()
	before := f.fed
	f.mu.Unlock()
	res, err := e.Generate(context.Background(), prompt, greedy(n), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := continuation(prompt, n); !slices.Equal(res.Tokens, want) {
		t.Fatalf("tokens %v, want %v", res.Tokens, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return res, f.fed - before
}

// next is the next turn of a conversation: its prompt, its answer and a new message.
func nextTurn(p []int32, res Result, msg ...int32) []int32 {
	return append(append(slices.Clone(p), res.Tokens...), msg...)
}

// TestConvCacheSwitch returns to a conversation after another: the second turn of A evaluates only what
// follows what A's sequence holds (its new message, and the last answer token, which was never fed).
func TestConvCacheSwitch(t *testing.T) {
	e, f := newSeqEngine(t, 2, 1000)
	a, b := prompt(1, 40), prompt(2, 30)
	resA, _ := converse(t, e, f, a, 5)
	converse(t, e, f, b, 5)
	a2 := nextTurn(a, resA, 7, 8, 9)
	res, fed := converse(t, e, f, a2, 5)
	if want := len(a) + len(resA.Tokens) - 1; res.Timings.CachedTokens != want {
		t.Errorf("A's second turn: %d cached tokens, want %d", res.Timings.CachedTokens, want)
	}
	// The new message and the last answer token, then 4 decode steps (the 5th token is not fed).
	if want := 3 + 1 + 4; fed != want {
		t.Errorf("A's second turn evaluated %d tokens, want %d", fed, want)
	}
	// A prompt sharing B's first 20 tokens starts after them, and B stays cached for itself.
	c := append(slices.Clone(b[:20]), 5, 5)
	if res, _ := converse(t, e, f, c, 3); res.Timings.CachedTokens != 20 {
		t.Errorf("a prompt sharing 20 tokens with B: %d cached", res.Timings.CachedTokens)
	}
	if res, _ := converse(t, e, f, b, 2); res.Timings.CachedTokens != len(b)-1 {
		t.Errorf("B again: %d cached, want %d", res.Timings.CachedTokens, len(b)-1)
	}
	// Kept: A's second turn (which covers its first), B, and the prompt that branched off B. B's second
	// run holds a prefix of B's first and is not kept twice.
	if st, _ := e.SchedulerStats(); st.CacheHitTokens == 0 || st.Evictions != 0 || st.CachedSeqs != 3 {
		t.Errorf("stats: %d hit tokens, %d evictions, %d cached; want some hits, no eviction, 3 cached", st.CacheHitTokens, st.Evictions, st.CachedSeqs)
	}
}

// TestConvCacheEvictionOrder fills a budget with cached conversations: the least recently used one is
// evicted first, where using one (a request that continues it) makes it the most recent.
func TestConvCacheEvictionOrder(t *testing.T) {
	// Blocks of 4 positions; a conversation of a 6-token prompt and 3 answer tokens holds 8 positions.
	e, f := newSeqEngine(t, 1, 8)
	p := map[string][]int32{"A": prompt(1, 6), "B": prompt(2, 6), "C": prompt(3, 6), "D": prompt(4, 6)}
	res := map[string]Result{}
	steps := func() int64 { st, _ := e.SchedulerStats(); return st.Steps }
	var stepsC int64
	for _, k := range []string{"A", "B", "C"} {
		before := steps()
		res[k], _ = converse(t, e, f, p[k], 3)
		stepsC = steps() - before
	}
	// A continues (14 positions, 4 blocks): the pool (2+2+4) is full; A is now the most recent.
	converse(t, e, f, nextTurn(p["A"], res["A"], 9, 9, 9), 3)
	// D needs 2 blocks: B, the least recently used, goes.
	before := steps()
	converse(t, e, f, p["D"], 3)
	st, _ := e.SchedulerStats()
	if st.Evictions != 1 || st.CachedSeqs != 3 {
		t.Fatalf("after D: %d evictions, %d cached; want 1 and 3", st.Evictions, st.CachedSeqs)
	}
	// The batch the full pool refused evaluated nothing: D took as many steps as C.
	if got := st.Steps - before; got != stepsC {
		t.Errorf("D took %d steps, C %d: a refused batch counted as a step", got, stepsC)
	}
	for _, c := range []struct {
		name   string
		prompt []int32
		cached int
	}{
		{"C again", nextTurn(p["C"], res["C"], 9), 8}, // kept
		{"B again", nextTurn(p["B"], res["B"], 9), 0}, // evicted
	} {
		if r, _ := converse(t, e, f, c.prompt, 1); r.Timings.CachedTokens != c.cached {
			t.Errorf("%s: %d cached tokens, want %d", c.name, r.Timings.CachedTokens, c.cached)
		}
	}
}
