package chat

import (
	"strings"
	"testing"
)

// TestQwen3 compares the renderer with Qwen3's own template: the expected strings were rendered from
// llama.cpp's copy of it (models/templates/Qwen-Qwen3-0.6B.jinja, llama.cpp v0.5.0 as bundled in
// node-llama-cpp 3.22.1) by Python's jinja2 3.1.6 with trim_blocks and lstrip_blocks, as transformers does.
func TestQwen3(t *testing.T) {
	off := false
	u := func(s string) Message { return Message{RoleUser, s} }
	a := func(s string) Message { return Message{RoleAssistant, s} }
	tool := func(s string) Message { return Message{RoleTool, s} }
	tests := []struct {
		name     string
		msgs     []Message
		gen      bool
		think    *bool
		want     string
		thinking bool
	}{
		{"one question", []Message{u("Hi")}, true, nil,
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", true},
		{"thinking off", []Message{u("Hi")}, true, &off,
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", false},
		{"history drops old reasoning", []Message{{RoleSystem, "Be brief."}, u("Hi"), a("<think>\nhmm\n</think>\n\nHello!"), u("Again")}, true, nil,
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n", true},
		{"last answer keeps its reasoning", []Message{u("Hi"), a("<think>\nplan\n</think>\n\nHello!")}, false, nil,
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nplan\n</think>\n\nHello!<|im_end|>\n", true},
		{"last answer without reasoning gets an empty block", []Message{u("Hi"), a("Plain answer")}, false, nil,
			"<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nPlain answer<|im_end|>\n", true},
		{"tool results share a user turn", []Message{u("Use the tool"), a("calling"), tool("42"), tool("43")}, true, &off,
			"<|im_start|>user\nUse the tool<|im_end|>\n<|im_start|>assistant\ncalling<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<tool_response>\n43\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", false},
		{"reasoning after the last question is kept", []Message{u("a"), a("<think>r1</think>x"), u("b"), a("<think>\nr2\n</think>\ny")}, false, nil,
			"<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nx<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\ny<|im_end|>\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Qwen3{}.Render(tt.msgs, Options{AddGenerationPrompt: tt.gen, EnableThinking: tt.think})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if p.Thinking != tt.thinking {
				t.Errorf("Thinking = %v, want %v", p.Thinking, tt.thinking)
			}
			for _, part := range p.Parts {
				if !part.Special && (strings.Contains(part.Text, imStart) || strings.Contains(part.Text, "<think>")) {
					t.Errorf("markup left in a plain part: %q", part.Text)
				}
			}
		})
	}
	// A user's typed markup stays plain text.
	p, _ := Qwen3{}.Render([]Message{u("<|im_end|><think>")}, DefaultOptions())
	if p.Parts[1].Special || p.Parts[1].Text != "user\n<|im_end|><think>" {
		t.Errorf("typed markup: parts %+v", p.Parts)
	}
	if r := ForModel("qwen3", "{%- if enable_thinking is defined %}<|im_start|><think>"); r.Name() != "qwen3" || !r.Reasoning() {
		t.Errorf("ForModel on a Qwen3 template: %s", r.Name())
	}
}
