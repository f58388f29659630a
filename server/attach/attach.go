// Package attach reads the text of a file attached to a chat message: UTF-8 text (code, notes, data)
// as it is, a PDF's text layer extracted with github.com/ledongthuc/pdf (a maintained fork of rsc.io/pdf
// that adds text extraction). Anything else is refused with an error that says why: an image (the model
// has no vision), a binary file, a PDF without text. A file is hostile input: a corrupt PDF is an error,
// never a panic, and the work a PDF can ask for is bounded (pages, text).
package attach

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
)

// Limits on what one PDF may make the reader do.
const (
	// MaxPages is the most pages read from a PDF; a file may claim any count.
	MaxPages = 2000
	// MaxText is the most text, in bytes, kept from a PDF: far more than any model's context.
	MaxText = 4 << 20
)

// Errors of Text; each is wrapped with the file's details.
var (
	ErrImage  = errors.New("images cannot be attached: the model reads text only (it has no vision)")
	ErrBinary = errors.New("only text files (UTF-8) and PDFs can be attached")
	ErrPDF    = errors.New("the PDF cannot be read")
	ErrNoText = errors.New("the PDF has no text layer (a scan?): its pages are pictures, which the model cannot read")
)

// imageExts are file names that are images whatever their bytes look like (an SVG is text, but a
// picture to the person attaching it).
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true, ".bmp": true,
	".svg": true, ".tif": true, ".tiff": true, ".heic": true, ".heif": true, ".avif": true, ".ico": true}

// Text returns the text of a file named name with the contents data, with line ends as "\n".
func Text(name string, data []byte) (string, error) {
	sniffed := http.DetectContentType(data)
	switch {
	case strings.HasPrefix(sniffed, "image/"):
		return "", fmt.Errorf("%w (%s)", ErrImage, sniffed)
	case imageExts[strings.ToLower(path.Ext(name))]:
		return "", ErrImage
	case isPDF(data):
		return pdfText(data)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a byte-order mark
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return "", fmt.Errorf("%w; this file is %s", ErrBinary, sniffed)
	}
	return normalize(string(data)), nil
}

// isPDF reports whether data starts as a PDF: its header within the first KiB, as readers allow.
func isPDF(data []byte) bool {
	return bytes.Contains(data[:min(len(data), 1024)], []byte("%PDF-"))
}

// normalize turns "\r\n" and "\r" into "\n".
func normalize(s string) string {
	return strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
}

// pageList walks a PDF's page tree (the reader's own walk follows a tree that loops forever). Its
// depth and the nodes it visits are bounded, since a node may be its own kid or listed many times.
func pageList(root pdf.Value) ([]pdf.Page, error) {
	const maxDepth, maxNodes = 64, 4 * MaxPages
	var pages []pdf.Page
	visited := 0
	var walk func(n pdf.Value, depth int) error
	walk = func(n pdf.Value, depth int) error {
		if visited++; visited > maxNodes || depth > maxDepth {
			return fmt.Errorf("%w: its page tree is over %d nodes or %d levels deep (a loop?)", ErrPDF, maxNodes, maxDepth)
		}
		switch n.Key("Type").Name() {
		case "Page":
			if len(pages) == MaxPages {
				return fmt.Errorf("%w: it has over %d pages", ErrPDF, MaxPages)
			}
			pages = append(pages, pdf.Page{V: n})
		case "Pages":
			kids := n.Key("Kids")
			for i := range kids.Len() {
				if err := walk(kids.Index(i), depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return pages, walk(root, 0)
}

// pdfText extracts the text of a PDF's pages, a blank line between pages.
func pdfText(data []byte) (text string, err error) {
	// The reader panics on some malformed files (it was written for well-formed ones); a file that
	// makes it panic is as unreadable as one it refuses.
	defer func() {
		if r := recover(); r != nil {
			text, err = "", fmt.Errorf("%w: %v", ErrPDF, r)
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrPDF, err)
	}
	pages, err := pageList(r.Trailer().Key("Root").Key("Pages"))
	if err != nil {
		return "", err
	}
	if len(pages) == 0 {
		return "", fmt.Errorf("%w: it has no pages", ErrPDF)
	}
	var b strings.Builder
	fonts := map[string]*pdf.Font{}
	for i, p := range pages {
		i++
		for _, name := range p.Fonts() {
			if _, ok := fonts[name]; !ok {
				f := p.Font(name)
				fonts[name] = &f
			}
		}
		t, err := p.GetPlainText(fonts)
		if err != nil {
			return "", fmt.Errorf("%w: page %d: %v", ErrPDF, i, err)
		}
		if t = strings.TrimSpace(normalize(t)); t != "" {
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			b.WriteString(t)
		}
		if b.Len() > MaxText {
			return "", fmt.Errorf("%w: its text is over %d MiB", ErrPDF, MaxText>>20)
		}
	}
	text = strings.ToValidUTF8(b.String(), "\uFFFD") // a font's map may give anything
	if strings.IndexFunc(text, func(r rune) bool { return !unicode.IsSpace(r) }) < 0 {
		return "", ErrNoText
	}
	return text, nil
}
