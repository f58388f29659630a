package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const (
	weatherCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"°C\"}}\n</tool_call>"
	timeCall    = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"
)

type wantCall struct{ name, args string }

var callCases = []struct {
	name    string
	answer  string
	content string
	calls   []wantCall
}{
	{"one call", weatherCall, "", []wantCall{{"get_weather", `{"city":"Paris","unit":"°C"}`}}},
	{"text around calls", "Let me check.\n" + weatherCall + "\n" + timeCall + "\nDone.", "Let me check.\n\n\nDone.",
		[]wantCall{{"get_weather", `{"city":"Paris","unit":"°C"}`}, {"now", `{}`}}},
	{"no call", "Just text < with a tag-like <tool", "Just text < with a tag-like <tool", nil},
	{"garbage in a block stays content", "<tool_call>\nnot json\n</tool_call>", "<tool_call>\nnot json\n</tool_call>", nil},
	{"arguments must be an object", `<tool_call>{"name": "f", "arguments": 3}</tool_call>`, `<tool_call>{"name": "f", "arguments": 3}</tool_call>`, nil},
	{"an unclosed block stays content", "Hi " + "<tool_call>\n{\"name\": \"now\"", "Hi <tool_call>\n{\"name\": \"now\"", nil},
	{"a good call beside a bad one", timeCall + "<tool_call>{}</tool_call>", "<tool_call>{}</tool_call>", []wantCall{{"now", `{}`}}},
}

func checkCalls(t *testing.T, what string, content string, calls []toolCallOut, wantContent string, want []wantCall) {
	t.Helper()
	if content != wantContent || len(calls) != len(want) {
		t.Fatalf("%s: content %q, %d calls; want %q, %d calls", what, content, len(calls), wantContent, len(want))
	}
	for i, c := range calls {
		if c.Function.Name != want[i].name || c.Function.Arguments != want[i].args || c.Type != "function" || !strings.HasPrefix(c.ID, "call_") {
			t.Errorf("%s: call %d = %+v, want %+v", what, i, c, want[i])
		}
	}
}

// TestCallSplitter checks the content and calls of answers, whole and cut into two and three pieces
// at every byte: the streaming splitter gives the same whatever the cuts.
func TestCallSplitter(t *testing.T) {
	for _, tt := range callCases {
		t.Run(tt.name, func(t *testing.T) {
			content, calls := splitCalls(tt.answer)
			checkCalls(t, "whole", content, calls, tt.content, tt.calls)
			for i := 0; i <= len(tt.answer); i++ {
				for j := i; j <= len(tt.answer); j += 7 {
					var s callSplitter
					var b strings.Builder
					var got []toolCallOut
					add := func(x string) { b.WriteString(x) }
					call := func(c toolCallOut) { got = append(got, c) }
					for _, part := range []string{tt.answer[:i], tt.answer[i:j], tt.answer[j:]} {
						s.push(part, add, call)
					}
					s.flush(add)
					checkCalls(t, "cut", b.String(), got, tt.content, tt.calls)
				}
			}
		})
	}
}

var weatherTools = []openai.ChatCompletionToolUnionParam{
	openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}),
	openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "now"}),
}

