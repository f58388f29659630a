package chat

import (
	"encoding/json"
	"strings"
	"time"
)

// Llama3 renders the chat template of Llama 3.1–3.3 Instruct (meta-llama's tokenizer_config.json, as
// llama.cpp keeps it in models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja), without its tools:
//
//   - A system turn always comes first: "Cutting Knowledge Date: December 2023\nToday Date: DD Mon
//     YYYY\n\n" and the system message, trimmed.
//   - Every message is "<|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>" with CONTENT
//     trimmed; a tool result is an "ipython" turn holding its content as a JSON string, as the template
//     renders a string result.
//   - The generation prompt is "<|start_header_id|>assistant<|end_header_id|>\n\n".
//
// The template's leading bos_token is left to the caller, which prepends BOS when the tokenizer adds
// one (llama-bpe does). There is no reasoning mode.
type Llama3 struct{}

// Name is "llama3".
func (Llama3) Name() string { return "llama3" }

// Reasoning is false: the template has no reasoning mode.
func (Llama3) Reasoning() bool { return false }

// Recognised is true.
func (Llama3) Recognised() bool { return true }

const (
	startHeader = "<|start_header_id|>"
	endHeader   = "<|end_header_id|>"
	eotID       = "<|eot_id|>"
)

var llama3Specials = []string{startHeader, endHeader, eotID}

// Render renders msgs as the Llama 3 Instruct template does.
func (Llama3) Render(msgs []Message, opt Options) (Prompt, error) {
	if err := checkMessages(msgs); err != nil {
		return Prompt{}, err
	}
	if len(opt.Tools) > 0 {
		return Prompt{}, errNoTools
	}
	date := opt.Date
	if date.IsZero() {
		date = time.Now()
	}
	system := ""
	if msgs[0].Role == RoleSystem {
		system = strings.TrimSpace(msgs[0].Content)
		msgs = msgs[1:]
	}
	b := &builder{specials: llama3Specials}
	b.markup(startHeader + "system" + endHeader + "\n\nCutting Knowledge Date: December 2023\nToday Date: " + date.Format("02 Jan 2006") + "\n\n")
	b.text(system)
	b.markup(eotID)
	for _, m := range msgs {
		if m.Role == RoleTool {
			// A string result, as the template's tojson writes it (transformers': no HTML escaping).
			var q strings.Builder
			enc := json.NewEncoder(&q)
			enc.SetEscapeHTML(false)
			enc.Encode(m.Content)
			b.markup(startHeader + "ipython" + endHeader + "\n\n")
			b.text(strings.TrimSuffix(q.String(), "\n"))
			b.markup(eotID)
			continue
		}
		b.markup(startHeader + m.Role + endHeader + "\n\n")
		b.text(strings.TrimSpace(m.Content))
		b.markup(eotID)
	}
	if opt.AddGenerationPrompt {
		b.markup(startHeader + "assistant" + endHeader + "\n\n")
	}
	return b.prompt(), nil
}
