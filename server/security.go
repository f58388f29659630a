package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// contentSecurityPolicy allows only the server's own scripts and styles: no inline script, no inline
// event handler, no inline style. Everything the page runs is in assets/.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (s *Server) securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	return c.Next()
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

// limitBody refuses request bodies over Config.BodyLimit.
func (s *Server) limitBody(c *fiber.Ctx) error {
	if len(c.Body()) > s.cfg.BodyLimit {
		return fiber.ErrRequestEntityTooLarge
	}
	return c.Next()
}

// requireAPIKey checks the Bearer token on /v1 when an API key is configured. Both sides are hashed
// before the constant-time comparison so that not even the key's length leaks through timing.
func (s *Server) requireAPIKey(c *fiber.Ctx) error {
	if s.cfg.APIKey == "" || c.Method() == fiber.MethodOptions {
		return c.Next()
	}
	auth := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(auth, "Bearer ")
	want := sha256.Sum256([]byte(s.cfg.APIKey))
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="smolchat"`)
		msg := "invalid API key"
		if auth == "" {
			msg = "missing API key: send it as 'Authorization: Bearer KEY'"
		}
		return apiErr(fiber.StatusUnauthorized, "invalid_request_error", "", "%s", msg).withCode("invalid_api_key")
	}
	return c.Next()
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
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	c.Cookie(&fiber.Cookie{Name: csrfCookie, Value: tok, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode})
	return tok
}

func validToken(tok string) bool {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil && len(b) == 32
}

func (s *Server) checkCSRF(c *fiber.Ctx) error {
	if origin := c.Get(fiber.HeaderOrigin); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != c.Hostname() {
			return fiber.NewError(fiber.StatusForbidden, "cross-origin request refused")
		}
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
