package server

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"smolchat/model/tokenizer"
)

// rawLogprobs is what `smolchat logits` computes, turned into log probabilities: one batched forward
// pass of a fresh engine over prompt and answer, log-softmax of each answer position's logits.
func rawLogprobs(t *testing.T, prompt, answer []int32) [][]float64 {
	t.Helper()
	e := synthEngine(t, 512)
	all := append(append([]int32{}, prompt...), answer...)
	want := make([]int, len(answer))
	for i := range want {
		want[i] = len(prompt) - 1 + i
	}
	rows, err := e.Backend().Forward(context.Background(), all, want)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(rows))
	for i, row := range rows {
		maxL := math.Inf(-1)
		for _, x := range row {
			maxL = max(maxL, float64(x))
		}
		var sum float64
		for _, x := range row {
			sum += math.Exp(float64(x) - maxL)
		}
		out[i] = make([]float64, len(row))
		for j, x := range row {
			out[i][j] = float64(x) - maxL - math.Log(sum)
		}
	}
	return out
}

// synthSDK serves the synthesized SmolLM3 model and returns OpenAI's Go client for it, with a context
// that ends with the test.
func synthSDK(t *testing.T) (*recorder, openai.Client, context.Context) {
	rec := newRecorder(synthEngine(t, 2048))
	_, base := startServer(t, rec, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return rec, openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0)), ctx
}

