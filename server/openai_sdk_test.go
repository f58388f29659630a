package server

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// TestOpenAISDK drives the API with OpenAI's official Go SDK: streaming with usage, reasoning in
// reasoning_content, a non-streaming call, the model list and an authentication error.
//
// It runs on the test double; to run it on the real model, start the server with the engine instead
// (server.New(cfg, engine)) and compare against the engine's greedy output.
func TestOpenAISDK(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{APIKey: "test-key"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("test-key"), option.WithMaxRetries(0))

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:           "smollm3",
		Messages:        []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("sdk hello")},
		Temperature:     openai.Float(0.5),
		Seed:            openai.Int(42),
		StreamOptions:   openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		ReasoningEffort: shared.ReasoningEffortHigh,
	})
	var acc openai.ChatCompletionAccumulator
	var reasoning strings.Builder
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		chunks++
		if !acc.AddChunk(chunk) {
			t.Fatalf("the SDK's accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
		}
		if len(chunk.Choices) > 0 {
			if field, ok := chunk.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
				var s string
				if err := json.Unmarshal([]byte(field.Raw()), &s); err != nil {
					t.Fatal(err)
				}
				reasoning.WriteString(s)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != f.expectedAnswer("sdk hello") {
		t.Fatalf("accumulated answer = %+v", acc.Choices)
	}
	if acc.Choices[0].FinishReason != "stop" || acc.Usage.CompletionTokens != int64(f.thinkWords+f.answerWords+1) {
		t.Fatalf("finish %q, usage %+v", acc.Choices[0].FinishReason, acc.Usage)
	}
	if !strings.HasPrefix(reasoning.String(), "Thinking step 0.") {
		t.Fatalf("reasoning_content = %q", reasoning.String())
	}
	r := f.lastRequest()
	if r.Think == nil || !*r.Think || r.Params.Temperature != 0.5 || r.Params.Seed != 42 || len(r.Messages) != 2 {
		t.Fatalf("request reaching the engine: think %s, params %+v, %d messages", ptrStr(r.Think), r.Params, len(r.Messages))
	}

	// Non-streaming, with thinking off through chat_template_kwargs.
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:               "smollm3",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("plain call")},
		MaxCompletionTokens: openai.Int(4),
	}, option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].FinishReason != "length" || resp.Usage.CompletionTokens != 4 ||
		!strings.HasPrefix(resp.Choices[0].Message.Content, "You said: plain call") {
		t.Fatalf("non-streaming response = %+v", resp)
	}
	if r := f.lastRequest(); r.Think == nil || *r.Think {
		t.Fatalf("enable_thinking=false did not reach the engine: %s", ptrStr(r.Think))
	}

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != "SmolLM3-3B-Q4_K_M" {
		t.Fatalf("models = %+v", models.Data)
	}

	bad := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "smollm3", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("wrong key: err = %v", err)
	}
}

// TestOpenAISDKChoices asks for n = 3 choices through the SDK, on the real engine (the synthesized
// model, --parallel 4): three choices, indexed, with the usage of one prompt and three answers; the same
// seed gives the same choices; the choices after the first start from the first's prompt blocks
// (cache-hit tokens). Streamed, chat and completions, the n choices come as chunks carrying their index,
// one finish reason each, and with the same seed they are the choices the non-streamed request gave.
func TestOpenAISDKChoices(t *testing.T) {
	e := synthEngine(t, 512)
	_, base := startServer(t, e, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("none"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:               "smollm3",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You write short stories about a small dog."), openai.UserMessage("Three endings, please.")},
		N:                   openai.Int(3),
		Temperature:         openai.Float(1),
		Seed:                openai.Int(7),
		MaxCompletionTokens: openai.Int(8),
	}
	before, _ := e.SchedulerStats()
	first, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.SchedulerStats()
	if len(first.Choices) != 3 {
		t.Fatalf("%d choices, want 3", len(first.Choices))
	}
	var total int64
	for i, c := range first.Choices {
		if c.Index != int64(i) || c.FinishReason == "" {
			t.Errorf("choice %d: index %d, finish %q", i, c.Index, c.FinishReason)
		}
		total += int64(len(c.Message.Content))
	}
	if total == 0 || first.Choices[0].Message.Content == first.Choices[1].Message.Content && first.Choices[1].Message.Content == first.Choices[2].Message.Content {
		t.Errorf("three choices at temperature 1 with derived seeds: %q", []string{first.Choices[0].Message.Content, first.Choices[1].Message.Content, first.Choices[2].Message.Content})
	}
	u := first.Usage
	if u.CompletionTokens < 3 || u.CompletionTokens > 3*8 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v: want one prompt and three answers of at most 8 tokens", u)
	}
	if hits := after.CacheHitTokens - before.CacheHitTokens; hits < 2*(u.PromptTokens-1) {
		t.Errorf("the choices reused %d prompt tokens, want at least %d (two choices after the first)", hits, 2*(u.PromptTokens-1))
	}
	again, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first.Choices {
		if again.Choices[i].Message.Content != first.Choices[i].Message.Content {
			t.Errorf("choice %d with the same seed: %q, then %q", i, first.Choices[i].Message.Content, again.Choices[i].Message.Content)
		}
	}

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "smollm3", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		N: openai.Int(3), MaxTokens: openai.Int(4), Seed: openai.Int(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Choices) != 3 || comp.Choices[2].Index != 2 {
		t.Errorf("completions with n = 3: %d choices", len(comp.Choices))
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	texts, finishes := make([]string, 3), make([][]string, 3)
	var streamed openai.CompletionUsage
	for stream.Next() {
		chunk := stream.Current()
		if len(chunk.Choices) == 0 {
			streamed = chunk.Usage
		}
		for _, c := range chunk.Choices {
			if c.Index < 0 || c.Index >= 3 {
				t.Fatalf("a chunk of choice %d: %s", c.Index, chunk.RawJSON())
			}
			texts[c.Index] += c.Delta.Content
			if c.FinishReason != "" {
				finishes[c.Index] = append(finishes[c.Index], c.FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("streaming with n = 3: %v", err)
	}
	for i, c := range first.Choices {
		if texts[i] != c.Message.Content || len(finishes[i]) != 1 || finishes[i][0] != c.FinishReason {
			t.Errorf("streamed choice %d: %q, finish %v; without stream %q, %q", i, texts[i], finishes[i], c.Message.Content, c.FinishReason)
		}
	}
	if streamed.CompletionTokens != u.CompletionTokens || streamed.PromptTokens != u.PromptTokens {
		t.Errorf("streamed usage %+v, without stream %+v", streamed, u)
	}

	compStream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model: "smollm3", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		N: openai.Int(3), MaxTokens: openai.Int(4), Seed: openai.Int(1)})
	compTexts, compFinishes := make([]string, 3), make([]int, 3)
	for compStream.Next() {
		for _, c := range compStream.Current().Choices {
			if c.Index < 0 || c.Index >= 3 {
				t.Fatalf("a completion chunk of choice %d", c.Index)
			}
			compTexts[c.Index] += c.Text
			if c.FinishReason != "" {
				compFinishes[c.Index]++
			}
		}
	}
	if err := compStream.Err(); err != nil {
		t.Fatalf("streaming completions with n = 3: %v", err)
	}
	for i, c := range comp.Choices {
		if compTexts[i] != c.Text || compFinishes[i] != 1 {
			t.Errorf("streamed completion %d: %q (%d finish reasons), without stream %q", i, compTexts[i], compFinishes[i], c.Text)
		}
	}
}
