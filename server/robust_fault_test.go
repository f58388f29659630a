package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"smolchat/cpu"
	"smolchat/engine"
	"smolchat/internal/testutil"
	"smolchat/model"
)

// lostGen is the test double with a device that fails: its next `failures` generations stream one
// token, then fail with an error wrapping engine.ErrBackendLost, as the engine reports a lost GPU.
type lostGen struct {
	*fakeGen
	failures atomic.Int32
}

var errDeviceLost = fmt.Errorf("queue submit: %w (the gpu backend was replaced: now gpu on Test GPU)", engine.ErrBackendLost)

func (g *lostGen) fail(emit func(engine.Delta) error) (engine.Result, error) {
	if g.failures.Add(-1) < 0 {
		return engine.Result{}, nil
	}
	if emit != nil {
		emit(engine.Delta{Answer: "Half an "})
	}
	return engine.Result{FinishReason: engine.FinishStop}, errDeviceLost
}

func (g *lostGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	if res, err := g.fail(emit); err != nil {
		return res, err
	}
	return g.fakeGen.Chat(ctx, req, emit)
}

func (g *lostGen) Complete(ctx context.Context, prompt string, p engine.GenParams, emit func(engine.Delta) error) (engine.Result, error) {
	if res, err := g.fail(emit); err != nil {
		return res, err
	}
	return g.fakeGen.Complete(ctx, prompt, p, emit)
}

// TestBackendLostFailsOneRequest loses the device during a request on each path: the JSON API answers a
// 503 in OpenAI's shape that says to retry, a stream ends with an error chunk (and no [DONE]), the page
// shows an error notice; in each case the next request succeeds.
func TestBackendLostFailsOneRequest(t *testing.T) {
	g := &lostGen{fakeGen: newFake()}
	_, base := startServer(t, g, Config{})
	const body = `{"messages":[{"role":"user","content":"hello"}]}`

	t.Run("api", func(t *testing.T) {
		g.failures.Store(1)
		resp := postJSON(t, base+"/v1/chat/completions", body)
		var out chatResponse
		decodeBody(t, resp, &out)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || out.Error == nil ||
			out.Error.Code == nil || *out.Error.Code != "backend_lost" || !strings.Contains(out.Error.Message, "retry") {
			t.Fatalf("lost device: status %d, Retry-After %q, error %+v", resp.StatusCode, resp.Header.Get("Retry-After"), out.Error)
		}
		t.Logf("503 %s: %s", *out.Error.Code, out.Error.Message)
		if got := callAPI(t, base+"/v1/chat/completions", body); got.status != 200 || got.err != nil {
			t.Fatalf("next request: %v", got)
		}
	})

	t.Run("api stream", func(t *testing.T) {
		g.failures.Store(1)
		chunks, done := streamChunks(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"hello"}]}`)
		last := chunks[len(chunks)-1]
		if done || last.Error == nil || last.Error.Code == nil || *last.Error.Code != "backend_lost" {
			t.Fatalf("lost device in a stream: [DONE] %v, last chunk %+v", done, last)
		}
		if got := callAPI(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"hello"}]}`); got.err != nil {
			t.Fatalf("next stream: %v", got)
		}
	})

	t.Run("page", func(t *testing.T) {
		b := newBrowser(t, base)
		g.failures.Store(1)
		conv, sid, _ := b.send("", "hello", false)
		evs := b.stream(sid, nil)
		last := lastEvent(t, evs)
		if last.Name != "failed" || !strings.Contains(last.Data, "The answer failed") {
			t.Fatalf("lost device on the page: last event %+v", last)
		}
		_, sid, _ = b.send(conv, "again", false)
		if last := lastEvent(t, b.stream(sid, nil)); last.Name != "done" || !strings.Contains(last.Data, "again#7") {
			t.Fatalf("next answer on the page: %+v", last)
		}
	})
}

