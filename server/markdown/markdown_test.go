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
