package hub

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clock is a fake time source the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	c := &clock{time.Unix(1e9, 0)}
	p := newProgress(&out, "model.gguf", c.now) // a buffer is not a terminal: plain lines
	const total = 100 << 20
	p.Start(total, 0)
	for i := 1; i <= 4; i++ { // 4 s at 10 MiB/s: below the line interval, so no status line yet
		c.advance(time.Second)
		p.Set(int64(i) * 10 << 20)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines before the first interval, want only the start line:\n%s", n, out.String())
	}
	c.advance(time.Second)
	p.Set(50 << 20)
	c.advance(time.Second)
	p.Set(60 << 20)
	c.advance(5 * time.Second)
	p.Set(100 << 20)
	p.Finish()
	want := []string{
		"downloading model.gguf (100 MiB)",
		"model.gguf  50.0% 50.0 MiB / 100 MiB 10.0 MiB/s ETA 0:05",
		"model.gguf 100.0% 100 MiB / 100 MiB 9.00 MiB/s ETA 0:00", // speed over the last 10 s
		"model.gguf: done, 100 MiB in 0:11, 9.09 MiB/s",
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(out.String(), "\r") {
		t.Error("carriage returns in output that is not a terminal")
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	c := &clock{time.Unix(1e9, 0)}
	p := newProgress(&out, "model.gguf", c.now)
	p.tty = true
	p.Start(1000, 0)
	c.advance(time.Second)
	p.Set(500)
	p.Note("connection lost; retrying")
	c.advance(time.Second)
	p.Set(1000)
	p.Finish()
	s := out.String()
	for _, want := range []string{
		"\rmodel.gguf  50.0% [============            ] 500 B / 1000 B 500 B/s ETA 0:01",
		"\r" + strings.Repeat(" ", 76) + "\rconnection lost; retrying\n", // the 76-column bar is wiped before a note
		"\rmodel.gguf 100.0% [========================] 1000 B / 1000 B 500 B/s ETA 0:00\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, s)
		}
	}
}

func TestProgressNilWriter(t *testing.T) {
	p := newProgress(nil, "x", time.Now)
	p.Start(10, 0)
	p.Set(5)
	p.Note("n")
	p.Abort()
	p.Finish() // nothing to check but that none of these panics
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.00 KiB"},
		{1536, "1.50 KiB"},
		{10 << 20, "10.0 MiB"},
		{862 << 20, "862 MiB"},
		{1_915_000_000, "1.78 GiB"},
		{3 << 40, "3.00 TiB"},
	}
	for _, tc := range tests {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0:00"},
		{-time.Second, "0:00"},
		{1500 * time.Millisecond, "0:02"},
		{83 * time.Second, "1:23"},
		{3723 * time.Second, "1:02:03"},
	}
	for _, tc := range tests {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestShorten(t *testing.T) {
	if got := shorten("HuggingFaceTB_SmolLM3-3B-Q4_K_M.gguf", 20); got != "…lLM3-3B-Q4_K_M.gguf" {
		t.Errorf("shorten = %q", got)
	}
	if got := shorten("short.gguf", 20); got != "short.gguf" {
		t.Errorf("shorten = %q", got)
	}
}
