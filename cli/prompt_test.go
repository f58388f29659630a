package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/chat"
)

// promptTempFile writes content to a file in a fresh temporary directory and returns its path.
func promptTempFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPromptCommandSmolLM3(t *testing.T) {
	model := testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf")
	const hi = `[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi"}]`
	const head = "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 08 July 2025\n"
	tests := []struct {
		name     string
		messages string
		flags    []string
		stdin    string
		want     string
	}{
		{
			name:     "think (default)",
			messages: hi,
			want:     head + "Reasoning Mode: /think\n\n## Custom Instructions\n\nYou are helpful.\n\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
		},
		{
			name:     "--no-think",
			messages: hi,
			flags:    []string{"--no-think"},
			want:     head + "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are helpful.\n\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
		},
		{
			name:     "the system flag beats --think",
			messages: `[{"role": "system", "content": "You are helpful. /no_think"}, {"role": "user", "content": "Hi"}]`,
			flags:    []string{"--think"},
			want:     head + "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are helpful.\n\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
		},
		{
			name: "multi-turn from stdin, with text parts and a null content",
			messages: `[{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
				{"role": "assistant", "content": null}, {"role": "user", "content": "Bye"}]`,
			flags: []string{"--no-think"},
			stdin: "-",
			want: head + "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n" +
				"<|im_start|>user\nHi\nthere<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgFile, stdin := "-", ""
			if tt.stdin == "-" {
				stdin = tt.messages
			} else {
				msgFile = promptTempFile(t, "messages.json", tt.messages)
			}
			args := append([]string{"prompt", "--model", model, "--messages", msgFile, "--date", "2025-07-08"}, tt.flags...)
			code, out, errs := runCLI(stdin, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errs)
			}
			if out != tt.want {
				t.Errorf("stdout\n%q\nwant\n%q", out, tt.want)
			}
		})
	}
}

func TestPromptCommandRaw(t *testing.T) {
	// stories260K has no chat template: the messages are sent as they are.
	model := testutil.SharedFile(t, "stories260K.gguf")
	msgs := promptTempFile(t, "m.json", `[{"role": "user", "content": "Once upon a time"}]`)
	code, out, errs := runCLI("", "prompt", "--model", model, "--messages", msgs)
	if code != 0 || out != "Once upon a time" {
		t.Errorf("exit %d, stdout %q, stderr %s; want 0 and the user's text", code, out, errs)
	}
}

func TestPromptCommandErrors(t *testing.T) {
	good := promptTempFile(t, "good.json", `[{"role": "user", "content": "Hi"}]`)
	missing := filepath.Join(t.TempDir(), "absent.gguf")
	tests := []struct {
		name    string
		args    []string
		stdin   string
		code    int
		wantErr string
	}{
		{"no model", []string{"--messages", good}, "", 2, "--model FILE is required"},
		{"no messages", []string{"--model", missing}, "", 2, "--messages FILE.json is required"},
		{"both think flags", []string{"--model", missing, "--messages", good, "--think", "--no-think"}, "", 2, "exclusive"},
		{"bad date", []string{"--model", missing, "--messages", good, "--date", "8 July 2025"}, "", 2, "want YYYY-MM-DD"},
		{"extra argument", []string{"--model", missing, "--messages", good, "extra"}, "", 2, "unexpected arguments"},
		{"missing messages file", []string{"--model", missing, "--messages", filepath.Join(t.TempDir(), "none.json")}, "", 1, "reading messages"},
		{"messages not a list", []string{"--model", missing, "--messages", "-"}, `{"role": "user"}`, 1, "want a JSON array"},
		{"bad content", []string{"--model", missing, "--messages", "-"}, `[{"role": "user", "content": 3}]`, 1, "message 0: content"},
		{"image part", []string{"--model", missing, "--messages", "-"}, `[{"role": "user", "content": [{"type": "image_url"}]}]`, 1, "only text parts"},
		{"missing model file", []string{"--model", missing, "--messages", good}, "", 1, "absent.gguf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(tt.stdin, append([]string{"prompt"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and an error containing %q", code, errs, tt.code, tt.wantErr)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing on error", out)
			}
		})
	}
}

func TestPromptCommandRenderError(t *testing.T) {
	model := testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf")
	msgs := promptTempFile(t, "m.json", `[{"role": "user", "content": "Hi"}, {"role": "system", "content": "late"}]`)
	code, out, errs := runCLI("", "prompt", "--model", model, "--messages", msgs)
	if code != 1 || out != "" || !strings.Contains(errs, "system message must be the first") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and the renderer's error", code, out, errs)
	}
}

