package server

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttach uploads files of each kind: text and PDFs come back as a chip with the file's name, its
// token count and its text, all escaped (a file's name and contents are hostile input); images, binary
// files, broken PDFs, files too large to upload and files too long for the context are refused saying
// why, with the count and the limit for the last.
func TestAttach(t *testing.T) {
	f := newFake()
	f.context = 512
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	pdf, err := os.ReadFile(filepath.Join("testdata", "attach", "notes.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		data   []byte
		status int
		want   []string // substrings of the answer
		not    []string
	}{
		{"main.go", []byte("package main\n\nfunc main() {}\n"), 200,
			[]string{`<span class="attachment-name">main.go</span>`, `tokens</span>`, `name="attachment" value="package main`}, nil},
		{`<img src=x onerror=alert(1)>.txt`, []byte(`"><script>alert(1)</script>`), 200,
			[]string{`&lt;img src=x onerror=alert(1)&gt;.txt`, `value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`}, []string{"<img", "<script"}},
		{"../../etc/passwd\t.md", []byte("path in the name"), 200, []string{`<span class="attachment-name">passwd.md</span>`}, nil},
		{"notes.pdf", pdf, 200, []string{"Meeting notes: the launch moves to &lt;b&gt;Tuesday&lt;/b&gt;.", "Second page: ask Ada."}, []string{"<b>"}},
		{"photo.png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 415, []string{"photo.png is not attached: images cannot be attached: the model reads text only (it has no vision)"}, nil},
		{"tool.exe", []byte("MZ\x90\x00\x03\x00\x00\x00"), 415, []string{"only text files (UTF-8) and PDFs can be attached"}, nil},
		{"broken.pdf", pdf[:len(pdf)/2], 422, []string{"broken.pdf is not attached: the PDF cannot be read"}, nil},
		{"empty.txt", []byte("  \n"), 422, []string{"it is empty"}, nil},
		{"long.txt", []byte(strings.Repeat("word ", 600)), 413, []string{"long.txt is 6", "tokens; with room kept for the answer, the chat&#39;s template and its system prompt, the context window holds"}, nil},
		{"huge.txt", []byte(strings.Repeat("x", maxAttachmentBytes+1)), 413, []string{"huge.txt is 10,485,761 bytes; files of at most 10,485,760 bytes (10 MiB) can be attached."}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.upload("/attach", tt.name, tt.data)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("the answer lacks %q: %.600s", w, body)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(body, w) {
					t.Errorf("the answer carries %q: %.600s", w, body)
				}
			}
		})
	}
}

// TestSendWithAttachments: the files' text goes into the message, each under its name in a fence
// longer than the backticks in it, before what was typed; the engine gets it, the history keeps it,
// and a message of attachments alone is sent too.
func TestSendWithAttachments(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	form := url.Values{"content": {"What is in these?"}, "attachment_name": {"a.md", "<b>.txt"},
		"attachment": {"has ``` inside", "second"}}
	resp, body := b.do("POST", "/chat", form)
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %s", resp.StatusCode, body)
	}
	conv := strings.TrimPrefix(resp.Header.Get("HX-Push-Url"), "/c/")
	b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	want := "a.md:\n````\nhas ``` inside\n````\n\n<b>.txt:\n```\nsecond\n```\n\nWhat is in these?"
	if r := f.lastRequest(); r.Messages[len(r.Messages)-1].Content != want {
		t.Errorf("the engine got %q, want %q", r.Messages[len(r.Messages)-1].Content, want)
	}
	msgs, _ := s.store.Messages(context.Background(), conv)
	if msgs[0].Content != want {
		t.Errorf("the history keeps %q", msgs[0].Content)
	}
	if !strings.Contains(body, "&lt;b&gt;.txt:") {
		t.Errorf("the sent message does not show the file's name as text: %s", body)
	}
	resp, body = b.do("POST", "/chat", url.Values{"conversation": {conv}, "attachment_name": {"only.txt"}, "attachment": {"/help"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "only.txt:") {
		t.Fatalf("a message of an attachment alone: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("POST", "/chat", url.Values{"attachment_name": {"x"}, "attachment": {"a", "b"}}); resp.StatusCode != 400 {
		t.Fatalf("attachments without names: %d %s", resp.StatusCode, body)
	}
}
