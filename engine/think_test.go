package engine

import (
	"strings"
	"testing"
)

var thinkTests = []struct {
	name          string
	startInThink  bool
	output        string
	thinking, ans string
}{
	{"SmolLM3 /think", false, "<think>\nThe user greets me.\nI greet back.\n</think>\nHello! How can I help?", "The user greets me.\nI greet back.", "Hello! How can I help?"},
	{"no block", false, "Hello! <think> is a tag.", "", "Hello! <think> is a tag."},
	{"no block keeps leading white space", false, " there was a dog.\n", "", " there was a dog.\n"},
	{"white space before the block", false, "\n <think>x</think>y", "x", "y"},
	{"empty block", false, "<think>\n\n</think>\nAnswer", "", "Answer"},
	{"unclosed block", false, "<think>\nstill thinking\n\n", "still thinking", ""},
	{"second block is answer", false, "<think>a</think>b<think>c</think>", "a", "b<think>c</think>"},
	{"inner white space kept", false, "<think>a \n\n b\t</think>\n\n  c  d \n", "a \n\n b", "c  d \n"},
	{"lookalike tags", false, "<think>1 </thinker> <3 </think2</think>A", "1 </thinker> <3 </think2", "A"},
	{"open tag alone", false, "<think>", "", ""},
	{"partial open tag at the end", false, "<thi", "", "<thi"},
	{"partial close tag at the end", false, "<think>abc</thi", "abc</thi", ""},
	{"started in think", true, "\nreasoning\n</think>\n\nanswer", "reasoning", "answer"},
	{"started in think, no close", true, "all reasoning <think> here", "all reasoning <think> here", ""},
	{"unicode", false, "<think>π ≈ 3.14 — ok</think>\n答案", "π ≈ 3.14 — ok", "答案"},
	{"empty output", false, "", "", ""},
	{"multi-byte white space", false, "\u3000<think>\u00a0a\u3000</think>\u00a0b\u3000", "a", "b\u3000"},
	{"invalid UTF-8 passes through", false, "<think>\xff\xe2\x82</think>\xe2", "\xff\xe2\x82", "\xe2"},
}

// TestThinkSplitterWhole pushes each output in one chunk.
func TestThinkSplitterWhole(t *testing.T) {
	for _, tt := range thinkTests {
		t.Run(tt.name, func(t *testing.T) {
			th, an := split(tt.startInThink, tt.output)
			if th != tt.thinking || an != tt.ans {
				t.Errorf("split(%q) = thinking %q, answer %q; want %q, %q", tt.output, th, an, tt.thinking, tt.ans)
			}
		})
	}
}

// TestThinkSplitterEverySplit cuts each output at every byte position into two chunks, and also
// feeds it one byte at a time: the result must not depend on the chunking.
func TestThinkSplitterEverySplit(t *testing.T) {
	for _, tt := range thinkTests {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i <= len(tt.output); i++ {
				th, an := split(tt.startInThink, tt.output[:i], tt.output[i:])
				if th != tt.thinking || an != tt.ans {
					t.Errorf("split(%q, %q) = thinking %q, answer %q; want %q, %q", tt.output[:i], tt.output[i:], th, an, tt.thinking, tt.ans)
				}
			}
			bytes := make([]string, len(tt.output))
			for i := 0; i < len(tt.output); i++ {
				bytes[i] = tt.output[i : i+1]
			}
			if th, an := split(tt.startInThink, bytes...); th != tt.thinking || an != tt.ans {
				t.Errorf("byte by byte: thinking %q, answer %q; want %q, %q", th, an, tt.thinking, tt.ans)
			}
		})
	}
}

// TestThinkSplitterStreams checks that text is released as soon as it is known, not at Flush.
func TestThinkSplitterStreams(t *testing.T) {
	s := newThinkSplitter(false)
	steps := []struct{ in, th, an string }{
		{"<thi", "", ""},
		{"nk>\nStep one", "Step one", ""},
		{".\n", ".", ""},                 // the newline waits: it is dropped if </think> follows
		{"Step two</", "\nStep two", ""}, // "</" may begin </think>
		{"think>\n", "", ""},
		{"The answer", "", "The answer"},
		{" is 4.", "", " is 4."},
	}
	for _, st := range steps {
		th, an := s.Push(st.in)
		if th != st.th || an != st.an {
			t.Errorf("Push(%q) = %q, %q; want %q, %q", st.in, th, an, st.th, st.an)
		}
	}
	if th, an := s.Flush(); th != "" || an != "" {
		t.Errorf("Flush() = %q, %q; want nothing left", th, an)
	}
}

func split(startInThink bool, chunks ...string) (thinking, answer string) {
	s := newThinkSplitter(startInThink)
	var th, an strings.Builder
	for _, c := range chunks {
		a, b := s.Push(c)
		th.WriteString(a)
		an.WriteString(b)
	}
	a, b := s.Flush()
	th.WriteString(a)
	an.WriteString(b)
	return th.String(), an.String()
}
