package server

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// With an API key set, every route but /health and /assets/ requires it: API clients send it as a
// Bearer token, and the browser trades it at /signin for a session cookie. Sessions live in memory only,
// so restarting the server signs everyone out.

const (
	sessionCookie = "smolchat_session"
	sessionTTL    = 7 * 24 * time.Hour
	// defaultSignInDelay is how long a wrong key waits for its answer, so that guessing is slow even
	// within the attempts the limiter allows.
	defaultSignInDelay = time.Second
	// A client (an IP address; an IPv6 /64) may try signInAttempts keys per signInWindow.
	signInAttempts = 5
	signInWindow   = time.Minute
)

// signInView is the model of views/signin.html.
type signInView struct {
	CSRF, Title, Next, Error string
}

// requireAuth lets a request through when no API key is set, or when it carries the key as a Bearer
// token or a valid session cookie; other requests are refused in the way their client understands.
func (s *Server) requireAuth(c *fiber.Ctx) error {
	if s.cfg.APIKey == "" || s.bearerOK(c) || s.sessions.valid(c.Cookies(sessionCookie)) {
		return c.Next()
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	method := c.Method()
	accept := c.Get(fiber.HeaderAccept)
	switch {
	case c.Get("HX-Request") != "":
		// htmx follows HX-Redirect with a full page load, whatever the status.
		c.Set("HX-Redirect", "/signin")
	case (method == fiber.MethodGet || method == fiber.MethodHead) && strings.Contains(accept, "text/html") &&
		!strings.Contains(accept, "text/event-stream"):
		return c.Redirect("/signin?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="smolchat"`)
	return c.Status(fiber.StatusUnauthorized).SendString(
		"sign in first: open /signin in a browser, or send the API key as 'Authorization: Bearer KEY'")
}

// handleSignInPage shows the sign-in form, or goes on to next when the browser is signed in already.
func (s *Server) handleSignInPage(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if s.sessions.valid(c.Cookies(sessionCookie)) {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return s.renderSignIn(c, fiber.StatusOK, next, "")
}

// handleSignIn trades the API key for a session cookie. Attempts are counted before the key is checked,
// so that parallel guesses are limited as well as sequential ones.
func (s *Server) handleSignIn(c *fiber.Ctx) error {
	next := safeNext(c.FormValue("next"))
	client := clientKey(c.IP())
	if wait := s.attempts.take(client); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		s.log.Warn("sign-in attempts over the limit", "client", client, "retry_after_s", secs)
		return s.renderSignIn(c, fiber.StatusTooManyRequests, next,
			fmt.Sprintf("Too many attempts. Try again in %d s.", secs))
	}
	if !s.keyMatches(c.FormValue("key")) {
		s.log.Warn("wrong API key at sign-in", "client", client)
		timer := time.NewTimer(s.cfg.signInDelay)
		select {
		case <-timer.C:
		case <-s.base.Done(): // shutting down: answer now
			timer.Stop()
		}
		return s.renderSignIn(c, fiber.StatusUnauthorized, next, "Wrong key. Use the --api-key the server was started with.")
	}
	s.attempts.forgive(client)
	s.setSessionCookie(c, s.sessions.create(), int(sessionTTL/time.Second))
	return c.Redirect(next, fiber.StatusSeeOther)
}

// handleSignOut ends the browser's session.
func (s *Server) handleSignOut(c *fiber.Ctx) error {
	s.sessions.delete(c.Cookies(sessionCookie))
	s.setSessionCookie(c, "", -1)
	return c.Redirect("/signin", fiber.StatusSeeOther)
}

func (s *Server) setSessionCookie(c *fiber.Ctx, value string, maxAge int) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge, HTTPOnly: true,
		Secure: c.Secure(), SameSite: fiber.CookieSameSiteStrictMode})
}

func (s *Server) renderSignIn(c *fiber.Ctx, status int, next, msg string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Render("signin", signInView{CSRF: csrfToken(c), Title: "Sign in", Next: next, Error: msg},
		"layouts/main")
}

// safeNext is where to go after signing in: next when it is a path on this site, else "/". Anything
// that could leave the site (a scheme, "//host", a backslash, which browsers read as a slash) is refused,
// so that the sign-in page is no open redirect.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") ||
		u.Path == "/signin" || u.Path == "/signout" {
		return "/"
	}
	return next
}

// clientKey is the address sign-in attempts are counted by: the IP, or its /64 for IPv6, since one
// machine commonly holds a whole /64.
func clientKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil || a.To4() != nil {
		return ip
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// sessionStore holds the signed-in browsers' sessions. It keeps the SHA-256 of each token, not the
// token: a lookup by hash leaks nothing useful through timing, and a memory dump holds no usable cookie.
type sessionStore struct {
	now func() time.Time

	mu     sync.Mutex
	expiry map[[sha256.Size]byte]time.Time
}

func newSessionStore(now func() time.Time) *sessionStore {
	return &sessionStore{now: now, expiry: map[[sha256.Size]byte]time.Time{}}
}

// create starts a session and returns its token.
func (st *sessionStore) create() string {
	tok := newToken()
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	for h, exp := range st.expiry {
		if !now.Before(exp) {
			delete(st.expiry, h)
		}
	}
	st.expiry[sha256.Sum256([]byte(tok))] = now.Add(sessionTTL)
	return tok
}

// valid reports whether tok is a session that has not expired.
func (st *sessionStore) valid(tok string) bool {
	if !validToken(tok) {
		return false
	}
	h := sha256.Sum256([]byte(tok))
	st.mu.Lock()
	defer st.mu.Unlock()
	exp, ok := st.expiry[h]
	if ok && !st.now().Before(exp) {
		delete(st.expiry, h)
		return false
	}
	return ok
}

func (st *sessionStore) delete(tok string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.expiry, sha256.Sum256([]byte(tok)))
}

// attemptLimiter allows each client signInAttempts sign-in attempts in a window of signInWindow that
// starts with its first attempt.
type attemptLimiter struct {
	now func() time.Time

	mu       sync.Mutex
	byClient map[string]attemptWindow
}

type attemptWindow struct {
	start time.Time
	n     int
}

func newAttemptLimiter(now func() time.Time) *attemptLimiter {
	return &attemptLimiter{now: now, byClient: map[string]attemptWindow{}}
}

// take counts an attempt by client. When the client has none left, it returns how long until it has,
// and the attempt does not count.
func (l *attemptLimiter) take(client string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byClient) >= 1024 {
		for k, w := range l.byClient {
			if now.Sub(w.start) >= signInWindow {
				delete(l.byClient, k)
			}
		}
	}
	w, ok := l.byClient[client]
	if !ok || now.Sub(w.start) >= signInWindow {
		w = attemptWindow{start: now}
	}
	if w.n >= signInAttempts {
		return w.start.Add(signInWindow).Sub(now)
	}
	w.n++
	l.byClient[client] = w
	return 0
}

// forgive forgets a client's attempts once it has signed in.
func (l *attemptLimiter) forgive(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byClient, client)
}
