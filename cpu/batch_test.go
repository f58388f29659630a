package cpu

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"

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
// `smolchat synth --preset smollm3-3b`), else the tiny fixture. For interleaved samples, run
// 'BenchmarkStreams/^1$' and 'BenchmarkStreams/^4$' in processes of their own, alternating.
func BenchmarkStreams(b *testing.B) { backendtest.Streams(b, benchEngine(b, 1024, "")) }

// BenchmarkReturnToConversation is the time to first token of a 3,000-token conversation's next turn
// after another conversation ran (backendtest.ReturnToConversation). Model as in BenchmarkStreams.
func BenchmarkReturnToConversation(b *testing.B) {
	backendtest.ReturnToConversation(b, benchEngine(b, 4096, ""))
}

// BenchmarkReturnAfterRestart is the same after a restart, the conversation read from the disk cache
// (backendtest.ReturnAfterRestart). Model as in BenchmarkStreams. (gpu.BenchmarkReturnAfterRestart is
// its GPU twin.)
func BenchmarkReturnAfterRestart(b *testing.B) {
	backendtest.ReturnAfterRestart(b, func(b *testing.B, dir string) *engine.Engine { return benchEngine(b, 4096, dir) })
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

// BenchmarkArrival is the time to first token of a prompt of 512 or 1,536 tokens (2 or 6 chunks) that
// arrives while 3 greedy streams decode, against the same prefill alone and the streams' decode step
// (backendtest.Arrival: issue #15 wants ttft ≤ solo + 2 steps). Model as in BenchmarkStreams.
func BenchmarkArrival(b *testing.B) {
	backendtest.Arrival(b, func(b *testing.B, ctx int) *engine.Engine { return benchEngine(b, ctx, "") })
}