// TestE2ELogprobs checks logprobs on the real engine through OpenAI's Go SDK: chat (whole and
// streamed) and completions give one entry per generated token, the tokens join up to the text, the
// streamed values equal the whole ones, and at temperature 1 with no penalties every value (chosen
// token and alternatives) equals the log-softmax of the model's raw logits.
func TestE2ELogprobs(t *testing.T) {
	rec, client, ctx := synthSDK(t)
	const top = 4
	params := openai.ChatCompletionNewParams{
		Model:               "smollm3",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Count to three.")},
		Temperature:         openai.Float(1),
		Seed:                openai.Int(11),
		MaxCompletionTokens: openai.Int(8),
		ReasoningEffort:     shared.ReasoningEffortNone,
		Logprobs:            openai.Bool(true),
		TopLogprobs:         openai.Int(top),
	}
	whole, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	_, res := rec.last(t)
	content := whole.Choices[0].Logprobs.Content
	if len(content) != len(res.Tokens) || len(res.Tokens) == 0 {
		t.Fatalf("%d logprobs for %d tokens", len(content), len(res.Tokens))
	}
	raw := rawLogprobs(t, res.PromptTokens, res.Tokens)
	var joined []byte
	for i, c := range content {
		for _, b := range c.Bytes {
			joined = append(joined, byte(b))
		}
		if got, want := c.Logprob, raw[i][res.Tokens[i]]; math.Abs(got-want) > 2e-3 {
			t.Errorf("token %d: logprob %v, raw logits give %v", i, got, want)
		}
		if len(c.TopLogprobs) != top {
			t.Fatalf("token %d: %d alternatives, want %d", i, len(c.TopLogprobs), top)
		}
		for j, a := range c.TopLogprobs {
			if j > 0 && a.Logprob > c.TopLogprobs[j-1].Logprob {
				t.Errorf("token %d: alternatives out of order: %+v", i, c.TopLogprobs)
			}
			if a.Logprob < c.Logprob-1e-6 && j == 0 {
				t.Errorf("token %d: the top alternative %v is less likely than the token %v", i, a.Logprob, c.Logprob)
			}
		}
		best := math.Inf(-1)
		for _, x := range raw[i] {
			best = max(best, x)
		}
		if math.Abs(c.TopLogprobs[0].Logprob-best) > 2e-3 {
			t.Errorf("token %d: top alternative %v, raw best %v", i, c.TopLogprobs[0].Logprob, best)
		}
	}
	// Control tokens show as their text, which the output leaves out.
	if want := rec.Tokenizer().DecodeWith(res.Tokens, tokenizer.DecodeOptions{Special: true}); string(joined) != want {
		t.Errorf("the tokens join to %q, the output with control tokens is %q", joined, want)
	}

	// Streamed, same seed: the same tokens with the same values, spread over the chunks.
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var streamed []openai.ChatCompletionTokenLogprob
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			streamed = append(streamed, ch.Choices[0].Logprobs.Content...)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(streamed) != len(content) {
		t.Fatalf("streamed %d logprobs, whole %d", len(streamed), len(content))
	}
	for i := range streamed {
		if streamed[i].Token != content[i].Token || streamed[i].Logprob != content[i].Logprob {
			t.Errorf("token %d: streamed %q %v, whole %q %v", i, streamed[i].Token, streamed[i].Logprob, content[i].Token, content[i].Logprob)
		}
	}

	// Without logprobs the field is null.
	params.Logprobs, params.TopLogprobs = openai.Opt(false), openai.ChatCompletionNewParams{}.TopLogprobs
	plain, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Choices[0].Logprobs.JSON.Content.Valid() {
		t.Errorf("logprobs without asking: %s", plain.Choices[0].Logprobs.RawJSON())
	}

	// Completions: the legacy shape, text offsets included.
	cp := openai.CompletionNewParams{Model: "smollm3", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon")},
		Temperature: openai.Float(0), MaxTokens: openai.Int(6), Logprobs: openai.Int(2)}
	comp, err := client.Completions.New(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	lp := comp.Choices[0].Logprobs
	if len(lp.Tokens) == 0 || len(lp.Tokens) != len(lp.TokenLogprobs) || len(lp.Tokens) != len(lp.TopLogprobs) || len(lp.Tokens) != len(lp.TextOffset) {
		t.Fatalf("legacy logprobs arrays of unequal length: %s", lp.RawJSON())
	}
	offset := 0
	for i, tok := range lp.Tokens {
		if int(lp.TextOffset[i]) != offset {
			t.Errorf("text_offset[%d] = %d, want %d", i, lp.TextOffset[i], offset)
		}
		offset += len(tok)
		if len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 2 {
			t.Errorf("top_logprobs[%d] = %v, want 1 or 2 entries", i, lp.TopLogprobs[i])
		}
	}
	cstream := client.Completions.NewStreaming(ctx, cp)
	var ctoks []string
	for cstream.Next() {
		if ch := cstream.Current(); len(ch.Choices) > 0 {
			ctoks = append(ctoks, ch.Choices[0].Logprobs.Tokens...)
		}
	}
	if err := cstream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ctoks) != len(lp.Tokens) {
		t.Errorf("streamed %d completion tokens, whole %d", len(ctoks), len(lp.Tokens))
	}
}

// TestE2ELogitBias checks logit_bias on the real engine: banning the greedy first token makes the
// model start with another, whose log probability (seen with the bias) is below the banned one's.
func TestE2ELogitBias(t *testing.T) {
	rec, client, ctx := synthSDK(t)
	params := openai.ChatCompletionNewParams{
		Model:               "smollm3",
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Once upon")},
		Temperature:         openai.Float(0),
		MaxCompletionTokens: openai.Int(1),
		ReasoningEffort:     shared.ReasoningEffortNone,
		Logprobs:            openai.Bool(true),
	}
	first, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	_, res := rec.last(t)
	banned := res.Tokens[0]
	params.LogitBias = map[string]int64{fmt.Sprint(banned): -100}
	second, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	_, res2 := rec.last(t)
	if res2.Tokens[0] == banned {
		t.Fatalf("token %d banned by logit_bias, yet generated", banned)
	}
	before, after := first.Choices[0].Logprobs.Content[0].Logprob, second.Choices[0].Logprobs.Content[0].Logprob
	if after > before {
		t.Errorf("with the greedy token banned, the next best has logprob %v > the greedy one's %v", after, before)
	}
}
