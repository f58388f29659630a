package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smolchat/engine"
)

// fakeGen is a test double of the model. It streams word-sized tokens with a delay between them,
// honours cancellation and MaxTokens, reasons first when thinking is on, and makes every answer
// traceable to its request: it echoes the last user message, then emits TAG#0, TAG#1, … where TAG is the
// message's first word. It records every request and the most generations it ever ran at once.
type fakeGen struct {
	delay       time.Duration // between tokens
	answerWords int           // numbered tokens after the echo
	thinkWords  int           // reasoning tokens when thinking is on
	context     int
	noReasoning bool // Info says the model has no reasoning mode
	tools       bool // Info says the chat template has a tools section
	// reasoning and answer, when set (by script), replace the generated reasoning and answer.
	reasoning, answer string
	// resume, when set, holds a generation before its token number pauseAt until it is closed (or the
	// generation is cancelled): a test looks at a page mid-answer.
	resume  chan struct{}
	pauseAt int

	mu       sync.Mutex
	requests []engine.ChatRequest
	prompts  []string

	active    atomic.Int32
	maxActive atomic.Int32
	calls     atomic.Int32
}

func newFake() *fakeGen {
	return &fakeGen{delay: 2 * time.Millisecond, answerWords: 8, thinkWords: 4, context: 4096}
}

func (f *fakeGen) Info() engine.Info {
	return engine.Info{Model: "SmolLM3-3B-Q4_K_M.gguf", Arch: "smollm3", Quant: "Q4_K_M", Backend: "gpu",
		Device: "Fake GPU (test double)", Context: f.context, Params: 3_080_000_000, Reasoning: !f.noReasoning, Tools: f.tools}
}

// script makes the fake give canned reasoning and answer from now on.
func (f *fakeGen) script(reasoning, answer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasoning, f.answer = reasoning, answer
}

func (f *fakeGen) lastRequest() engine.ChatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return engine.ChatRequest{}
	}
	return f.requests[len(f.requests)-1]
}

func (f *fakeGen) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// waitIdle waits until no generation runs, and reports how long that took.
func (f *fakeGen) waitIdle(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		if f.active.Load() == 0 {
			return time.Since(start), true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return limit, false
}

func words(s string) int { return len(strings.Fields(s)) }

func (f *fakeGen) CountChatTokens(msgs []engine.Message, think *bool, tools ...json.RawMessage) (int, error) {
	n := 12 + 20*len(tools) // the template's markup
	for _, m := range msgs {
		n += 4 + words(m.Content)
	}
	return n, nil
}

func (f *fakeGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	last := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			last = m.Content
		}
	}
	think := req.Think == nil || *req.Think
	if len(req.Messages) > 0 && req.Messages[0].Role == "system" {
		// As in SmolLM3's template, a flag in the system prompt wins.
		switch sys := req.Messages[0].Content; {
		case strings.Contains(sys, "/no_think"):
			think = false
		case strings.Contains(sys, "/think"):
			think = true
		}
	}
	prompt, _ := f.CountChatTokens(req.Messages, req.Think)
	return f.generate(ctx, prompt, last, think, req.Continue, req.Params, emit)
}

func (f *fakeGen) Complete(ctx context.Context, prompt string, p engine.GenParams, emit func(engine.Delta) error) (engine.Result, error) {
	f.mu.Lock()
	f.prompts = append(f.prompts, prompt)
	f.mu.Unlock()
	return f.generate(ctx, words(prompt)+1, prompt, false, nil, p, emit)
}

// expectedAnswer is the answer the fake gives to a user message, when nothing cuts it short.
func (f *fakeGen) expectedAnswer(msg string) string {
	return strings.Join(f.answerTokens(msg), "")
}

func (f *fakeGen) answerTokens(msg string) []string {
	tag := "x"
	if w := strings.Fields(msg); len(w) > 0 {
		tag = w[0]
	}
	toks := []string{"You said: " + msg + "\n"}
	for i := range f.answerWords {
		toks = append(toks, fmt.Sprintf("%s#%d ", tag, i))
	}
	return toks
}

// splitTokens cuts text into word-sized tokens, each with the whitespace before its word.
func splitTokens(text string) []string {
	var toks []string
	start := 0
	for i := 1; i < len(text); i++ {
		if (text[i] == ' ' || text[i] == '\n') && text[i-1] != ' ' && text[i-1] != '\n' {
			toks = append(toks, text[start:i])
			start = i
		}
	}
	return append(toks, text[start:])
}

