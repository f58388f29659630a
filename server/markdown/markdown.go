// Package markdown turns a model's answer into safe HTML for the chat page: CommonMark with GitHub's
// extensions, code blocks highlighted with CSS classes (the page's Content-Security-Policy forbids
// inline styles) under a bar naming their language, table columns aligned with the align attribute,
// LaTeX kept apart for the page to typeset (math.go), raw HTML shown as text rather than interpreted,
// and the result sanitized.
//
// An answer is rendered block by block (live.go), the same way whether it is still streaming or
// read back from the history: a finished block's HTML never changes, so the page shows while an
// answer streams what it shows once it ends.
package markdown

import (
	"bytes"
	"html"
	"html/template"
	"regexp"
	"strings"

	chromahtml "github.com/alecthomas/chroma/v2/formatters/html"
	"github.com/alecthomas/chroma/v2/styles"
	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	highlighting "github.com/yuin/goldmark-highlighting/v2"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer"
	gmhtml "github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/util"
)

// Code highlighting themes for light and dark pages.
const (
	lightStyle = "github"
	darkStyle  = "github-dark"
)

// Renderer converts Markdown to sanitized HTML. It is safe for concurrent use.
type Renderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

// New returns a Renderer.
func New() *Renderer {
	md := goldmark.New(
		goldmark.WithExtensions(
			// GitHub's extensions (extension.GFM), the table's alignment as an attribute: the
			// Content-Security-Policy drops style attributes, which would lose it.
			extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)),
			extension.Strikethrough, extension.Linkify, extension.TaskList,
			mathExt{},
			highlighting.NewHighlighting(
				highlighting.WithStyle(lightStyle),
				highlighting.WithFormatOptions(chromahtml.WithClasses(true)),
				highlighting.WithWrapperRenderer(codeWrapper),
			),
		),
		// Chat answers use single newlines as line breaks.
		goldmark.WithRendererOptions(gmhtml.WithHardWraps()),
	)
	md.Renderer().AddOptions(renderer.WithNodeRenderers(util.Prioritized(rawHTMLAsText{}, 100)))

	p := bluemonday.UGCPolicy()
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^[A-Za-z0-9_ -]+$`)).OnElements("span", "pre", "code", "div")
	p.AllowAttrs("type").Matching(regexp.MustCompile(`^checkbox$`)).OnElements("input")
	p.AllowAttrs("checked", "disabled").OnElements("input")
	p.AllowAttrs("align").Matching(regexp.MustCompile(`^(left|center|right)$`)).OnElements("th", "td")
	p.RequireNoFollowOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return &Renderer{md: md, policy: p}
}

// Render returns src as sanitized HTML: its blocks rendered as Live renders them.
func (r *Renderer) Render(src string) template.HTML {
	l := r.Live()
	l.Add(src)
	return template.HTML(l.Finished() + l.Open())
}

// renderBlock returns the sanitized HTML of src, parsed on its own.
func (r *Renderer) renderBlock(src string) string {
	var buf bytes.Buffer
	if err := r.md.Convert([]byte(src), &buf); err != nil {
		// goldmark only fails when the writer does; a bytes.Buffer does not. Keep the text regardless.
		return "<p>" + html.EscapeString(src) + "</p>"
	}
	return string(r.policy.SanitizeBytes(buf.Bytes()))
}

// codeWrapper puts a fenced code block under a bar naming its language; the page adds the bar's Copy
// button (assets/app.js).
func codeWrapper(w util.BufWriter, c highlighting.CodeBlockContext, entering bool) {
	if entering {
		lang, _ := c.Language()
		w.WriteString(`<div class="code-block"><div class="code-head"><span class="code-lang">` +
			html.EscapeString(string(lang)) + "</span></div>")
		if !c.Highlighted() {
			w.WriteString("<pre><code>")
		}
		return
	}
	if !c.Highlighted() {
		w.WriteString("</code></pre>")
	}
	w.WriteString("</div>\n")
}

// CSS is the stylesheet for highlighted code: the light theme, or the dark one for pages that prefer it.
// Each theme sits in its own media query: a theme styles only some token classes, and a light rule left
// in force on a dark page would paint dark text on a dark background.
func CSS() ([]byte, error) {
	f := chromahtml.New(chromahtml.WithClasses(true))
	var buf bytes.Buffer
	buf.WriteString("/* Code highlighting: chroma " + lightStyle + " and " + darkStyle + ". */\n")
	// The page's theme is its root's data-theme (assets/theme.js sets it: the user's choice, else the
	// system's); each style's rules are nested under it.
	for _, theme := range []struct{ name, style string }{
		{"light", lightStyle},
		{"dark", darkStyle},
	} {
		buf.WriteString(`:root[data-theme="` + theme.name + `"] {` + "\n")
		if err := f.WriteCSS(&buf, styles.Get(theme.style)); err != nil {
			return nil, err
		}
		buf.WriteString("}\n")
	}
	return buf.Bytes(), nil
}

// rawHTMLAsText shows HTML written in an answer as text: models write "<div>" when explaining HTML, and
// dropping it (goldmark's safe default) would garble the explanation.
type rawHTMLAsText struct{}

func (rawHTMLAsText) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindRawHTML, renderRawHTML)
	reg.Register(ast.KindHTMLBlock, renderHTMLBlock)
	reg.Register(ast.KindCodeBlock, renderIndentedCode)
}

// renderIndentedCode gives an indented code block the bar of a fenced one, without a language.
func renderIndentedCode(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	w.WriteString(`<div class="code-block"><div class="code-head"><span class="code-lang"></span></div><pre><code>`)
	lines := node.Lines()
	for i := range lines.Len() {
		seg := lines.At(i)
		w.WriteString(html.EscapeString(string(seg.Value(source))))
	}
	w.WriteString("</code></pre></div>\n")
	return ast.WalkSkipChildren, nil
}

func renderRawHTML(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		segs := node.(*ast.RawHTML).Segments
		for i := range segs.Len() {
			seg := segs.At(i)
			w.WriteString(html.EscapeString(string(seg.Value(source))))
		}
	}
	return ast.WalkSkipChildren, nil
}

func renderHTMLBlock(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkContinue, nil
	}
	n := node.(*ast.HTMLBlock)
	var lines []string
	for i := range n.Lines().Len() {
		line := n.Lines().At(i)
		lines = append(lines, string(line.Value(source)))
	}
	if n.HasClosure() {
		lines = append(lines, string(n.ClosureLine.Value(source)))
	}
	text := strings.TrimRight(strings.Join(lines, ""), "\n")
	w.WriteString("<p>" + strings.ReplaceAll(html.EscapeString(text), "\n", "<br>\n") + "</p>\n")
	return ast.WalkContinue, nil
}
