package backendtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/internal/testutil"
)

// ReturnToConversation is the time to first token of a 3,000-token conversation's next turn (20 new
// tokens) after another conversation ran on e: the conversation cache keeps its blocks, so only the new
// tokens are evaluated. (The first turn, not timed, is a full prefill.) ttft-ms is the engine's
// (Timings.TimeToFirstToken, from the request's admission); wall-ttft-ms runs from the call of Generate
// to the first token's delta. e needs a context of 4,096 positions or more.
func ReturnToConversation(b *testing.B, e *engine.Engine) {
	var t turns
	t.first(b, e)
	for b.Loop() {
		t.generate(b, e, EngineTokens(e, 300, 1000+uint64(t.n))) // another conversation
		t.next(b, e)
	}
	t.report(b)
}

// ReturnAfterRestart is ReturnToConversation's next turn after a restart instead of another
// conversation: the engine is closed (its conversation cache goes to disk, --kv-disk-max) and loaded
// again by load with the disk cache in dir, so the conversation's positions are read from the disk
// cache. The files are in the operating system's page cache, as after a quick restart (not after a
// reboot).
func ReturnAfterRestart(b *testing.B, load func(b *testing.B, kvDir string) *engine.Engine) {
	dir := b.TempDir()
	e := load(b, dir)
	var t turns
	t.first(b, e)
	for b.Loop() {
		e.Close() // not in the figures: they time the next turn alone
		e = load(b, dir)
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

// generate evaluates prompt and picks one token; it returns the result and the time from the call to
// that token's delta.
func (t *turns) generate(b *testing.B, e *engine.Engine, prompt []int32) (engine.Result, time.Duration) {
	start := time.Now()
	r, first, _ := oneToken(b, e, prompt)
	if first == 0 {
		first = time.Since(start) // the token made no text
	}
	return r, first
}

// oneToken evaluates prompt and picks one token greedily; it returns the result, the time from the call
// to that token's delta (0 when the token made no text) and the CPU time the process used meanwhile
// (seconds, testutil.ProcessCPU).
func oneToken(b *testing.B, e *engine.Engine, prompt []int32) (engine.Result, time.Duration, float64) {
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 1}
	start, cpu0 := time.Now(), testutil.ProcessCPU()
	var first time.Duration
	var cpu float64
	r, err := e.Generate(context.Background(), prompt, params, false, func(engine.Delta) error {
		if first == 0 {
			first, cpu = time.Since(start), testutil.ProcessCPU()-cpu0
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return r, first, cpu
}

func (t *turns) first(b *testing.B, e *engine.Engine) {
	t.conv = EngineTokens(e, 3000, 1)
	r, _ := t.generate(b, e, t.conv)
	t.answer = r.Tokens
}

func (t *turns) next(b *testing.B, e *engine.Engine) {
	t.n++
	t.conv = slices.Concat(t.conv, t.answer, EngineTokens(e, 20, uint64(t.n)))
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