// generate streams the answer to msg; a continuation (cont) gets what follows the begun answer.
func (f *fakeGen) generate(ctx context.Context, prompt int, msg string, think bool, cont *engine.Partial, p engine.GenParams,
	emit func(engine.Delta) error) (engine.Result, error) {
	f.calls.Add(1)
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.maxActive.Load()
		if n <= m || f.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	start := time.Now()
	res := engine.Result{FinishReason: engine.FinishStop}
	res.Timings.PromptTokens = prompt
	f.mu.Lock()
	reasoning, scripted := f.reasoning, f.answer
	f.mu.Unlock()
	var deltas []engine.Delta
	switch {
	case think && reasoning != "":
		for _, t := range splitTokens(reasoning) {
			deltas = append(deltas, engine.Delta{Thinking: t})
		}
	case think:
		for i := range f.thinkWords {
			deltas = append(deltas, engine.Delta{Thinking: fmt.Sprintf("Thinking step %d. ", i)})
		}
	}
	answerToks := f.answerTokens(msg)
	if scripted != "" {
		answerToks = splitTokens(scripted)
	}
	if cont != nil {
		// The reasoning is over once an answer has begun; the answer goes on after the text it has.
		if cont.Answer != "" {
			deltas = nil
		}
		begun := ""
		for len(answerToks) > 0 && strings.HasPrefix(cont.Answer, begun+answerToks[0]) {
			begun += answerToks[0]
			answerToks = answerToks[1:]
		}
	}
	for _, t := range answerToks {
		deltas = append(deltas, engine.Delta{Answer: t})
	}
	var thinking, answer strings.Builder
	var firstToken time.Time
	for i, d := range deltas {
		if p.MaxTokens > 0 && i >= p.MaxTokens {
			res.FinishReason = engine.FinishLength
			break
		}
		if f.resume != nil && i == f.pauseAt {
			select {
			case <-ctx.Done():
			case <-f.resume:
			}
		}
		select {
		case <-ctx.Done():
			res.FinishReason = engine.FinishCancelled
		case <-time.After(f.delay):
		}
		if res.FinishReason == engine.FinishCancelled {
			break
		}
		if firstToken.IsZero() {
			firstToken = time.Now()
			res.Timings.TimeToFirstToken = firstToken.Sub(start)
		}
		d.Token = int32(i)
		res.Tokens = append(res.Tokens, d.Token)
		thinking.WriteString(d.Thinking)
		answer.WriteString(d.Answer)
		if emit != nil {
			if err := emit(d); err != nil {
				res.FinishReason = engine.FinishCancelled
				break
			}
		}
	}
	res.Thinking, res.Answer = thinking.String(), answer.String()
	res.Text = res.Answer
	if res.Thinking != "" {
		res.Text = "<think>\n" + res.Thinking + "\n</think>\n" + res.Answer
	}
	res.Timings.GeneratedTokens = len(res.Tokens)
	if !firstToken.IsZero() {
		res.Timings.GenDuration = time.Since(firstToken)
		if n := len(res.Tokens) - 1; n > 0 {
			res.Timings.GenTPS = float64(n) / res.Timings.GenDuration.Seconds()
		}
	}
	res.Timings.PromptDuration = res.Timings.TimeToFirstToken
	if res.Timings.PromptDuration > 0 {
		res.Timings.PromptTPS = float64(prompt) / res.Timings.PromptDuration.Seconds()
	}
	return res, nil
}

// startServer runs a server for gen (nil: still loading) on a loopback port and returns it with its
// base URL; it is shut down when the test ends.
func startServer(t testing.TB, gen Generator, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, gen)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s, ln)
	return s, "http://" + ln.Addr().String()
}

// serveOn serves s on ln until the test ends, then shuts it down.
func serveOn(t testing.TB, s *Server, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		// fasthttp closes a connection that never sent a request only after it has been open for 5 s,
		// and Go's client sometimes dials one it never uses: allow for that.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

var _ Generator = (*fakeGen)(nil)

// httpClient is a client with a timeout, so that a hung test fails instead of stalling.
var httpClient = &http.Client{Timeout: 20 * time.Second}