// flakyAdapter is the adapter name that makes the test's "gpu" backend one that is lost after a few
// steps. Any other adapter gets an error, as from a machine without a GPU, so tests that load with
// Backend "auto" still get the CPU.
const flakyAdapter = "robust-test-flaky"

var (
	registerFlaky sync.Once
	flakyMade     atomic.Int32 // backends the factory made since the test started
)

// flakyBackend is the CPU backend posing as a GPU that is lost on its lostAt'th Forward call. It holds
// the backend as an engine.Backend so that only Forward runs the model (no optional fast path of the
// CPU backend bypasses the failure).
type flakyBackend struct {
	engine.Backend
	calls, lostAt int
	n             int32 // which device this is: 1 for the first the factory made
}

func (b *flakyBackend) Name() string   { return "gpu" }
func (b *flakyBackend) Device() string { return fmt.Sprintf("Flaky test GPU #%d", b.n) }

func (b *flakyBackend) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	if b.calls++; b.calls == b.lostAt {
		return nil, fmt.Errorf("queue submit: device lost: %w", engine.ErrBackendLost)
	}
	return b.Backend.Forward(ctx, tokens, want)
}

// TestBackendLostRealEngine runs stories260K on a "GPU" whose first device is lost in the middle of the
// first answer: the engine's own recovery (it re-creates the backend) and the server's answer meet end
// to end. The failed request gets a 503 saying the backend was replaced; /health names the new device;
// the next request is answered in full by it, and greedy decoding gives the same text as before the loss.
func TestBackendLostRealEngine(t *testing.T) {
	path := testutil.SharedFile(t, "stories260K.gguf")
	flakyMade.Store(0)
	registerFlaky.Do(func() {
		engine.RegisterBackend("gpu", func(m *model.Model, o engine.BackendOptions) (engine.Backend, error) {
			if o.Adapter != flakyAdapter {
				return nil, errors.New("no GPU in the server tests")
			}
			b, err := cpu.New(m, cpu.Options{Threads: 1, Context: o.Context})
			if err != nil {
				return nil, err
			}
			// The first device is lost at its 4th step; the ones made after it work.
			lostAt, n := 0, flakyMade.Add(1)
			if n == 1 {
				lostAt = 4
			}
			return &flakyBackend{Backend: b, lostAt: lostAt, n: n}, nil
		})
	})
	e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "gpu", Adapter: flakyAdapter, Context: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, base := startServer(t, e, Config{})
	const body = `{"prompt":"Once upon a time","max_tokens":12,"temperature":0}`

	got := callAPI(t, base+"/v1/completions", body)
	if got.status != 503 || got.err == nil || got.err.Code == nil || *got.err.Code != "backend_lost" ||
		!strings.Contains(got.err.Message, "backend was replaced") {
		t.Fatalf("request on the lost device: %v", got)
	}
	t.Logf("lost device: %v", got)
	if n := flakyMade.Load(); n != 2 {
		t.Fatalf("%d backends made, want 2 (the first, and its replacement)", n)
	}
	var health struct{ Status, Backend, Device string }
	decodeBody(t, get(t, base+"/health"), &health)
	if health.Status != "ok" || health.Device != "Flaky test GPU #2" {
		t.Errorf("/health after the replacement: %+v, want the second device", health)
	}

	resp := postJSON(t, base+"/v1/completions", body)
	var out struct {
		Choices []struct {
			Text         string
			FinishReason string `json:"finish_reason"`
		}
	}
	decodeBody(t, resp, &out)
	// stories260K's greedy continuation of "Once upon a time" (../shared/testdata/README.md).
	const want = ", there was a little girl named Lily. She"
	if resp.StatusCode != 200 || len(out.Choices) != 1 || out.Choices[0].Text != want || out.Choices[0].FinishReason != "length" {
		t.Fatalf("next request: status %d, %+v; want %q", resp.StatusCode, out, want)
	}
}
