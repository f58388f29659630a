package chat

import (
	"errors"
	"strings"
)

// ChatML renders the plain ChatML template used by many models whose template is not SmolLM3's:
// every message as "<|im_start|>ROLE\nCONTENT<|im_end|>\n", then "<|im_start|>assistant\n" for the
// generation prompt. It has no reasoning mode (EnableThinking is ignored) and no tools section.
type ChatML struct{}

// Name is "chatml".
func (ChatML) Name() string { return "chatml" }

// Reasoning is false: ChatML has no reasoning mode.
func (ChatML) Reasoning() bool { return false }

// Recognised is true.
func (ChatML) Recognised() bool { return true }

var errNoTools = errors.New("chat: this chat template has no tools section")

// Render renders msgs as ChatML.
func (ChatML) Render(msgs []Message, opt Options) (Prompt, error) {
	if err := checkMessages(msgs); err != nil {
		return Prompt{}, err
	}
	if len(opt.Tools) > 0 {
		return Prompt{}, errNoTools
	}
	b := &builder{specials: []string{imStart, imEnd}}
	for _, m := range msgs {
		b.markup(imStart + m.Role + "\n")
		b.text(m.Content)
		b.markup(imEnd + "\n")
	}
	if opt.AddGenerationPrompt {
		b.markup(imStart + "assistant\n")
	}
	return b.prompt(), nil
}

// Raw renders no template at all: the prompt is the contents of the messages concatenated in order,
// as they are. A single user message is therefore sent verbatim, and a conversation with a base
// model (stories260K has no template) reads as one continuing text: the user's opening, the model's
// continuation, the user's next words. There is no generation prompt, no reasoning mode and no
// special token, so nothing the user types is parsed as one.
type Raw struct{}

// Name is "raw".
func (Raw) Name() string { return "raw" }

// Reasoning is false: there is no template, so no reasoning mode.
func (Raw) Reasoning() bool { return false }

// Recognised is false: Raw renders no template.
func (Raw) Recognised() bool { return false }

// Render concatenates the contents of msgs.
func (Raw) Render(msgs []Message, opt Options) (Prompt, error) {
	if err := checkMessages(msgs); err != nil {
		return Prompt{}, err
	}
	if len(opt.Tools) > 0 {
		return Prompt{}, errNoTools
	}
	var sb strings.Builder
	for _, m := range msgs {
		sb.WriteString(m.Content)
	}
	b := &builder{}
	b.text(sb.String())
	return b.prompt(), nil
}
