package attach

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// makePDF writes a PDF with one page per entry of pages, each showing its lines in Helvetica: the
// smallest file a PDF writer makes (a catalog, a page tree, pages, content streams, a font, an xref).
func makePDF(pages ...[]string) []byte {
	var objs []string
	add := func(s string) int { objs = append(objs, s); return len(objs) }
	catalog := add("") // filled in below
	tree := add("")
	font := add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	var kids []string
	for _, lines := range pages {
		var content strings.Builder
		content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
		for _, l := range lines {
			fmt.Fprintf(&content, "(%s) Tj T*\n", strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(l))
		}
		content.WriteString("ET")
		stream := add(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
		page := add(fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>", tree, font, stream))
		kids = append(kids, fmt.Sprintf("%d 0 R", page))
	}
	objs[catalog-1] = fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R >>", tree)
	objs[tree-1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(kids))
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, catalog, xref)
	return b.Bytes()
}

func TestText(t *testing.T) {
	good := makePDF([]string{"Hello from a PDF", "second line"}, []string{"Page two"})
	tests := []struct {
		name    string
		data    []byte
		want    []string // substrings of the text
		wantErr error
	}{
		{"notes.txt", []byte("line one\r\nline two\rthree"), []string{"line one\nline two\nthree"}, nil},
		{"main.go", []byte("\xef\xbb\xbfpackage main\n"), []string{"package main\n"}, nil},
		{"<img src=x onerror=alert(1)>.md", []byte("<script>alert(1)</script>"), []string{"<script>alert(1)</script>"}, nil},
		{"paper.pdf", good, []string{"Hello from a PDF", "Page two"}, nil},
		{"photo.png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), nil, ErrImage},
		{"photo.txt", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), nil, ErrImage},
		{"drawing.svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'></svg>"), nil, ErrImage},
		{"a.bin", []byte{0x00, 0x01, 0x02, 'a'}, nil, ErrBinary},
		{"latin1.txt", []byte("caf\xe9"), nil, ErrBinary},
		{"empty.pdf", makePDF([]string{}), nil, ErrNoText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Text(tt.name, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Text: error %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Text = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

// TestBrokenPDFs feeds the reader damaged PDFs: every one is an error (ErrPDF or ErrNoText), never a
// panic or a hang.
func TestBrokenPDFs(t *testing.T) {
	good := makePDF([]string{"Hello from a PDF"})
	xref := bytes.Index(good, []byte("xref"))
	// Damage of the same length keeps the cross-reference offsets right, so that it reaches the
	// reader's deeper layers.
	same := func(old, new string) []byte {
		if len(old) != len(new) || !bytes.Contains(good, []byte(old)) {
			panic("bad test case: " + old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	broken := map[string][]byte{
		"header only":         []byte("%PDF-1.4\n"),
		"truncated":           good[:len(good)/2],
		"no trailer":          good[:xref],
		"xref points nowhere": bytes.Replace(good, []byte("startxref\n"+fmt.Sprint(xref)), []byte("startxref\n999999"), 1),
		"page count huge":     bytes.Replace(good, []byte("/Count 1"), []byte("/Count 999999999999"), 1),
		"page count negative": bytes.Replace(good, []byte("/Count 1"), []byte("/Count -5"), 1),
		"page count lies":     same("/Count 1", "/Count 9"),
		"kids loop":           same("/Kids [5 0 R]", "/Kids [2 0 R]"),
		"page is its parent":  same("/Parent 2 0 R", "/Parent 5 0 R"),
		"pages not a dict":    same("/Pages 2 0 R", "/Pages 4 0 R"),
		"unknown font":        same("/F1 12 Tf", "/F9 12 Tf"),
		"font not a dict":     same("<< /Type /Font", "[  /Type /Font"),
		"TJ without an array": same(") Tj", ") TJ"),
		"unclosed string":     same("(Hello", "<Hello"),
		"operator underflow":  same("72 720 Td", "Td Td Td "),
		"stream length lies":  same("/Length ", "/Length 9"[:8]),
		"bad filter":          same("/Resources", "/Filter /X"),
		"garbage":             append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("obj << >> endobj ( [ "), 200)...),
	}
	for name, data := range broken {
		t.Run(name, func(t *testing.T) {
			_, err := Text("broken.pdf", data)
			t.Logf("%v", err)
			if err == nil {
				return // some damage leaves the text readable
			}
			if !errors.Is(err, ErrPDF) && !errors.Is(err, ErrNoText) {
				t.Fatalf("error %v is neither ErrPDF nor ErrNoText", err)
			}
		})
	}
}

func FuzzText(f *testing.F) {
	f.Add([]byte("plain text"))
	f.Add(makePDF([]string{"Hello", "world"}, []string{"two"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Text("fuzz.pdf", data) // must not panic or hang
	})
}
