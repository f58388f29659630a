package chat

import "strings"

// Qwen3 renders Qwen3's chat template (its tokenizer_config.json / GGUF tokenizer.chat_template), without
// its tools section:
//
//   - Every message is "<|im_start|>ROLE\nCONTENT<|im_end|>\n"; tool results go in a user turn, each as
//     "<tool_response>\nCONTENT\n</tool_response>", consecutive results sharing the turn.
//   - An assistant message's reasoning (the text before "</think>") is dropped from the turns before the
//     last user message; the turns after it keep it as "<think>\nREASONING\n</think>\n\n" before the
//     answer.
//   - The generation prompt is "<|im_start|>assistant\n"; with EnableThinking false it also holds an
//     empty block, "<think>\n\n</think>\n\n", which is how Qwen3 turns reasoning off. With thinking on
//     (the default) the model opens "<think>" itself.
type Qwen3 struct{}

// Name is "qwen3".
func (Qwen3) Name() string { return "qwen3" }

// Reasoning is true: enable_thinking switches the reasoning, as SmolLM3's /think does.
func (Qwen3) Reasoning() bool { return true }

// Recognised is true.
func (Qwen3) Recognised() bool { return true }

var qwen3Specials = []string{imStart, imEnd, "<think>", "</think>", "<tool_response>", "</tool_response>"}

// Render renders msgs as Qwen3's template does.
func (Qwen3) Render(msgs []Message, opt Options) (Prompt, error) {
	if err := checkMessages(msgs); err != nil {
		return Prompt{}, err
	}
	if len(opt.Tools) > 0 {
		return Prompt{}, errNoTools
	}
	lastQuery := -1
	for i, m := range msgs {
		if m.Role == RoleUser {
			lastQuery = i
		}
	}
	b := &builder{specials: qwen3Specials}
	for i, m := range msgs {
		switch m.Role {
		case RoleAssistant:
			content, reasoning := m.Content, ""
			if j := strings.Index(content, "</think>"); j >= 0 {
				before := content[:j]
				if k := strings.LastIndex(before, "<think>"); k >= 0 {
					before = before[k+len("<think>"):]
				}
				reasoning = strings.TrimLeft(strings.TrimRight(before, "\n"), "\n")
				content = strings.TrimLeft(content[strings.LastIndex(content, "</think>")+len("</think>"):], "\n")
			}
			b.markup(imStart + "assistant\n")
			if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
				b.markup("<think>\n")
				b.text(strings.Trim(reasoning, "\n"))
				b.markup("\n</think>\n\n")
				b.text(strings.TrimLeft(content, "\n"))
			} else {
				b.text(content)
			}
			b.markup(imEnd + "\n")
		case RoleTool:
			if i == 0 || msgs[i-1].Role != RoleTool {
				b.markup(imStart + "user")
			}
			b.markup("\n<tool_response>\n")
			b.text(m.Content)
			b.markup("\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != RoleTool {
				b.markup(imEnd + "\n")
			}
		default:
			b.markup(imStart + m.Role + "\n")
			b.text(m.Content)
			b.markup(imEnd + "\n")
		}
	}
	think := opt.EnableThinking == nil || *opt.EnableThinking
	if opt.AddGenerationPrompt {
		b.markup(imStart + "assistant\n")
		if !think {
			b.markup("<think>\n\n</think>\n\n")
		}
	}
	p := b.prompt()
	p.Thinking = think
	return p, nil
}
