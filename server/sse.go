package server

import (
	"bufio"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// sseWriter writes Server-Sent Events to a fasthttp body stream. Every write is flushed at once, and the
// flush's error is how a gone client shows: fasthttp reports a disconnect in no other way.
type sseWriter struct {
	w *bufio.Writer
}

// lineBreaks turns every line ending into "\n": a lone "\r" would end an SSE line early.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// oneLine keeps a comment on one line.
var oneLine = strings.NewReplacer("\r", " ", "\n", " ")

// event sends a named event. Multi-line data goes out as several data lines, which the browser joins
// with "\n" again.
func (s sseWriter) event(name, data string) error {
	if name != "" {
		s.w.WriteString("event: " + name + "\n")
	}
	for line := range strings.SplitSeq(lineBreaks.Replace(data), "\n") {
		s.w.WriteString("data: " + line + "\n")
	}
	s.w.WriteString("\n")
	return s.w.Flush()
}

// data sends an unnamed event, as the OpenAI API streams.
func (s sseWriter) data(data string) error { return s.event("", data) }

// comment sends a comment line, which clients ignore: a heartbeat that detects a gone client.
func (s sseWriter) comment(text string) error {
	s.w.WriteString(": " + oneLine.Replace(text) + "\n\n")
	return s.w.Flush()
}

// startSSE sets the headers of an event stream and runs write on the response's body stream. write runs
// after the handler returns, on the connection's goroutine, so it must not touch c; a panic in it is
// recovered here since fiber's recovery no longer covers it.
func (s *Server) startSSE(c *fiber.Ctx, write func(sse sseWriter)) error {
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic in event stream", "panic", r)
			}
		}()
		write(sseWriter{w: w})
	})
	return nil
}