// TestToolCallsAPI drives a scripted model that writes SmolLM3-format tool calls through OpenAI's Go
// SDK: whole and streamed responses (the SDK's accumulator rebuilds the streamed calls) agree, with
// finish_reason tool_calls when there is a call; the request reaching the engine carries the tools
// and the constraint tool_choice asks for.
func TestToolCallsAPI(t *testing.T) {
	f := newFake()
	f.tools = true
	_, base := startServer(t, f, Config{})
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := t.Context()
	for _, tt := range callCases {
		t.Run(tt.name, func(t *testing.T) {
			f.script("", tt.answer)
			params := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{
				openai.SystemMessage("/no_think"), openai.UserMessage("weather?")}, Tools: weatherTools}
			whole, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			wantFinish := "stop"
			if len(tt.calls) > 0 {
				wantFinish = "tool_calls"
			}
			for what, c := range map[string]openai.ChatCompletionChoice{"whole": whole.Choices[0], "streamed": acc.Choices[0]} {
				var calls []toolCallOut
				for _, tc := range c.Message.ToolCalls {
					var out toolCallOut
					out.ID, out.Type, out.Function.Name, out.Function.Arguments = tc.ID, tc.Type, tc.Function.Name, tc.Function.Arguments
					calls = append(calls, out)
				}
				checkCalls(t, what, c.Message.Content, calls, tt.content, tt.calls)
				if string(c.FinishReason) != wantFinish {
					t.Errorf("%s: finish_reason %q, want %q", what, c.FinishReason, wantFinish)
				}
			}
			req := f.lastRequest()
			if len(req.Tools) != 2 || req.Params.Grammar == nil || req.Params.Trigger != toolCallOpen {
				t.Errorf("auto: the engine got %d tools, grammar %v, trigger %q", len(req.Tools), req.Params.Grammar != nil, req.Params.Trigger)
			}
		})
	}
}

// TestToolChoice checks what each tool_choice asks of the engine, and the rendering of a multi-step
// conversation: the assistant's calls go back into its content as the model wrote them.
func TestToolChoice(t *testing.T) {
	f := newFake()
	f.tools = true
	_, base := startServer(t, f, Config{})
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},{"type":"function","function":{"name":"now"}}]`
	msgs := `"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"}]`
	for _, tt := range []struct {
		choice  string
		grammar bool
		trigger string
		ban     []string
	}{
		{`"auto"`, true, toolCallOpen, nil},
		{`"required"`, true, "", nil},
		{`{"type":"function","function":{"name":"now"}}`, true, "", nil},
		{`"none"`, false, "", []string{toolCallOpen}},
	} {
		out := callAPI(t, base+"/v1/chat/completions", `{`+msgs+`,`+tools+`,"tool_choice":`+tt.choice+`}`)
		if out.status != 200 {
			t.Fatalf("%s: status %d %v", tt.choice, out.status, out.err)
		}
		p := f.lastRequest().Params
		if (p.Grammar != nil) != tt.grammar || p.Trigger != tt.trigger || strings.Join(p.Ban, ",") != strings.Join(tt.ban, ",") {
			t.Errorf("%s: grammar %v trigger %q ban %v", tt.choice, p.Grammar != nil, p.Trigger, p.Ban)
		}
	}
	m := f.lastRequest().Messages
	want := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	if len(m) != 3 || m[1].Content != want || m[2].Role != "tool" || m[2].Content != "18C" {
		t.Errorf("messages reaching the engine: %+v", m)
	}
	// The tools count against the context: too many to fit is a 400 before any stream starts.
	small := newFake()
	small.tools, small.context = true, 256
	_, smallBase := startServer(t, small, Config{})
	many := `"tools":[`
	for i := range 12 {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`{"type":"function","function":{"name":"f%d"}}`, i)
	}
	if out := callAPI(t, smallBase+"/v1/chat/completions", `{"stream":true,`+msgs+`,`+many+`]}`); out.status != 400 || out.err == nil || out.err.Code == nil || *out.err.Code != "context_length_exceeded" {
		t.Errorf("tools beyond the context: status %d, error %+v", out.status, out.err)
	}
	for _, bad := range []struct{ body, param string }{
		{`{` + msgs + `,` + tools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`, "tool_choice"},
		{`{` + msgs + `,"tools":[{"type":"function","function":{"name":"bad name"}}]}`, "tools[0].function.name"},
		{`{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"d":{"type":"string","format":"hostname"}}}}}]}`, "tools"},
		{`{` + msgs + `,` + tools + `,"response_format":{"type":"json_object"}}`, "tools"},
	} {
		out := callAPI(t, base+"/v1/chat/completions", bad.body)
		if out.status != 400 || out.err == nil || out.err.Param == nil || *out.err.Param != bad.param {
			t.Errorf("%s: status %d, error %+v; want a 400 naming %s", bad.body, out.status, out.err, bad.param)
		}
	}
}
