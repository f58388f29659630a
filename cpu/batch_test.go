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
func BenchmarkStreams(b *testing.B) { backendtest.Streams(b, benchEngine(b, 1024, "")) }

// BenchmarkReturnToConversation is the time to first token of a 3,000-token conversation's next turn
// (20 new tokens) after another conversation ran: the conversation cache keeps its blocks, so only the
// new tokens are evaluated. Model as in BenchmarkStreams. (The first turn, not timed, is a full prefill.)
// ttft-ms is the engine's (Timings.TimeToFirstToken, from the request's admission); wall-ttft-ms runs
// from the call of Generate to the first token's delta.
func BenchmarkReturnToConversation(b *testing.B) {
	e := benchEngine(b, 4096, "")
	var t turns
	t.first(b, e)
	for b.Loop() {
		t.generate(b, e, t.words(e, 300, 1000+uint64(t.n))) // another conversation
		t.next(b, e)
	}
	t.report(b)
}

// BenchmarkReturnAfterRestart is BenchmarkReturnToConversation's next turn after a restart instead of
// another conversation: the engine is closed (its conversation cache goes to disk, --kv-disk-max) and
// loaded again, so the conversation's positions are read from the disk cache. The file is in the
// operating system's page cache, as after a quick restart (not after a reboot). Model as in
// BenchmarkStreams.
func BenchmarkReturnAfterRestart(b *testing.B) {
	dir := b.TempDir()
	e := benchEngine(b, 4096, dir)
	var t turns
	t.first(b, e)
	for b.Loop() {
		e.Close() // not in the figures: they time the next turn alone
		e = benchEngine(b, 4096, dir)
		t.next(b, e)
	}
	t.report(b)
}

// turns is a long conversation of benchmarks: a 3,000-token first turn, then turns of 20 tokens, each
// timed to its first token.
type turns struct {
	conv, answer []int32
	ttft, wall   time.Duration
	n, cached    int
}

func (t *turns) words(e *engine.Engine, n int, seed uint64) []int32 {
	tok := e.Tokenizer()
	return slices.DeleteFunc(seqTokens(tok.VocabSize(), n, seed), tok.IsEOG)
}

// generate evaluates prompt and picks one token; it returns the result and the time from the call to
// that token's delta.
func (t *turns) generate(b *testing.B, e *engine.Engine, prompt []int32) (engine.Result, time.Duration) {
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 1}
	start := time.Now()
	var first time.Duration
	r, err := e.Generate(context.Background(), prompt, params, false, func(engine.Delta) error {
		if first == 0 {
			first = time.Since(start)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if first == 0 {
		first = time.Since(start) // the token made no text
	}
	return r, first
}

func (t *turns) first(b *testing.B, e *engine.Engine) {
	t.conv = t.words(e, 3000, 1)
	r, _ := t.generate(b, e, t.conv)
	t.answer = r.Tokens
}

func (t *turns) next(b *testing.B, e *engine.Engine) {
	t.n++
	t.conv = slices.Concat(t.conv, t.answer, t.words(e, 20, uint64(t.n)))
	r, wall := t.generate(b, e, t.conv)
	t.ttft += r.Timings.TimeToFirstToken
	t.wall += wall
	t.cached = r.Timings.CachedTokens
	t.answer = r.Tokens
}

func (t *turns) report(b *testing.B) {
	b.ReportMetric(float64(t.ttft.Milliseconds())/float64(t.n), "ttft-ms")
	b.ReportMetric(float64(t.wall.Milliseconds())/float64(t.n), "wall-ttft-ms")
	b.ReportMetric(float64(len(t.conv)), "prompt-tokens")
	b.ReportMetric(float64(t.cached), "cached-tokens")
}

// benchEngine loads $SMOLCHAT_BENCH_MODEL, else the tiny fixture, on 2 threads with --parallel 4, with
// the KV disk cache in kvDisk ("" = off).
func benchEngine(b *testing.B, ctx int, kvDisk string) *engine.Engine {
	path := os.Getenv("SMOLCHAT_BENCH_MODEL")
	if path == "" {
		path = testutil.SharedFile(b, tinyFile)
	}
	e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: ctx, Parallel: 4,
		KVDisk: kvDisk, KVDiskMax: engine.DefaultKVDiskMax})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkArrival is the time to first token of a 512-token prompt that arrives while 3 greedy streams
// decode, against the same prefill alone and the streams' decode step (backendtest.Arrival: issue #15
// wants ttft ≤ solo + 2 steps). Model as in BenchmarkStreams.
func BenchmarkArrival(b *testing.B) { backendtest.Arrival(b, benchEngine(b, 1024, "")) }
