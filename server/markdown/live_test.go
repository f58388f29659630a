package markdown

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// liveCorpus is answers of the shapes models write, and the cases where a block's end is found late:
// setext headings, tables that start as a paragraph, lists with blank lines, fences not closed,
// displayed formulas, lazy continuation lines.
var liveCorpus = []string{
	"Hello **world**.\n\nSecond paragraph\nwith a line break.",
	"# Title\n\nSome text.\n\n## Part\n\n- one\n- two\n\n  still two\n- three\n\nAfter the list.",
	"Setext\n===\n\nAnother\n---\n\ntext",
	"| a | b |\n|:--|--:|\n| 1 | 2 |\n| 3 | 4 |\n\nBelow the table.",
	"```go\nfunc main() {\n\tprintln(\"hi\")\n}\n```\n\nAnd `inline` code.",
	"```python\nprint(1)\n\n\nprint(2)\n```\ntext right after",
	"Unclosed fence:\n\n```js\nlet a = 1;\n",
	"> quote\nlazy line\n\n> second quote\n\n1. first\n2. second\n\n10. tenth",
	"Euler: $e^{i\\pi} + 1 = 0$ and \\(a_1 * b_2\\).\n\n$$\n\\int_0^1 x^2\\,dx = \\frac13\n$$\n\n\\[\na \\\\ b\n\\]\n\nPrices: $5 and $10.",
	"$$x^2$$\n\ntext $$y$$ inline display",
	"<div>raw html</div>\n\nparagraph <b>bold</b>\n\n    indented code\n    more\n\nend",
	"[link][r]\n\n[r]: https://example.com\n\n[other](https://example.org) <https://auto.link>",
	"- [x] done\n- [ ] todo\n\n***\n\n~~strike~~ www.example.com",
	"Thinking aloud\n\n\n\nwith many blank lines\n\n\n",
	"1) a\n2) b\n   - nested\n     more\n\n   para in b\n\nout",
	"a\n\n$$\nunclosed display\n",
}

// TestLiveMatchesRender checks that an answer streamed in pieces renders, once ended, to the HTML of
// the whole answer rendered at once (so the page does not change when the answer ends), and that the
// blocks Add finished are the start of that HTML (a finished block never changes), for random cuts.
func TestLiveMatchesRender(t *testing.T) {
	r := New()
	rng := rand.New(rand.NewPCG(1, 2))
	for i, src := range liveCorpus {
		want := string(r.Render(src))
		for try := range 20 {
			l := r.Live()
			var sent strings.Builder
			for rest := src; rest != ""; {
				n := 1 + rng.IntN(min(len(rest), 6))
				if try == 0 {
					n = 1 // a byte at a time
				}
				sent.WriteString(l.Add(rest[:n]))
				rest = rest[n:]
				if !strings.HasPrefix(want, sent.String()) {
					t.Fatalf("corpus %d, cut %d: finished blocks are not the start of the final HTML:\n got %q\nwant %q", i, try, sent.String(), want)
				}
			}
			if got := sent.String() + l.Open(); got != want {
				t.Fatalf("corpus %d, cut %d: streamed HTML differs:\n got %q\nwant %q", i, try, got, want)
			}
		}
	}
}

func FuzzLive(f *testing.F) {
	for _, s := range liveCorpus {
		f.Add(s, uint8(3))
	}
	r := New()
	f.Fuzz(func(t *testing.T, src string, step uint8) {
		n := int(step)%7 + 1
		l := r.Live()
		var sent strings.Builder
		for i := 0; i < len(src); i += n {
			sent.WriteString(l.Add(src[i:min(i+n, len(src))]))
		}
		if got, want := sent.String()+l.Open(), string(r.Render(src)); got != want {
			t.Fatalf("streamed HTML differs:\n got %q\nwant %q", got, want)
		}
	})
}
