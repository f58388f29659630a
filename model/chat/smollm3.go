package chat

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// SmolLM3 renders HuggingFaceTB/SmolLM3-3B's chat template (chat_template.jinja, also stored in the
// GGUF as tokenizer.chat_template), byte for byte:
//
//   - The system block holds a metadata section (knowledge cutoff, today's date, reasoning mode) and
//     the custom instructions: the system message with its /think and /no_think flags removed, or a
//     default persona. "/system_override" in the system message replaces the whole block with the
//     instructions alone.
//   - Without tools the system block is never closed with <|im_end|>: the user turn follows directly.
//     This quirk is the template's, and the model was trained on it.
//   - Tool results are rendered as user turns. In /no_think mode every assistant turn, and the
//     generation prompt, carry an empty "<think>\n\n</think>\n" block.
type SmolLM3 struct{}

// Name is "smollm3".
func (SmolLM3) Name() string { return "smollm3" }

// Reasoning is true: the template has /think and /no_think modes.
func (SmolLM3) Reasoning() bool { return true }

// Recognised is true.
func (SmolLM3) Recognised() bool { return true }

// The template's special tokens: the ChatML markers, the reasoning block tags and the tool-call tags
// of the tools section.
var smolSpecials = []string{imStart, imEnd, "<think>", "</think>", "<tool_call>", "</tool_call>"}

// The default custom instructions, used when the system message gives none. The /think persona is
// long; the text below is the template's, as found in two public copies of SmolLM3's
// chat_template.jinja: the one embedded in huggingface/gorilla
// berkeley-function-call-leaderboard/bfcl_eval/model_handler/local_inference/smollm3.py (commit
// 8d8ca35c5c37aa3b9ae6047603781ec7da464e5d) and the "smollm3" fixture of a swift-jinja test file.
// Both agree word for word, "backtracking" and "analysing" included.
const (
	smolPersonaThink = "You are a helpful AI assistant named SmolLM, trained by Hugging Face. " +
		"Your role as an assistant involves thoroughly exploring questions through a systematic thinking " +
		"process before providing the final precise and accurate solutions. This requires engaging in a " +
		"comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, " +
		"and iteration to develop well-considered thinking process. Please structure your response into two " +
		"main sections: Thought and Solution using the specified format: <think> Thought section </think> " +
		"Solution section. In the Thought section, detail your reasoning process in steps. Each step should " +
		"include detailed considerations such as analysing questions, summarizing relevant findings, " +
		"brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and " +
		"revisiting previous steps. In the Solution section, based on various attempts, explorations, and " +
		"reflections from the Thought section, systematically present the final solution that you deem " +
		"correct. The Solution section should be logical, accurate, and concise and detail necessary steps " +
		"needed to reach the conclusion."
	smolPersonaNoThink = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."
)

// The XML tools section, around one line per tool.
const (
	smolToolsHead = "You may call one or more functions to assist with the user query.\n" +
		"You are provided with function signatures within <tools></tools> XML tags:\n\n<tools>\n"
	smolToolsTail = "</tools>\n\nFor each function call, return a json object with function name and " +
		"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n" +
		"{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
)

const (
	flagThink    = "/think"
	flagNoThink  = "/no_think"
	flagOverride = "/system_override"
	emptyThink   = "<think>\n\n</think>\n"
)

// Render renders msgs with SmolLM3's template.
func (SmolLM3) Render(msgs []Message, opt Options) (Prompt, error) {
	if err := checkMessages(msgs); err != nil {
		return Prompt{}, err
	}
	tools := make([]string, len(opt.Tools))
	for i, t := range opt.Tools {
		s, err := pyRepr(t)
		if err != nil {
			return Prompt{}, fmt.Errorf("chat: tool %d: %w", i, err)
		}
		tools[i] = s
	}

	think := opt.EnableThinking == nil || *opt.EnableThinking
	var system, instructions string
	hasSystem := msgs[0].Role == RoleSystem
	if hasSystem {
		system = msgs[0].Content
		// The flag in the system message beats EnableThinking; /no_think is looked for first, as in
		// the template (neither flag is a substring of the other).
		if strings.Contains(system, flagNoThink) {
			think = false
		} else if strings.Contains(system, flagThink) {
			think = true
		}
		instructions = pyRstrip(strings.ReplaceAll(strings.ReplaceAll(system, flagNoThink, ""), flagThink, ""))
	}
	mode := flagNoThink
	if think {
		mode = flagThink
	}

	b := &builder{specials: smolSpecials}
	b.markup(imStart + "system\n")
	if strings.Contains(system, flagOverride) {
		b.text(pyRstrip(strings.ReplaceAll(instructions, flagOverride, "")))
		b.markup(imEnd + "\n")
	} else {
		date := opt.Date
		if date.IsZero() {
			date = time.Now()
		}
		b.markup("## Metadata\n\nKnowledge Cutoff Date: June 2025\n" +
			"Today Date: " + date.Format("02 January 2006") + "\n" +
			"Reasoning Mode: " + mode + "\n\n## Custom Instructions\n\n")
		switch {
		case instructions != "":
			b.text(instructions)
		case think:
			b.markup(smolPersonaThink)
		default:
			b.markup(smolPersonaNoThink)
		}
		b.markup("\n\n")
		if len(tools) > 0 {
			b.markup("### Tools\n\n" + smolToolsHead)
			for _, t := range tools {
				b.text(t)
				b.markup("\n")
			}
			b.markup(smolToolsTail + "\n\n" + imEnd + "\n")
		}
	}

	for _, m := range msgs {
		switch m.Role {
		case RoleUser, RoleTool:
			b.markup(imStart + "user\n")
			b.text(m.Content)
			b.markup(imEnd + "\n")
		case RoleAssistant:
			b.markup(imStart + "assistant\n")
			if !think {
				b.markup(emptyThink)
			}
			b.text(strings.TrimLeft(m.Content, "\n"))
			b.markup(imEnd + "\n")
		}
	}
	if opt.AddGenerationPrompt {
		b.markup(imStart + "assistant\n")
		if !think {
			b.markup(emptyThink)
		}
	}
	p := b.prompt()
	p.Thinking = think
	return p, nil
}

// pyRstrip is Python's str.rstrip(): it trims Unicode whitespace, which for Python also includes the
// ASCII file, group, record and unit separators that Go's unicode.IsSpace leaves alone.
func pyRstrip(s string) string {
	return strings.TrimRightFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}
