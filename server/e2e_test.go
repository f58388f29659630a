package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	_ "smolchat/cpu"
	"smolchat/engine"
	"smolchat/internal/testutil"
	"smolchat/model/synth"
	"smolchat/model/tokenizer"
)

// The end-to-end tests run the server on the real engine (CPU backend) with two models:
//   - stories260K, a real trained 260K-parameter TinyStories model from the shared test data. It has no
//     chat template, so the raw renderer feeds it the user's text, and it continues it as a children's
//     story. Tests that need it skip when the shared data is absent.
//   - a synthesized model of SmolLM3's architecture (model/synth, preset smollm3-tiny). Its weights are
//     random, so its text is gibberish, but it has SmolLM3's chat template and special tokens: thinking
//     on and off render different prompts for real. It is written once per test binary.

// TestMain removes the synthesized model written for this test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	synthModel.remove()
	os.Exit(code)
}

// synthModel is the smollm3-tiny model file, written on first use and shared by the tests of one binary.
var synthModel synthFile

type synthFile struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func (s *synthFile) get(t testing.TB) string {
	t.Helper()
	s.once.Do(func() {
		start := time.Now()
		s.dir, s.err = os.MkdirTemp("", "smolchat-e2e-")
		if s.err != nil {
			return
		}
		s.path, s.err = writeSynth(filepath.Join(s.dir, "smollm3-tiny-synthetic.gguf"))
		t.Logf("synthesized %s in %v", filepath.Base(s.path), time.Since(start).Round(time.Millisecond))
	})
	if s.err != nil {
		t.Fatalf("synthesizing the smollm3-tiny model: %v", s.err)
	}
	return s.path
}

func writeSynth(path string) (string, error) {
	p, err := synth.PresetByName("smollm3-tiny")
	if err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := synth.Write(context.Background(), f, p, synth.Options{Seed: 1}); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func (s *synthFile) remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// loadEngine loads a model on the CPU backend with a context of ctxLen tokens, closed when t ends.
func loadEngine(t testing.TB, path string, ctxLen int) *engine.Engine {
	t.Helper()
	e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Context: ctxLen})
	if err != nil {
		t.Fatalf("loading %s: %v", filepath.Base(path), err)
	}
	t.Cleanup(func() { e.Close() })
	// SmolLM3's template writes today's date into the prompt, and a random-weight model's answer turns
	// on every prompt token: a pinned date keeps the tests' answers the same from one day to the next.
	e.Date = testDate
	return e
}

// testDate is the date the tests' prompts carry.
var testDate = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// storiesEngine is stories260K on the CPU, or a skip when the shared test data is absent.
func storiesEngine(t testing.TB, ctxLen int) *engine.Engine {
	t.Helper()
	return loadEngine(t, testutil.SharedFile(t, "stories260K.gguf"), ctxLen)
}

// synthEngine is the synthesized SmolLM3-architecture model on the CPU.
func synthEngine(t testing.TB, ctxLen int) *engine.Engine {
	t.Helper()
	return loadEngine(t, synthModel.get(t), ctxLen)
}

// recorder is the real engine with a test's eyes on it: it records every chat request and its result,
// and can be told to slow the stream or to make the model reason. The text is always the engine's own.
type recorder struct {
	*engine.Engine

	mu      sync.Mutex
	pace    time.Duration // sleep after each streamed token, so a person (the test) can press Stop
	reason  int           // > 0: force a reasoning block of at most this many tokens (see forcedReasoning)
	reqs    []engine.ChatRequest
	results []engine.Result
}

func newRecorder(e *engine.Engine) *recorder { return &recorder{Engine: e} }

func (r *recorder) setPace(d time.Duration) { r.mu.Lock(); r.pace = d; r.mu.Unlock() }
func (r *recorder) setReason(n int)         { r.mu.Lock(); r.reason = n; r.mu.Unlock() }

func (r *recorder) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	pace, reason := r.pace, r.reason
	r.mu.Unlock()
	if pace > 0 && emit != nil {
		inner := emit
		emit = func(d engine.Delta) error {
			if err := inner(d); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(pace):
			}
			return nil
		}
	}
	var res engine.Result
	var err error
	if reason > 0 && (req.Think == nil || *req.Think) {
		res, err = forcedReasoning(ctx, r.Engine, req, reason, emit)
	} else {
		res, err = r.Engine.Chat(ctx, req, emit)
	}
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
	return res, err
}