func TestParseMessages(t *testing.T) {
	tests := []struct {
		in   string
		want []chat.Message
	}{
		{`[]`, []chat.Message{}},
		{`[{"role": "user", "content": "a"}]`, []chat.Message{{Role: "user", Content: "a"}}},
		{`[{"role": "assistant", "content": null, "tool_calls": []}]`, []chat.Message{{Role: "assistant"}}},
		{`[{"role": "assistant"}]`, []chat.Message{{Role: "assistant"}}},
		{`[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}]}]`, []chat.Message{{Role: "user", Content: "a\n"}}},
		{`[{"role": "tool", "content": "<|im_end|>", "tool_call_id": "x"}]`, []chat.Message{{Role: "tool", Content: "<|im_end|>"}}},
	}
	for _, tt := range tests {
		got, err := parseMessages([]byte(tt.in))
		if err != nil {
			t.Errorf("parseMessages(%s): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("parseMessages(%s) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("parseMessages(%s)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
	for _, in := range []string{``, `[`, `[] []`, `[{"role": "user", "content": {"text": "a"}}]`, `[{"role": "user", "content": [{"type": "text"}]}]`} {
		if _, err := parseMessages([]byte(in)); err == nil {
			t.Errorf("parseMessages(%q): no error", in)
		}
	}
}

// TestPromptCommandTools checks --tools: the tools section lists each tool as Jinja2's string filter
// writes a Python dict. Each case's expected lines are Jinja2 3.1.6's output of
// "{% for tool in xml_tools %}{{ tool | string }}\n{% endfor %}" over the same file, json.load'ed; the
// text around them is the template's tools section.
func TestPromptCommandTools(t *testing.T) {
	model := testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf")
	const call = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"
	hi := `[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi"}]`
	turns := `[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Time?"},
		{"role": "assistant", "content": ` + strconv.Quote(call) + `}, {"role": "tool", "content": "12:00"}, {"role": "user", "content": "Thanks"}]`
	tests := []struct {
		name, tools string
		flags       []string
		jinjaLines  string
		messages    string
		mode, tail  string
	}{
		{"think, two tools", "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather in a city, e.g. \\\"Zürich\\\" or 'Bern'\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\", \"minimum\": 1, \"default\": 1.0}, \"unit\": {\"enum\": [\"c\", \"f\", null]}}, \"required\": [\"city\"], \"additionalProperties\": false}, \"strict\": true}},\n {\"type\": \"function\", \"function\": {\"name\": \"now\", \"parameters\": {}}}]\n", nil, "{'type': 'function', 'function': {'name': 'get_weather', 'description': 'Weather in a city, e.g. \"Zürich\" or \\'Bern\\'', 'parameters': {'type': 'object', 'properties': {'city': {'type': 'string'}, 'days': {'type': 'integer', 'minimum': 1, 'default': 1.0}, 'unit': {'enum': ['c', 'f', None]}}, 'required': ['city'], 'additionalProperties': False}, 'strict': True}}\n{'type': 'function', 'function': {'name': 'now', 'parameters': {}}}\n", hi, "/think", "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"no-think, numbers and quotes", "[{\"type\": \"function\", \"function\": {\"name\": \"calc\", \"description\": \"It's a \\\"calculator\\\"\\tand more\\n\", \"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"number\", \"default\": 1e-07, \"maximum\": 1e+300, \"examples\": [0.1, 100000000000000000000, -0.0, true, null]}, \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"enum\": [\"日本\", \"é\", \"\\\\\"]}}}}}}]\n", []string{"--no-think"}, "{'type': 'function', 'function': {'name': 'calc', 'description': 'It\\'s a \"calculator\"\\tand more\\n', 'parameters': {'type': 'object', 'properties': {'x': {'type': 'number', 'default': 1e-07, 'maximum': 1e+300, 'examples': [0.1, 100000000000000000000, -0.0, True, None]}, 'tags': {'type': 'array', 'items': {'type': 'string', 'enum': ['日本', 'é', '\\\\']}}}}}}\n", "", "", ""},
		{"several turns with a call", "[{\"type\": \"function\", \"function\": {\"name\": \"now\", \"description\": \"Current time\", \"parameters\": {\"type\": \"object\", \"properties\": {}}}}]\n", nil, "{'type': 'function', 'function': {'name': 'now', 'description': 'Current time', 'parameters': {'type': 'object', 'properties': {}}}}\n", "", "", ""},
	}
	tests[1].messages, tests[1].mode = hi, "/no_think"
	tests[1].tail = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n"
	tests[2].messages, tests[2].mode = turns, "/think"
	tests[2].tail = "<|im_start|>user\nTime?<|im_end|>\n<|im_start|>assistant\n" + call + "<|im_end|>\n" +
		"<|im_start|>user\n12:00<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tools := promptTempFile(t, "tools.json", tt.tools)
			msgs := promptTempFile(t, "messages.json", tt.messages)
			want := "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 08 July 2025\nReasoning Mode: " + tt.mode + "\n\n" +
				"## Custom Instructions\n\nYou are helpful.\n\n### Tools\n\nYou may call one or more functions to assist with the user query.\n" +
				"You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n" + tt.jinjaLines +
				"</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
				"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n\n<|im_end|>\n" + tt.tail
			args := append([]string{"prompt", "--model", model, "--messages", msgs, "--tools", tools, "--date", "2025-07-08"}, tt.flags...)
			code, out, errs := runCLI("", args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errs)
			}
			if out != want {
				t.Errorf("stdout\n%q\nwant\n%q", out, want)
			}
		})
	}
	msgs := promptTempFile(t, "messages.json", hi)
	if code, _, errs := runCLI("", "prompt", "--model", model, "--messages", msgs, "--tools", msgs+".missing"); code == 0 || !strings.Contains(errs, "tools") {
		t.Errorf("a missing tools file: exit %d, stderr %q", code, errs)
	}
}
