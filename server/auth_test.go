package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "sk-smolchat-test-key"

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// noRedirects is a client that returns redirects instead of following them.
func noRedirects() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// send sends req with client and returns the response with its body read and closed.
func send(t testing.TB, client *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// withCookie is a GET of url carrying cookie.
func withCookie(url string, cookie *http.Cookie) *http.Request {
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(cookie)
	return req
}

// newSignInBrowser is a browser on the sign-in page, not signed in yet.
func newSignInBrowser(t testing.TB, base string) *browser {
	t.Helper()
	b := &browser{t: t, base: base, client: noRedirects()}
	b.client.Jar, _ = cookiejar.New(nil)
	b.loadToken(b.get("/signin"))
	return b
}

// signInWith posts key to the sign-in form and returns the answer, redirects not followed.
func (b *browser) signInWith(key, next string) (*http.Response, string) {
	b.t.Helper()
	form := url.Values{"key": {key}, "next": {next}, "_csrf": {b.token}}
	resp, err := b.client.PostForm(b.base+"/signin", form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn returns a browser signed in with key, on the chat page.
func signIn(t testing.TB, base, key string) *browser {
	t.Helper()
	b := newSignInBrowser(t, base)
	if resp, body := b.signInWith(key, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d: %.300s", resp.StatusCode, body)
	}
	b.loadToken(b.get("/"))
	return b
}

// sessionOf is the browser's session cookie.
func (b *browser) sessionOf() *http.Cookie {
	b.t.Helper()
	u, _ := url.Parse(b.base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c
		}
	}
	b.t.Fatal("no session cookie")
	return nil
}

// TestAuthEveryRoute: with an API key, every route but /health and /assets/ refuses a request without
// the key, in the way its client understands (a page load is sent to /signin, htmx is told to go there,
// the API gets its JSON 401, the rest a plain 401), shows nothing of the history, and accepts the key as
// a Bearer token or a session cookie (the API only as a Bearer token).
func TestAuthEveryRoute(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{APIKey: testKey})
	const title = "confidential plans"
	sb := signIn(t, base, testKey)
	conv, sid, _ := sb.send("", title, false)
	sb.stream(sid, nil)
	_, sid, _ = sb.send(conv, "a second turn", false) // left unclaimed for the stream rows

	html := map[string]string{"Accept": "text/html,application/xhtml+xml"}
	hx := map[string]string{"HX-Request": "true"}
	routes := []struct {
		name, method, path string
		form               url.Values
		header             map[string]string
		api                bool   // /v1: the key as a Bearer token only
		signedOut          int    // the status without credentials
		location           string // its Location, for a redirect
	}{
		{"page load", "GET", "/", nil, html, false, 303, "/signin?next=%2F"},
		{"page by curl", "GET", "/", nil, nil, false, 401, ""},
		{"conversation", "GET", "/c/" + conv, nil, html, false, 303, "/signin?next=%2Fc%2F" + conv},
		{"conversation by curl", "GET", "/c/" + conv, nil, nil, false, 401, ""},
		{"export", "GET", "/c/" + conv + "/export/md", nil, nil, false, 401, ""},
		{"export link", "GET", "/c/" + conv + "/export/json", nil, html, false, 303, "/signin?next=%2Fc%2F" + conv + "%2Fexport%2Fjson"},
		{"metrics", "GET", "/metrics", nil, nil, false, 401, ""},
		{"status fragment", "GET", "/status", nil, hx, false, 401, ""},
		{"event stream", "GET", "/stream/" + sid, nil, map[string]string{"Accept": "text/event-stream"}, false, 401, ""},
		{"send", "POST", "/chat", url.Values{"content": {"hi"}}, hx, false, 401, ""},
		{"API", "GET", "/v1/models", nil, nil, true, 401, ""},
	}
	type creds struct {
		name   string
		client *http.Client
		header map[string]string
		ok     bool // accepted (on /v1 only with a Bearer token)
		bearer bool
	}
	forged := noRedirects()
	credentials := []creds{
		{"none", forged, nil, false, false},
		{"wrong bearer", forged, map[string]string{"Authorization": "Bearer " + testKey + "x"}, false, false},
		{"forged session", forged, map[string]string{"Cookie": sessionCookie + "=" + newToken()}, false, false},
		{"bearer", forged, map[string]string{"Authorization": "Bearer " + testKey}, true, true},
		{"session cookie", sb.client, map[string]string{"X-CSRF-Token": sb.token}, true, false},
	}
	before, _ := s.store.Conversations(context.Background(), 100)
	for _, cr := range credentials {
		for _, r := range routes {
			t.Run(cr.name+"/"+r.name, func(t *testing.T) {
				req, _ := http.NewRequest(r.method, base+r.path, strings.NewReader(r.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for k, v := range r.header {
					req.Header.Set(k, v)
				}
				for k, v := range cr.header {
					req.Header.Set(k, v)
				}
				resp, err := cr.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if cr.ok && (!r.api || cr.bearer) {
					if resp.StatusCode != 200 {
						t.Fatalf("status %d with credentials: %.200s", resp.StatusCode, body)
					}
					return
				}
				if strings.Contains(string(body), title) || strings.Contains(string(body), "smolchat_requests_total") {
					t.Errorf("refused, but the answer shows the history or the metrics: %.300s", body)
				}
				if resp.StatusCode != r.signedOut || resp.Header.Get("Location") != r.location {
					t.Fatalf("status %d, Location %q; want %d, %q: %.200s", resp.StatusCode,
						resp.Header.Get("Location"), r.signedOut, r.location, body)
				}
				switch {
				case r.api:
					var e struct{ Error apiError }
					if json.Unmarshal(body, &e) != nil || e.Error.Code == nil || *e.Error.Code != "invalid_api_key" {
						t.Errorf("API refusal is not OpenAI's invalid_api_key: %s", body)
					}
				case r.header["HX-Request"] != "":
					if got := resp.Header.Get("HX-Redirect"); got != "/signin" {
						t.Errorf("htmx refusal: HX-Redirect %q, want /signin", got)
					}
				}
			})
		}
	}
	after, _ := s.store.Conversations(context.Background(), 100)
	// The accepted sends (bearer, session) start one conversation each; no refused one does.
	if len(after) != len(before)+2 {
		t.Errorf("%d conversations before, %d after; want 2 more (one per accepted send)", len(before), len(after))
	}

	for _, path := range []string{"/health", "/assets/style.css", "/signin"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		if resp := send(t, forged, req); resp.StatusCode != 200 {
			t.Errorf("GET %s without credentials: status %d, want 200 (public)", path, resp.StatusCode)
		}
	}
}

// TestMetricsPublic: --metrics-public opens /metrics, and only it, to clients without the key.
func TestMetricsPublic(t *testing.T) {
	_, base := startServer(t, newFake(), Config{APIKey: testKey, MetricsPublic: true})
	for _, tt := range []struct {
		path string
		want int
	}{{"/metrics", 200}, {"/", 401}, {"/v1/models", 401}} {
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		if resp := send(t, httpClient, req); resp.StatusCode != tt.want {
			t.Errorf("GET %s: status %d, want %d", tt.path, resp.StatusCode, tt.want)
		}
	}
}

// TestSignInRateLimit: a client gets signInAttempts tries per window; then every attempt, the right key
// included, gets 429 with Retry-After counting down on the server's clock, until the window has passed.
// Each wrong key is answered only after the configured delay. Sessions expire after sessionTTL.
func TestSignInRateLimit(t *testing.T) {
	clock := newFakeClock()
	const delay = 40 * time.Millisecond
	_, base := startServer(t, newFake(), Config{APIKey: testKey, signInDelay: delay, now: clock.now})
	b := newSignInBrowser(t, base)
	steps := []struct {
		name       string
		advance    time.Duration
		key        string
		status     int
		retryAfter string
	}{
		{"wrong 1", 0, "guess-1", 401, ""},
		{"wrong 2", 0, "guess-2", 401, ""},
		{"wrong 3", 0, "guess-3", 401, ""},
		{"wrong 4", 0, "guess-4", 401, ""},
		{"wrong 5", 0, "guess-5", 401, ""},
		{"over the limit", 0, "guess-6", 429, "60"},
		{"the right key is refused too", 0, testKey, 429, "60"},
		{"half a window later", 30 * time.Second, testKey, 429, "30"},
		{"almost there", 29*time.Second + 500*time.Millisecond, "guess-7", 429, "1"},
		{"the window has passed", time.Second, testKey, 303, ""},
	}
	for _, st := range steps {
		clock.advance(st.advance)
		start := time.Now()
		resp, body := b.signInWith(st.key, "/")
		took := time.Since(start)
		if resp.StatusCode != st.status || resp.Header.Get("Retry-After") != st.retryAfter {
			t.Fatalf("%s: status %d, Retry-After %q; want %d, %q: %.200s", st.name, resp.StatusCode,
				resp.Header.Get("Retry-After"), st.status, st.retryAfter, body)
		}
		switch st.status {
		case 401:
			if !strings.Contains(body, "Wrong key") {
				t.Errorf("%s: no message on the page: %.300s", st.name, body)
			}
			if took < delay {
				t.Errorf("%s: a wrong key was answered after %v, before the delay of %v", st.name, took, delay)
			}
		case 429:
			if !strings.Contains(body, "Too many attempts") {
				t.Errorf("%s: no message on the page: %.300s", st.name, body)
			}
		}
	}
	b.get("/") // signed in
	clock.advance(sessionTTL)
	req, _ := http.NewRequest("GET", base+"/", nil)
	if resp := send(t, b.client, req); resp.StatusCode != 401 {
		t.Fatalf("after the session's lifetime: status %d, want 401", resp.StatusCode)
	}
}

func TestAttemptLimiterPerClient(t *testing.T) {
	clock := newFakeClock()
	l := newAttemptLimiter(clock.now)
	a, b := clientKey("192.0.2.1"), clientKey("2001:db8:1:2:3:4:5:6")
	for range signInAttempts {
		if l.take(a) != 0 {
			t.Fatal("limited within its attempts")
		}
	}
	if l.take(a) == 0 {
		t.Fatal("not limited after its attempts")
	}
	if l.take(b) != 0 {
		t.Fatal("another client is limited by the first one's attempts")
	}
	if clientKey("2001:db8:1:2:ffff::1") != b {
		t.Error("two addresses of one IPv6 /64 count as different clients")
	}
	l.forgive(a)
	if l.take(a) != 0 {
		t.Fatal("still limited after signing in")
	}
}

// TestSignOut: signing out ends the session on the server, so that the old cookie no longer works; it
// needs the CSRF token like every other form.
func TestSignOut(t *testing.T) {
	_, base := startServer(t, newFake(), Config{APIKey: testKey})
	b := signIn(t, base, testKey)
	old := b.sessionOf()
	signOut := func(form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", base+"/signout", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(t, b.client, req)
	}
	if resp := signOut(url.Values{}); resp.StatusCode != 403 {
		t.Fatalf("sign-out without the CSRF token: status %d, want 403", resp.StatusCode)
	}
	if resp := signOut(url.Values{"_csrf": {b.token}}); resp.StatusCode != 303 || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("sign-out: status %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := send(t, httpClient, withCookie(base+"/", old)); resp.StatusCode != 401 {
		t.Fatalf("the cookie of a signed-out session: status %d, want 401", resp.StatusCode)
	}
}

// TestSignInNext: after signing in the browser goes back to the page it asked for, but only to a path
// on this site: the sign-in page is no open redirect.
func TestSignInNext(t *testing.T) {
	_, base := startServer(t, newFake(), Config{APIKey: testKey})
	tests := []struct{ next, want string }{
		{"/", "/"},
		{"/c/0123456789abcdef?x=1", "/c/0123456789abcdef?x=1"},
		{"", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"c/relative", "/"},
		{"/signin", "/"},
		{"/\t/evil.example", "/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.next); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
		}
	}
	b := newSignInBrowser(t, base)
	if resp, body := b.signInWith(testKey, "//evil.example/"); resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in with next //evil.example/: status %d to %q: %.200s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// TestNoKeyNoSignIn: without an API key nothing changes: no sign-in page, no sign-out control.
func TestNoKeyNoSignIn(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	b := newBrowser(t, base)
	if page := b.get("/"); strings.Contains(page, "/signout") {
		t.Error("the page offers to sign out without an API key")
	}
	req, _ := http.NewRequest("GET", base+"/signin", nil)
	if resp := send(t, noRedirects(), req); resp.StatusCode != 303 || resp.Header.Get("Location") != "/" {
		t.Errorf("/signin without an API key: status %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, keyed := startServer(t, newFake(), Config{APIKey: testKey})
	if page := signIn(t, keyed, testKey).get("/"); !strings.Contains(page, `action="/signout"`) {
		t.Error("the page does not offer to sign out with an API key set")
	}
}