// last is the latest request and its result.
func (r *recorder) last(t testing.TB) (engine.ChatRequest, engine.Result) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 || len(r.results) != len(r.reqs) {
		t.Fatalf("recorder: %d requests, %d results; want a finished request", len(r.reqs), len(r.results))
	}
	return r.reqs[len(r.reqs)-1], r.results[len(r.results)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.results)
}

// forcedReasoning makes the model reason the way a reasoning budget does: the prompt is followed by
// "<think>\n", the model's next budget tokens are its reasoning, then "\n</think>\n" closes the block and the
// model writes its answer. Every generated character is the engine's; the test adds only the tags. It
// exists because the synthesized model, with random weights, never opens a <think> block by itself.
func forcedReasoning(ctx context.Context, e *engine.Engine, req engine.ChatRequest, budget int,
	emit func(engine.Delta) error) (engine.Result, error) {
	_, prompt, err := e.RenderChat(req.Messages, req.Think)
	if err != nil {
		return engine.Result{}, err
	}
	encode := func(s string) []int32 {
		return e.Tokenizer().Encode(s, tokenizer.EncodeOptions{ParseSpecial: true})
	}
	ids := append(append([]int32(nil), prompt...), encode("<think>\n")...)
	p := req.Params
	p.MaxTokens = budget
	if req.Params.MaxTokens > 0 {
		p.MaxTokens = min(budget, req.Params.MaxTokens)
	}
	think, err := e.Generate(ctx, ids, p, true, emit)
	budgetSpent := think.FinishReason == engine.FinishLength && len(think.Tokens) == budget
	if err != nil || !budgetSpent || think.Answer != "" || len(think.Tokens) == req.Params.MaxTokens {
		// An error, a stop, the context or the request's max tokens reached, or the model closed
		// the block itself: that is the whole answer.
		think.PromptTokens = prompt
		think.Timings.PromptTokens = len(prompt)
		think.Text = "<think>\n" + think.Text
		return think, err
	}
	ids = append(append(ids, think.Tokens...), encode("\n</think>\n")...)
	p = req.Params
	if p.MaxTokens > 0 {
		p.MaxTokens -= len(think.Tokens)
	}
	answer, err := e.Generate(ctx, ids, p, false, emit)
	res := answer
	res.PromptTokens = prompt
	res.Tokens = append(append([]int32(nil), think.Tokens...), answer.Tokens...)
	res.Thinking = think.Thinking
	res.Text = "<think>\n" + think.Text + "\n</think>\n" + answer.Text
	tm := &res.Timings
	tm.PromptTokens = len(prompt)
	tm.CachedTokens = think.Timings.CachedTokens
	tm.GeneratedTokens = len(res.Tokens)
	tm.TimeToFirstToken = think.Timings.TimeToFirstToken
	tm.PromptDuration, tm.PromptTPS = think.Timings.PromptDuration, think.Timings.PromptTPS
	tm.GenDuration = think.Timings.GenDuration + answer.Timings.PromptDuration + answer.Timings.GenDuration
	if n := len(res.Tokens) - 1; n > 0 && tm.GenDuration > 0 {
		tm.GenTPS = float64(n) / tm.GenDuration.Seconds()
	}
	return res, err
}

var _ Generator = (*recorder)(nil)

