package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// contentSecurityPolicy allows only the server's own scripts and styles: no inline script, no inline
// event handler, no inline style. Everything the page runs is in assets/.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (s *Server) securityHeaders(c *fiber.Ctx) error {
	s.setSecurityHeaders(c)
	return c.Next()
}

// setSecurityHeaders sets the headers every response carries, also those refused before securityHeaders
// runs.
func (s *Server) setSecurityHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer the browser sends "Origin: null" with the page's
	// own form posts (sign-in, sign-out), which checkCSRF could not tell from another site's. Other sites
	// still get no referrer.
	c.Set("Referrer-Policy", "same-origin")
	c.Set("X-Frame-Options", "DENY")
}

// recoverPanics turns a panic in a handler into a 500 for that request alone.
func (s *Server) recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "method", c.Method(), "path", c.Path(), "panic", r,
				"stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Next()
}

func (s *Server) refuseWhileClosing(c *fiber.Ctx) error {
	if s.closing.Load() {
		c.Set(fiber.HeaderConnection, "close")
		return apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "%v", errShutdown)
	}
	return c.Next()
}

// limitBody refuses request bodies over Config.BodyLimit, and uploads of attachments over
// maxAttachmentBytes (and their form's fields).
func (s *Server) limitBody(c *fiber.Ctx) error {
	limit := s.cfg.BodyLimit
	if c.Path() == "/attach" {
		limit = maxAttachmentBytes + 64<<10
	}
	if len(c.Body()) > limit {
		return fiber.ErrRequestEntityTooLarge
	}
	return c.Next()
}

// requireAPIKey checks the Bearer token on /v1 when an API key is configured.
func (s *Server) requireAPIKey(c *fiber.Ctx) error {
	if s.cfg.APIKey == "" || c.Method() == fiber.MethodOptions {
		return c.Next()
	}
	if auth := c.Get(fiber.HeaderAuthorization); !s.bearerOK(c) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="smolchat"`)
		msg := "invalid API key"
		if auth == "" {
			msg = "missing API key: send it as 'Authorization: Bearer KEY'"
		}
		return apiErr(fiber.StatusUnauthorized, "invalid_request_error", "", "%s", msg).withCode("invalid_api_key")
	}
	return c.Next()
}

// bearerOK reports whether the request carries the API key as 'Authorization: Bearer KEY'.
func (s *Server) bearerOK(c *fiber.Ctx) bool {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	return ok && s.keyMatches(strings.TrimSpace(token))
}

// keyMatches compares key with the configured API key. Both sides are hashed before the constant-time
// comparison so that not even the key's length leaks through timing.
func (s *Server) keyMatches(key string) bool {
	want := sha256.Sum256([]byte(s.cfg.APIKey))
	got := sha256.Sum256([]byte(key))
	return s.cfg.APIKey != "" && subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// requireJSON refuses an API POST whose body is not declared JSON. A web page on any site may send a
// form or text/plain body without asking first (a CORS "simple request": no preflight), so decoding such
// bodies as JSON would let any page the user opens start generations on this server. A JSON content type
// makes the browser ask first, and the CORS settings decide.
func requireJSON(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodPost {
		return c.Next()
	}
	ct := c.Get(fiber.HeaderContentType)
	mediaType, _, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(mediaType), fiber.MIMEApplicationJSON) {
		return apiErr(fiber.StatusUnsupportedMediaType, "invalid_request_error", "",
			"Content-Type %q is not accepted: send the JSON body with 'Content-Type: application/json' (curl -d sends a form type unless given -H 'Content-Type: application/json')", ct).
			withCode("unsupported_media_type")
	}
	return c.Next()
}

// CSRF protection for the page's POST and DELETE requests. The page gets a random token in a
// SameSite=Strict, HttpOnly cookie and the same token in the page itself, which htmx sends back in the
// X-CSRF-Token header (hx-headers on <body>). A request passes when the header (or the _csrf form field)
// matches the cookie, so a page on another origin, which can neither read the cookie nor the page,
// cannot forge one.
const (
	csrfCookie = "smolchat_csrf"
	csrfHeader = "X-CSRF-Token"
	csrfField  = "_csrf"
)

// csrfToken returns the browser's token, issuing a new cookie when it has none.
func csrfToken(c *fiber.Ctx) string {
	if tok := c.Cookies(csrfCookie); validToken(tok) {
		return tok
	}
	tok := newToken()
	c.Cookie(&fiber.Cookie{Name: csrfCookie, Value: tok, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode})
	return tok
}

// newToken is 32 random bytes in URL-safe base64: a CSRF token or a session.
func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (Go 1.24+): it crashes the program rather than return weak bytes
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validToken(tok string) bool {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil && len(b) == 32
}

// checkCSRF also refuses an Origin that names a host the server does not answer to (originAllowed). A
// request that carries the API key as a Bearer token needs neither: a browser never adds that header on
// its own, so it cannot be forged by another site.
func (s *Server) checkCSRF(c *fiber.Ctx) error {
	if s.bearerOK(c) {
		return c.Next()
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !s.originAllowed(origin) {
		return fiber.NewError(fiber.StatusForbidden, "cross-origin request refused")
	}
	cookie := c.Cookies(csrfCookie)
	sent := c.Get(csrfHeader)
	if sent == "" {
		sent = c.FormValue(csrfField)
	}
	if !validToken(cookie) || subtle.ConstantTimeCompare([]byte(cookie), []byte(sent)) != 1 {
		return fiber.NewError(fiber.StatusForbidden, "the page's security token is missing or stale: reload the page")
	}
	return c.Next()
}
