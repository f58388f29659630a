package markdown

import (
	"bytes"

	"github.com/yuin/goldmark/text"
)

// Live renders a text that grows, an answer as it streams, block by block. A top-level block is
// finished once the first line of the next one is complete: nothing written after can change it (a paragraph
// ends at a blank line or at the start of another block, a list or a fenced code block at the first
// line that is not theirs). Each finished block is rendered once, from its own lines, and sent; the
// last, open block is rendered again as it grows (a fence not yet closed shows as code so far, a
// formula not yet closed as text).
//
// Render uses the same cut, so the HTML of a finished answer is its blocks' HTML, whether it came
// in one piece or a token at a time. (A link's reference definition therefore reaches only the links
// of its own block.)
type Live struct {
	r        *Renderer
	src      []byte
	off      int          // where the open block starts; src[:off] is rendered in finished
	finished bytes.Buffer // the finished blocks' HTML
}

// Live returns an empty Live.
func (r *Renderer) Live() *Live { return &Live{r: r} }

// Add appends text and returns the HTML of the blocks it finished, "" if none.
func (l *Live) Add(s string) string {
	l.src = append(l.src, s...)
	open := l.src[l.off:]
	if bytes.IndexByte(open, '\n') < 0 {
		return "" // a block below the open one would start on a line of its own
	}
	starts := l.r.blockStarts(open)
	if len(starts) == 0 {
		return ""
	}
	var out bytes.Buffer
	prev := 0
	for _, at := range starts {
		out.WriteString(l.r.renderBlock(string(open[prev:at])))
		prev = at
	}
	l.off += prev
	l.finished.Write(out.Bytes())
	return out.String()
}

// Finished is the HTML of the blocks finished so far.
func (l *Live) Finished() string { return l.finished.String() }

// Open is the HTML of the open block as it stands ("" before any text): provisional while the text
// grows, final once it has ended.
func (l *Live) Open() string {
	if l.off == len(l.src) {
		return ""
	}
	return l.r.renderBlock(string(l.src[l.off:]))
}

// OpenLen is the length of the open block's text.
func (l *Live) OpenLen() int { return len(l.src) - l.off }

// blockStarts returns where the top-level blocks of src after the first start: each one's first line,
// in src. A block whose position the parser does not know ends the list (the blocks from the one
// before it stay open).
func (r *Renderer) blockStarts(src []byte) []int {
	doc := r.md.Parser().Parse(text.NewReader(src))
	var starts []int
	last := 0
	for n := doc.FirstChild(); n != nil; n = n.NextSibling() {
		if n == doc.FirstChild() {
			continue
		}
		p := n.Pos()
		if p < 0 || p > len(src) {
			break
		}
		at := bytes.LastIndexByte(src[:p], '\n') + 1 // the start of its line
		if at <= last || bytes.IndexByte(src[at:], '\n') < 0 {
			// A block whose first line is not complete may yet be something else: "1" may become
			// "10. item", which goes on the list above.
			break
		}
		starts = append(starts, at)
		last = at
	}
	return starts
}
