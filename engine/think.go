package engine

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tags around a reasoning block.
const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
)

// thinkSplitter separates a model's reasoning, the <think>…</think> block at the start of its output,
// from the answer that follows, while the output streams in: tags split across chunks ("<thi" +
// "nk>") are recognised, so no partial tag ever reaches either side.
//
// What it returns, as llama.cpp's reasoning_content does:
//   - The tags are removed. The reasoning is trimmed of leading and trailing white space (SmolLM3
//     writes "<think>\n…\n</think>\n"), and so is the white space between </think> and the answer.
//   - Only a block at the start of the output counts: an opening <think>, possibly after white
//     space. Output that does not start with one is all answer, passed through unchanged (white space
//     included, which matters to raw completions), and a later "<think>" is answer text.
//   - A block that is never closed is all reasoning.
//
// Which start to use: SmolLM3's /think prompt ends with "<|im_start|>assistant\n" and the model
// opens the block itself, and its /no_think prompt already holds a closed, empty block, so SmolLM3
// always starts with startInThink false (chat.Prompt.InThink). True is for templates whose prompt
// ends inside an opened block: the output is reasoning until </think>.
type thinkSplitter struct {
	state   thinkState
	pending string // held back: a possible tag prefix, or white space whose role is not known yet
}

type thinkState int

const (
	thinkStart  thinkState = iota // nothing decided: the output may open a block
	thinkInside                   // inside the block, nothing but white space seen yet
	thinkBody                     // inside the block, after its first non-space text
	thinkAfter                    // after </think>, nothing but white space seen yet
	thinkAnswer                   // everything from here on is answer
)

// newThinkSplitter returns a splitter for an output that starts inside a reasoning block when
// startInThink is true.
func newThinkSplitter(startInThink bool) *thinkSplitter {
	if startInThink {
		return &thinkSplitter{state: thinkInside}
	}
	return &thinkSplitter{state: thinkStart}
}

// Push adds the next chunk of output and returns what of it is now known to be reasoning and answer.
// Text held back (a possible partial tag, trailing white space of the reasoning) comes out with a
// later chunk or with Flush.
func (s *thinkSplitter) Push(text string) (thinking, answer string) {
	var th, an strings.Builder
	buf := s.pending + text
	s.pending = ""
	// A character cut between chunks waits whole for its next bytes, so that white space is always
	// recognised and no side ever gets half a character.
	cut := len(buf) - incompleteRune(buf)
	buf, carry := buf[:cut], buf[cut:]
	defer func() { s.pending += carry }()
	for buf != "" {
		switch s.state {
		case thinkStart:
			rest := strings.TrimLeftFunc(buf, unicode.IsSpace)
			switch {
			case strings.HasPrefix(rest, thinkOpen):
				buf, s.state = rest[len(thinkOpen):], thinkInside
			case strings.HasPrefix(thinkOpen, rest):
				s.pending, buf = buf, "" // white space and a partial tag: wait for more
			default:
				an.WriteString(buf)
				buf, s.state = "", thinkAnswer
			}
		case thinkInside, thinkBody:
			if s.state == thinkInside {
				buf = strings.TrimLeftFunc(buf, unicode.IsSpace)
				if buf == "" {
					break
				}
				s.state = thinkBody
			}
			if i := strings.Index(buf, thinkClose); i >= 0 {
				th.WriteString(strings.TrimRightFunc(buf[:i], unicode.IsSpace))
				buf, s.state = buf[i+len(thinkClose):], thinkAfter
				continue
			}
			// Hold back trailing white space (it is dropped if </think> follows) and any suffix that
			// could begin </think>.
			keep := len(strings.TrimRightFunc(buf[:len(buf)-partialSuffix(buf, thinkClose)], unicode.IsSpace))
			th.WriteString(buf[:keep])
			s.pending, buf = buf[keep:], ""
		case thinkAfter:
			buf = strings.TrimLeftFunc(buf, unicode.IsSpace)
			if buf != "" {
				s.state = thinkAnswer
			}
		case thinkAnswer:
			an.WriteString(buf)
			buf = ""
		}
	}
	return th.String(), an.String()
}

// Answering reports that the output is past the reasoning block (or had none): what follows is
// answer.
func (s *thinkSplitter) Answering() bool { return s.state == thinkAfter || s.state == thinkAnswer }

// Flush ends the output and returns what was held back: the start of an unclosed tag is text after
// all, and the trailing white space of the reasoning is dropped.
func (s *thinkSplitter) Flush() (thinking, answer string) {
	p := s.pending
	s.pending = ""
	switch s.state {
	case thinkStart:
		s.state = thinkAnswer
		return "", p
	case thinkInside, thinkBody:
		return strings.TrimRightFunc(p, unicode.IsSpace), ""
	}
	return "", p // the bytes of an unfinished character
}

// incompleteRune is the length of the unfinished UTF-8 sequence at the end of s, 0 if none.
func incompleteRune(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if utf8.FullRuneInString(s[i:]) {
				return 0
			}
			return len(s) - i
		}
	}
	return 0
}

// partialSuffix is the length of the longest proper prefix of tag that buf ends with; it never cuts
// a UTF-8 character, as the tags are ASCII.
func partialSuffix(buf, tag string) int {
	for n := min(len(tag)-1, len(buf)); n > 0; n-- {
		if strings.HasSuffix(buf, tag[:n]) {
			return n
		}
	}
	return 0
}
