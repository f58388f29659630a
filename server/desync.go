package server

import (
	"bytes"
	"fmt"

	"github.com/gofiber/fiber/v2"
)

// refuseAmbiguousFraming refuses a request whose headers leave its length open to two readings, and
// closes the connection after the 400.
//
// fasthttp takes the last of several Content-Length headers, and a chunked body over a Content-Length. A
// proxy in front may read the other one, and where they disagree, the bytes one of them takes for the
// body the other takes for a new request: a request smuggled past the proxy. Even with no proxy, the
// bytes after a chunked body's end are run as a second request on the same connection. RFC 9112 §6.1
// and §6.3 tell a server to refuse such a request and close the connection, so nothing after its
// headers is read as another request.
//
// Refused: several Content-Length headers (even with the same value; RFC 9110 §8.6 allows either),
// Transfer-Encoding together with Content-Length, several Transfer-Encoding headers, a Transfer-Encoding
// other than "chunked", and folded header lines (obs-fold, which fasthttp joins to the line before,
// so a folded Transfer-Encoding would escape this check).
func (s *Server) refuseAmbiguousFraming(c *fiber.Ctx) error {
	why := framingProblem(c.Request().Header.RawHeaders())
	if why == "" {
		return c.Next()
	}
	c.Context().SetConnectionClose()
	return badRequest("", "request refused because its length is ambiguous: %s; send one Content-Length, or Transfer-Encoding: chunked alone", why).
		withCode("ambiguous_framing")
}

// framingProblem says what makes a request's header block, as received, frame its body ambiguously,
// or returns "" when nothing does.
func framingProblem(raw []byte) string {
	var lengths, encodings int
	var encoding []byte
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "a folded header line"
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte(fiber.HeaderContentLength)):
			lengths++
		case bytes.EqualFold(name, []byte(fiber.HeaderTransferEncoding)):
			encodings++
			encoding = bytes.Trim(value, " \t")
		}
	}
	switch {
	case lengths > 1:
		return fmt.Sprintf("%d Content-Length headers", lengths)
	case encodings > 1:
		return fmt.Sprintf("%d Transfer-Encoding headers", encodings)
	case encodings == 1 && lengths == 1:
		return "both Content-Length and Transfer-Encoding"
	case encodings == 1 && !bytes.EqualFold(encoding, []byte("chunked")):
		return fmt.Sprintf("Transfer-Encoding %q (only chunked is supported)", encoding)
	}
	return ""
}