// sdkStream runs one streaming chat completion and returns the accumulated completion, the reasoning
// that arrived in delta.reasoning_content, and how many chunks carried text.
func sdkStream(t *testing.T, ctx context.Context, client openai.Client, params openai.ChatCompletionNewParams,
	opts ...option.RequestOption) (openai.ChatCompletion, string, int) {
	t.Helper()
	stream := client.Chat.Completions.NewStreaming(ctx, params, opts...)
	var acc openai.ChatCompletionAccumulator
	var reasoning strings.Builder
	textChunks, chunks := 0, 0
	for stream.Next() {
		chunk := stream.Current()
		chunks++
		if !acc.AddChunk(chunk) {
			t.Fatalf("the SDK's accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		d := chunk.Choices[0].Delta
		if d.Content != "" {
			textChunks++
		}
		if field, ok := d.JSON.ExtraFields["reasoning_content"]; ok {
			var s string
			if err := json.Unmarshal([]byte(field.Raw()), &s); err != nil {
				t.Fatalf("chunk %d: reasoning_content: %v", chunks, err)
			}
			reasoning.WriteString(s)
			textChunks++
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("stream gave %d choices, want 1", len(acc.Choices))
	}
	return acc.ChatCompletion, reasoning.String(), textChunks
}

// reasoningOf is a non-streamed message's reasoning_content.
func reasoningOf(t *testing.T, m openai.ChatCompletionMessage) string {
	t.Helper()
	field, ok := m.JSON.ExtraFields["reasoning_content"]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal([]byte(field.Raw()), &s); err != nil {
		t.Fatalf("reasoning_content: %v", err)
	}
	return s
}

// TestE2EOpenAISDK drives the API with OpenAI's Go SDK on the real engine and the synthesized SmolLM3
// model: a greedy stream with usage matches what the engine generated and a non-streaming call of the
// same request; thinking on and off render different prompts; forced reasoning arrives in
// reasoning_content, apart from the content; /v1/models reports the CPU backend and the context.
func TestE2EOpenAISDK(t *testing.T) {
	const ctxLen = 1024
	rec := newRecorder(synthEngine(t, ctxLen))
	_, base := startServer(t, rec, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write a haiku about the sea.")}
	engineMsgs := []engine.Message{{Role: "user", Content: "Write a haiku about the sea."}}
	const maxTokens = 12

	// Greedy, thinking off, streamed with usage.
	greedy := openai.ChatCompletionNewParams{
		Model:               "smollm3",
		Messages:            msgs,
		Temperature:         openai.Float(0),
		MaxCompletionTokens: openai.Int(maxTokens),
		ReasoningEffort:     shared.ReasoningEffortNone,
		StreamOptions:       openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	streamed, reasoning, textChunks := sdkStream(t, ctx, client, greedy)
	req, res := rec.last(t)
	if req.Think == nil || *req.Think || req.Params.Temperature != 0 || req.Params.MaxTokens != maxTokens {
		t.Fatalf("request reaching the engine: think %s, params %+v", ptrStr(req.Think), req.Params)
	}
	choice := streamed.Choices[0]
	if reasoning != "" || reasoningOf(t, choice.Message) != "" {
		t.Errorf("thinking off, yet reasoning_content = %q", reasoning)
	}
	if choice.Message.Content != res.Answer || res.Thinking != "" {
		t.Errorf("streamed content = %q; the engine generated answer %q, reasoning %q", choice.Message.Content, res.Answer, res.Thinking)
	}
	if string(choice.FinishReason) != res.FinishReason {
		t.Errorf("finish_reason = %q, the engine's = %q", choice.FinishReason, res.FinishReason)
	}
	wantFinish := "length"
	if len(res.Tokens) < maxTokens {
		wantFinish = "stop"
	}
	if string(choice.FinishReason) != wantFinish {
		t.Errorf("finish_reason = %q after %d of at most %d tokens, want %q", choice.FinishReason, len(res.Tokens), maxTokens, wantFinish)
	}
	if streamed.Usage.CompletionTokens != int64(len(res.Tokens)) || streamed.Usage.PromptTokens != int64(len(res.PromptTokens)) ||
		streamed.Usage.TotalTokens != streamed.Usage.PromptTokens+streamed.Usage.CompletionTokens {
		t.Errorf("usage = %+v; the engine read %d prompt tokens and generated %d", streamed.Usage, len(res.PromptTokens), len(res.Tokens))
	}
	if textChunks < 2 {
		t.Errorf("the answer came in %d chunks; want it streamed token by token", textChunks)
	}
	noThinkPrompt, err := rec.CountChatTokens(engineMsgs, ptr(false))
	if err != nil {
		t.Fatal(err)
	}
	if int(streamed.Usage.PromptTokens) != noThinkPrompt {
		t.Errorf("usage.prompt_tokens = %d, the no-think prompt has %d", streamed.Usage.PromptTokens, noThinkPrompt)
	}

	// The same request, not streamed: greedy decoding gives the same text (the second call also
	// reuses the KV cache of the first).
	greedy.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	plain, err := client.Chat.Completions.New(ctx, greedy)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Choices[0].Message.Content != choice.Message.Content || plain.Choices[0].FinishReason != choice.FinishReason ||
		plain.Usage.CompletionTokens != streamed.Usage.CompletionTokens || plain.Usage.PromptTokens != streamed.Usage.PromptTokens {
		t.Errorf("non-streaming call: %q (%s, %+v); streamed: %q (%s, %+v)", plain.Choices[0].Message.Content,
			plain.Choices[0].FinishReason, plain.Usage, choice.Message.Content, choice.FinishReason, streamed.Usage)
	}

	// Thinking on and off render different prompts; the two ways of turning it off agree.
	prompts := map[string]int64{}
	for _, tc := range []struct {
		name   string
		effort shared.ReasoningEffort
		opts   []option.RequestOption
		think  bool
	}{
		{"reasoning_effort high", shared.ReasoningEffortHigh, nil, true},
		{"reasoning_effort none", shared.ReasoningEffortNone, nil, false},
		{"enable_thinking false", "", []option.RequestOption{option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false})}, false},
	} {
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "smollm3", Messages: msgs, MaxCompletionTokens: openai.Int(1), ReasoningEffort: tc.effort, Seed: openai.Int(7),
		}, tc.opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		req, _ := rec.last(t)
		if req.Think == nil || *req.Think != tc.think {
			t.Errorf("%s: Think reaching the engine = %s, want %v", tc.name, ptrStr(req.Think), tc.think)
		}
		want, err := rec.CountChatTokens(engineMsgs, &tc.think)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Usage.PromptTokens != int64(want) {
			t.Errorf("%s: usage.prompt_tokens = %d, the rendered prompt has %d", tc.name, resp.Usage.PromptTokens, want)
		}
		prompts[tc.name] = resp.Usage.PromptTokens
	}
	t.Logf("prompt tokens: %v", prompts)
	if on, off := prompts["reasoning_effort high"], prompts["reasoning_effort none"]; on == off {
		t.Errorf("thinking on and off both render %d prompt tokens; SmolLM3's template differs between them", on)
	}
	if a, b := prompts["reasoning_effort none"], prompts["enable_thinking false"]; a != b {
		t.Errorf("reasoning_effort none renders %d prompt tokens, enable_thinking=false %d", a, b)
	}

	// Reasoning, forced as a reasoning budget does, streams in reasoning_content, apart from the answer.
	rec.setReason(5)
	thought, reasoning, _ := sdkStream(t, ctx, client, openai.ChatCompletionNewParams{
		Model: "smollm3", Messages: msgs, Temperature: openai.Float(0), MaxCompletionTokens: openai.Int(maxTokens),
		ReasoningEffort: shared.ReasoningEffortHigh,
		StreamOptions:   openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	rec.setReason(0)
	_, res = rec.last(t)
	if res.Thinking == "" || reasoning != res.Thinking || thought.Choices[0].Message.Content != res.Answer {
		t.Errorf("reasoning_content = %q and content = %q; the engine generated reasoning %q and answer %q",
			reasoning, thought.Choices[0].Message.Content, res.Thinking, res.Answer)
	}
	if strings.Contains(reasoning+thought.Choices[0].Message.Content, "think>") {
		t.Errorf("a think tag leaked into the output: reasoning %q, content %q", reasoning, thought.Choices[0].Message.Content)
	}
	if thought.Usage.CompletionTokens != int64(len(res.Tokens)) || thought.Usage.PromptTokens != prompts["reasoning_effort high"] {
		t.Errorf("usage with reasoning = %+v; the engine generated %d tokens from the %d-token thinking prompt",
			thought.Usage, len(res.Tokens), prompts["reasoning_effort high"])
	}

	// The model list says where the model runs.
	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != "smollm3-tiny-synthetic" {
		t.Fatalf("models = %+v", models.Data)
	}
	var meta struct {
		Backend       string `json:"backend"`
		ContextLength int    `json:"context_length"`
		Arch          string `json:"arch"`
		Quant         string `json:"quant"`
	}
	field, ok := models.Data[0].JSON.ExtraFields["meta"]
	if !ok {
		t.Fatalf("the model has no meta: %s", models.Data[0].RawJSON())
	}
	if err := json.Unmarshal([]byte(field.Raw()), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Backend != "cpu" || meta.ContextLength != ctxLen || meta.Arch != "smollm3" || meta.Quant != "Q4_K_M" {
		t.Errorf("model meta = %+v, want backend cpu, context_length %d, arch smollm3, quant Q4_K_M", meta, ctxLen)
	}
}

func ptr[T any](v T) *T { return &v }
