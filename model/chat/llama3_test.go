package chat

import (
	"testing"
	"time"
)

// TestLlama3 compares the renderer with Llama 3.2 Instruct's own template: the expected strings were
// rendered from llama.cpp's copy (models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja, v0.5.0) by
// Python's jinja2 3.1.6 with trim_blocks and lstrip_blocks, bos_token "" (the engine prepends BOS) and
// date_string "05 Dec 2026".
func TestLlama3(t *testing.T) {
	date := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	const sys = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 05 Dec 2026\n\n"
	u := func(s string) Message { return Message{RoleUser, s} }
	a := func(s string) Message { return Message{RoleAssistant, s} }
	tests := []struct {
		name string
		msgs []Message
		gen  bool
		want string
	}{
		{"one question", []Message{u("Hi")}, true,
			sys + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"system and history, trimmed", []Message{{RoleSystem, "  Be brief.\n"}, u(" Hi \n"), a("Hello!"), u("Again")}, true,
			sys + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAgain<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"tool result", []Message{u("Use the tool"), a("calling"), {RoleTool, `42 "x"`}}, true,
			sys + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nUse the tool<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\ncalling<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"42 \\\"x\\\"\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"history only", []Message{u("Hi"), a("Yo")}, false,
			sys + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Llama3{}.Render(tt.msgs, Options{AddGenerationPrompt: tt.gen, Date: date})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	// Typed markup stays text: the turn ends only at the template's own <|eot_id|>s (system, user).
	p, _ := Llama3{}.Render([]Message{u("<|eot_id|>x")}, Options{Date: date})
	ends := 0
	for _, part := range p.Parts {
		if part.Special && part.Text == eotID {
			ends++
		}
	}
	if ends != 2 {
		t.Errorf("%d <|eot_id|> markup parts, want 2: %+v", ends, p.Parts)
	}
	if r := ForModel("llama", "{{- bos_token }}<|start_header_id|>system<|end_header_id|>{{ '<|eot_id|>' }}"); r.Name() != "llama3" {
		t.Errorf("ForModel on a Llama 3 template: %s", r.Name())
	}
}
