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
