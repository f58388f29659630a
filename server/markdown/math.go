package markdown

import (
	"bytes"
	"html"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// LaTeX in an answer: $…$ and \(…\) inline, $$…$$ and \[…\] displayed. The TeX is taken out before
// Markdown sees it (so "a_1 * b_2" keeps its underscores and "\\" its backslashes) and written, escaped,
// as the text of <span class="math …"> or <div class="math …">; the page (assets/app.js) typesets it
// with the vendored KaTeX, trust off. A formula left open (an answer still streaming, or one cut short)
// stays text.

// mathExt adds the math parsers and renderer to goldmark.
type mathExt struct{}

func (mathExt) Extend(m goldmark.Markdown) {
	m.Parser().AddOptions(
		parser.WithBlockParsers(util.Prioritized(mathBlockParser{}, 150)),
		parser.WithInlineParsers(util.Prioritized(mathInlineParser{}, 150)),
	)
	m.Renderer().AddOptions(renderer.WithNodeRenderers(util.Prioritized(mathRenderer{}, 150)))
}

var (
	kindMath      = ast.NewNodeKind("Math")
	kindMathBlock = ast.NewNodeKind("MathBlock")
)

// mathNode is a formula within a paragraph.
type mathNode struct {
	ast.BaseInline
	tex     []byte
	display bool
}

func (n *mathNode) Kind() ast.NodeKind { return kindMath }
func (n *mathNode) Dump(src []byte, level int) {
	ast.DumpHelper(n, src, level, map[string]string{"TeX": string(n.tex)}, nil)
}

// mathBlock is a displayed formula on lines of its own: "$$" or "\[" alone on a line (or a whole line
// "$$…$$"), up to the line that ends with the closer.
type mathBlock struct {
	ast.BaseBlock
	closer string
	closed bool
}

func (n *mathBlock) Kind() ast.NodeKind { return kindMathBlock }
func (n *mathBlock) Dump(src []byte, level int) {
	ast.DumpHelper(n, src, level, map[string]string{"Closed": map[bool]string{true: "yes", false: "no"}[n.closed]}, nil)
}

// openers of displayed formulas and their closers.
var displayOpeners = []struct{ open, close string }{{"$$", "$$"}, {`\[`, `\]`}}

type mathBlockParser struct{}

func (mathBlockParser) Trigger() []byte { return []byte{'$', '\\'} }

func (mathBlockParser) Open(parent ast.Node, reader text.Reader, pc parser.Context) (ast.Node, parser.State) {
	line, seg := reader.PeekLine()
	pos := pc.BlockOffset()
	if pos < 0 {
		return nil, parser.NoChildren
	}
	rest := bytes.TrimRight(line[pos:], " \t\r\n")
	for _, d := range displayOpeners {
		if !bytes.HasPrefix(rest, []byte(d.open)) {
			continue
		}
		n := &mathBlock{closer: d.close}
		inner := rest[len(d.open):]
		if len(inner) == 0 { // the opener alone: the formula follows on the next lines
			reader.AdvanceToEOL()
			return n, parser.NoChildren
		}
		if len(inner) > len(d.close) && bytes.HasSuffix(inner, []byte(d.close)) { // one whole line
			start := seg.Start + pos + len(d.open)
			n.Lines().Append(text.NewSegment(start, start+len(inner)-len(d.close)))
			n.closed = true
			reader.AdvanceToEOL()
			return n, parser.Close
		}
		return nil, parser.NoChildren // "$$x$$ and more": a formula within a paragraph
	}
	return nil, parser.NoChildren
}

func (mathBlockParser) Continue(node ast.Node, reader text.Reader, pc parser.Context) parser.State {
	n := node.(*mathBlock)
	line, seg := reader.PeekLine()
	body := bytes.TrimRight(line, " \t\r\n")
	if bytes.HasSuffix(body, []byte(n.closer)) {
		if tex := body[:len(body)-len(n.closer)]; len(bytes.TrimSpace(tex)) > 0 {
			n.Lines().Append(text.NewSegment(seg.Start, seg.Start+len(tex)))
		}
		n.closed = true
		reader.AdvanceToEOL()
		return parser.Close
	}
	n.Lines().Append(seg)
	reader.AdvanceToEOL()
	return parser.Continue | parser.NoChildren
}

func (mathBlockParser) Close(ast.Node, text.Reader, parser.Context) {}
func (mathBlockParser) CanInterruptParagraph() bool                 { return true }
func (mathBlockParser) CanAcceptIndentedLine() bool                 { return false }

// maxInlineMath bounds how far a formula within a paragraph is looked for: a paragraph of lone "$"
// would otherwise be scanned to its end from each of them.
const maxInlineMath = 4096

type mathInlineParser struct{}

func (mathInlineParser) Trigger() []byte { return []byte{'$', '\\'} }

// Parse reads a formula that starts here, which may go on over the paragraph's next lines. A "$" that
// cannot open or close one (a price: "$5 and $10") is left as text: an opening "$" has no space after
// it, a closing one no space before it and no digit after it.
func (mathInlineParser) Parse(parent ast.Node, block text.Reader, pc parser.Context) ast.Node {
	line, _ := block.PeekLine()
	var open, closer string
	display := false
	switch {
	case bytes.HasPrefix(line, []byte("$$")):
		open, closer, display = "$$", "$$", true
	case bytes.HasPrefix(line, []byte("$")):
		open, closer = "$", "$"
		if len(line) < 2 || isSpace(line[1]) {
			return nil
		}
	case bytes.HasPrefix(line, []byte(`\(`)):
		open, closer = `\(`, `\)`
	case bytes.HasPrefix(line, []byte(`\[`)):
		open, closer, display = `\[`, `\]`, true
	default:
		return nil
	}
	l, pos := block.Position()
	block.Advance(len(open))
	var tex []byte
	for {
		line, seg := block.PeekLine()
		if line == nil {
			block.SetPosition(l, pos)
			return nil
		}
		for i := 0; i < len(line); i++ {
			if len(tex)+i > maxInlineMath {
				block.SetPosition(l, pos)
				return nil
			}
			c := line[i]
			if c == '\\' && !(closer[0] == '\\' && i+1 < len(line) && line[i+1] == closer[1]) {
				i++ // an escaped character, or a command's backslash: never a closer
				continue
			}
			if !bytes.HasPrefix(line[i:], []byte(closer)) {
				continue
			}
			if closer == "$" && (i == 0 || isSpace(line[i-1]) || i+1 < len(line) && line[i+1] >= '0' && line[i+1] <= '9') {
				continue // at a line's start, i == 0 follows the line break
			}
			tex = append(tex, block.Value(seg.WithStop(seg.Start+i))...)
			if len(bytes.TrimSpace(tex)) == 0 {
				block.SetPosition(l, pos)
				return nil
			}
			block.Advance(i + len(closer))
			return &mathNode{tex: tex, display: display}
		}
		tex = append(tex, block.Value(seg)...)
		block.AdvanceLine()
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

type mathRenderer struct{}

func (mathRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(kindMath, renderMath)
	reg.Register(kindMathBlock, renderMathBlock)
}

func renderMath(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if entering {
		n := node.(*mathNode)
		class := "math math-inline"
		if n.display {
			class = "math math-display"
		}
		w.WriteString(`<span class="` + class + `">` + html.EscapeString(string(n.tex)) + "</span>")
	}
	return ast.WalkSkipChildren, nil
}

func renderMathBlock(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		return ast.WalkSkipChildren, nil
	}
	n := node.(*mathBlock)
	var tex bytes.Buffer
	for i := range n.Lines().Len() {
		seg := n.Lines().At(i)
		tex.Write(seg.Value(source))
	}
	if !n.closed {
		// Not closed (yet): the opener and the lines so far, as text.
		body := html.EscapeString(strings.TrimRight(displayOpenerOf(n.closer)+"\n"+tex.String(), "\n"))
		w.WriteString("<p>" + strings.ReplaceAll(body, "\n", "<br>\n") + "</p>\n")
		return ast.WalkSkipChildren, nil
	}
	w.WriteString(`<div class="math math-display">` + html.EscapeString(tex.String()) + "</div>\n")
	return ast.WalkSkipChildren, nil
}

func displayOpenerOf(closer string) string {
	for _, d := range displayOpeners {
		if d.close == closer {
			return d.open
		}
	}
	return ""
}
