// Package chat renders a conversation into the prompt a model was trained on: its chat template,
// reimplemented natively in Go for the templates smolchat knows (SmolLM3, generic ChatML, raw text)
// instead of evaluating the Jinja text stored in the GGUF.
//
// A rendered Prompt keeps the template's special tokens apart from everything else, so that text a
// user typed, such as "<|im_end|>", is always encoded as plain text and can never forge a turn boundary.
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles a Message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool" // a tool's result, sent back to the model
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Options controls rendering. The zero value renders the conversation as history only, without the
// opening of an assistant turn, like Hugging Face's apply_chat_template; use DefaultOptions (or set
// AddGenerationPrompt) to prompt the model for a reply.
type Options struct {
	// AddGenerationPrompt appends the opening of an assistant turn for the model to complete.
	AddGenerationPrompt bool
	// EnableThinking selects the reasoning mode of SmolLM3 and Qwen3: nil means the template's default
	// (thinking on). With SmolLM3 a /think or /no_think flag in the system message wins over it.
	// Templates without a reasoning mode ignore it.
	EnableThinking *bool
	// Date is the "Today Date" SmolLM3 writes into its system block; the zero value means today, in
	// local time. Pin it to keep a prompt (and a KV-cache prefix) stable across days.
	Date time.Time
	// Tools are the JSON schemas of the functions the model may call, each one JSON value (usually an
	// object), rendered in the order given. Templates without a tools section reject them.
	Tools []json.RawMessage
}

// DefaultOptions are the options for prompting a reply: a generation prompt, the template's default
// reasoning mode, today's date and no tools.
func DefaultOptions() Options {
	return Options{AddGenerationPrompt: true}
}

// Renderer renders a conversation with one chat template.
type Renderer interface {
	// Name identifies the template: "smollm3", "chatml" or "raw". It is for logs and display only:
	// behaviour follows the methods below, never the name.
	Name() string
	// Reasoning reports that the template has a reasoning mode that Options.EnableThinking switches
	// (SmolLM3's /think and /no_think); templates without one ignore EnableThinking.
	Reasoning() bool
	// Recognised reports that the renderer reproduces a chat template; false for Raw, which renders
	// no template at all (the fallback for a template that none of the renderers reproduces).
	Recognised() bool
	// Render renders msgs. It fails on an empty conversation, an unknown role, a system message that is
	// not the first one, or tools the template cannot show.
	Render(msgs []Message, opt Options) (Prompt, error)
}

// Part is a piece of a rendered prompt.
type Part struct {
	Text string
	// Special marks a special token of the template's own markup (such as "<|im_start|>"), to be
	// encoded with special-token parsing. Every other part, template text and message content alike,
	// is encoded with special-token parsing off.
	Special bool
}

// Prompt is a rendered conversation.
//
// Non-special parts are never adjacent: template text and message content are merged into one part
// between special tokens, so that encoding part by part splits words exactly where a tokenizer that
// saw the whole string would split them at special tokens.
type Prompt struct {
	Parts []Part
	// Thinking reports that the model is expected to reason before answering (SmolLM3's /think mode).
	// With SmolLM3 the model then opens the <think> block itself; in /no_think mode the prompt already
	// holds an empty, closed block.
	Thinking bool
	// InThink reports that the prompt ends inside an open <think> block, so that generation starts in
	// the reasoning: a splitter of the output must start in thinking mode. It is false for every
	// template in this package, SmolLM3 included; it exists for templates that pre-fill "<think>\n".
	InThink bool
}

// String is the prompt's text.
func (p Prompt) String() string {
	var b strings.Builder
	for _, part := range p.Parts {
		b.WriteString(part.Text)
	}
	return b.String()
}

// Tokens encodes the prompt part by part with enc, which encodes text with special-token parsing
// on or off, and concatenates the results. enc should not add BOS; callers prepend it if the model
// wants one.
func (p Prompt) Tokens(enc func(text string, parseSpecial bool) []int32) []int32 {
	var ids []int32
	for _, part := range p.Parts {
		ids = append(ids, enc(part.Text, part.Special)...)
	}
	return ids
}

// ForModel picks the renderer for a model from its chat template text (tokenizer.chat_template):
// SmolLM3's for a template with SmolLM3's reasoning flags, Qwen3's for a ChatML template with an
// enable_thinking switch and <think> blocks, ChatML for any other template using <|im_start|>, Llama 3
// Instruct's for one with <|start_header_id|> turns, and Raw otherwise. A file with no template gets
// the renderer named format, its family's chat format (model.Family.ChatFormat), or Raw (a base model
// such as stories260K).
func ForModel(format, template string) Renderer {
	if template == "" {
		for _, r := range []Renderer{SmolLM3{}, Qwen3{}, ChatML{}, Llama3{}} {
			if r.Name() == format {
				return r
			}
		}
		return Raw{}
	}
	switch {
	case strings.Contains(template, "Reasoning Mode") || strings.Contains(template, "/no_think"):
		return SmolLM3{}
	case strings.Contains(template, imStart) && strings.Contains(template, "enable_thinking") && strings.Contains(template, "<think>"):
		return Qwen3{}
	case strings.Contains(template, imStart):
		return ChatML{}
	case strings.Contains(template, startHeader) && strings.Contains(template, eotID):
		return Llama3{}
	default:
		return Raw{}
	}
}

// ChatML special tokens.
const (
	imStart = "<|im_start|>"
	imEnd   = "<|im_end|>"
)

var errNoMessages = errors.New("chat: no messages to render")

// checkMessages rejects what no template here can render: an empty conversation, unknown roles, and
// a system message anywhere but first.
func checkMessages(msgs []Message) error {
	if len(msgs) == 0 {
		return errNoMessages
	}
	for i, m := range msgs {
		switch m.Role {
		case RoleUser, RoleAssistant, RoleTool:
		case RoleSystem:
			if i != 0 {
				return fmt.Errorf("chat: message %d: a system message must be the first message", i)
			}
		default:
			return fmt.Errorf("chat: message %d: unknown role %q (want system, user, assistant or tool)", i, m.Role)
		}
	}
	return nil
}

// builder assembles a Prompt, splitting the template's markup at its special tokens and merging
// adjacent plain text.
type builder struct {
	specials []string // the template's special tokens, as they appear in its markup
	parts    []Part
}

// markup appends template text, cutting out the special tokens it contains.
func (b *builder) markup(s string) {
	for s != "" {
		at, tok := -1, ""
		for _, sp := range b.specials {
			if i := strings.Index(s, sp); i >= 0 && (at < 0 || i < at) {
				at, tok = i, sp
			}
		}
		if at < 0 {
			b.text(s)
			return
		}
		b.text(s[:at])
		b.parts = append(b.parts, Part{Text: tok, Special: true})
		s = s[at+len(tok):]
	}
}

// text appends plain text: message content, or template text without special tokens.
func (b *builder) text(s string) {
	if s != "" {
		b.parts = append(b.parts, Part{Text: s})
	}
}

// prompt returns the assembled parts with adjacent plain text merged.
func (b *builder) prompt() Prompt {
	var out []Part
	for i := 0; i < len(b.parts); {
		if b.parts[i].Special {
			out = append(out, b.parts[i])
			i++
			continue
		}
		j := i + 1
		for j < len(b.parts) && !b.parts[j].Special {
			j++
		}
		if j == i+1 {
			out = append(out, b.parts[i])
		} else {
			var sb strings.Builder
			for _, p := range b.parts[i:j] {
				sb.WriteString(p.Text)
			}
			out = append(out, Part{Text: sb.String()})
		}
		i = j
	}
	return Prompt{Parts: out}
}
