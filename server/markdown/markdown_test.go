package markdown

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	r := New()
	tests := []struct {
		name    string
		src     string
		want    []string // substrings of the HTML
		mustNot []string
	}{
		{"emphasis", "Hello **world**", []string{"<strong>world</strong>"}, nil},
		{"line breaks kept", "one\ntwo", []string{"one<br>"}, nil},
		{"table", "| a | b |\n|---|---|\n| 1 | 2 |", []string{"<table>", "<td>1</td>"}, nil},
		{"highlighted code uses classes", "```go\nfunc main() {}\n```",
			[]string{`<pre class="chroma">`, `class="kd"`}, []string{"style="}},
		{"inline html shown as text", "Use <div> for blocks", []string{"Use &lt;div&gt; for blocks"}, []string{"<div>"}},
		{"html block shown as text", "<script>alert(1)</script>",
			[]string{"&lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<script"}},
		{"javascript link dropped", "[x](javascript:alert(1))", nil, []string{"javascript:"}},
		{"external link is nofollow", "[x](https://example.com)", []string{`rel="nofollow noopener"`, `target="_blank"`}, nil},
		{"event handler attribute", `<img src=x onerror=alert(1)>`, []string{"&lt;img"}, []string{"<img"}},
		{"task list", "- [x] done", []string{`type="checkbox"`, "checked"}, nil},
		{"table keeps its alignment", "| l | c | r |\n|:--|:-:|--:|\n| 1 | 2 | 3 |",
			[]string{`<th align="left">l</th>`, `<td align="center">2</td>`, `<td align="right">3</td>`}, []string{"style="}},
		{"code block names its language", "```python\nprint(1)\n```",
			[]string{`<div class="code-block"><div class="code-head"><span class="code-lang">python</span></div><pre class="chroma">`}, nil},
		{"unknown language still gets the bar", "```nosuchlang\nx < y\n```",
			[]string{`<span class="code-lang">nosuchlang</span></div><pre><code>x &lt; y`}, nil},
		{"indented code gets the bar", "    a < b", []string{`<span class="code-lang"></span></div><pre><code>a &lt; b`}, nil},
		{"hostile language label", "```\"><img/src/onerror=alert(1)>\nx\n```",
			[]string{`&#34;&gt;&lt;img/src/onerror=alert(1)&gt;`}, []string{"<img"}},
		{"inline math kept from markdown", `$a_1 * b_2 * c$ and \(x_1 _y_\)`,
			[]string{`<span class="math math-inline">a_1 * b_2 * c</span>`, `<span class="math math-inline">x_1 _y_</span>`}, []string{"<em>"}},
		{"display math block", "$$\n\\frac{a}{b} \\\\ c\n$$",
			[]string{`<div class="math math-display">\frac{a}{b} \\ c` + "\n</div>"}, nil},
		{"bracket display math", "\\[\nx^2\n\\]", []string{`<div class="math math-display">x^2` + "\n</div>"}, nil},
		{"display math in a paragraph", `so $$x^2$$ here`, []string{`<span class="math math-display">x^2</span>`}, nil},
		{"prices are not math", "$5 and $10", []string{"<p>$5 and $10</p>"}, []string{"math"}},
		{"escaped dollar", `\$x$`, []string{"$x$"}, []string{"math"}},
		{"math in code is code", "`$x$`", []string{"<code>$x$</code>"}, []string{"math"}},
		{"unclosed display math is text", "$$\nx^2", []string{"<p>$$<br>\nx^2</p>"}, []string{"math"}},
		{"html in math is text", `$<img src=x onerror=alert(1)>$`,
			[]string{`<span class="math math-inline">&lt;img src=x onerror=alert(1)&gt;</span>`}, []string{"<img"}},
		{"href in math stays TeX for KaTeX, trust off", `$\href{javascript:alert(1)}{x}$`,
			[]string{`<span class="math math-inline">\href{javascript:alert(1)}{x}</span>`}, []string{"<a "}},
		{"closing tag in math", `$</span><script>alert(1)</script>$`, []string{"&lt;/span&gt;&lt;script&gt;"}, []string{"<script"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(r.Render(tt.src))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Render(%q) = %q, want it to contain %q", tt.src, got, w)
				}
			}
			for _, w := range tt.mustNot {
				if strings.Contains(got, w) {
					t.Errorf("Render(%q) = %q, must not contain %q", tt.src, got, w)
				}
			}
		})
	}
}

func TestCSS(t *testing.T) {
	css, err := CSS()
	if err != nil {
		t.Fatal(err)
	}
	s := string(css)
	if !strings.Contains(s, ".chroma .kd") || !strings.Contains(s, `:root[data-theme="dark"] {`) || !strings.Contains(s, `:root[data-theme="light"] {`) {
		t.Fatalf("stylesheet lacks token rules or the dark theme:\n%.400s", s)
	}
}
