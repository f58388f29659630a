package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Markup that runs script if a page ever interprets it: each sets window.__xss to its own number.
const (
	xssUser = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><svg onload="window.__xss=3"></svg>`
	// xssAnswer is Markdown, as a model writes it, with raw HTML and script links in it.
	xssAnswer = "Sure! <img src=x onerror=\"window.__xss=11\"> <script>window.__xss=12</script>\n\n" +
		"[click me](javascript:window.__xss=13) <a href=\"javascript:window.__xss=14\">link</a>\n\n" +
		"<iframe srcdoc=\"<script>parent.__xss=15</script>\"></iframe>\n\n" +
		"<details open ontoggle=\"window.__xss=16\">x</details>\n\n![pic](x\" onerror=\"window.__xss=17)"
	xssReasoning = `Thinking about <img src=x onerror="window.__xss=21"> and <script>window.__xss=22</script> now.`
)

// domCheck reports what the page made of the payloads: whether any ran, the elements that could run
// script (none may exist), and the visible text of the conversation and the sidebar.
const domCheck = `(() => {
	const risky = [...document.querySelectorAll("#messages *, #conversation-list *")].filter(el =>
		["SCRIPT", "IFRAME", "OBJECT", "EMBED", "FRAME"].includes(el.tagName.toUpperCase()) ||
		(el.tagName.toUpperCase() === "IMG" && (el.getAttribute("src") || "").startsWith("x")) ||
		[...el.attributes].some(a => a.name.toLowerCase().startsWith("on")) ||
		/^\s*javascript:/i.test(el.getAttribute("href") || "") ||
		/^\s*javascript:/i.test(el.getAttribute("src") || ""));
	return JSON.stringify({
		xss: window.__xss === undefined ? 0 : window.__xss,
		risky: risky.map(el => el.outerHTML.slice(0, 120)),
		messages: (document.querySelector("#messages") || {}).textContent || "",
		sidebar: (document.querySelector("#conversation-list") || {}).textContent || "",
	});
})()`

type domReport struct {
	XSS      int
	Risky    []string
	Messages string
	Sidebar  string
}

// TestXSSInBrowser sends script payloads through both ways text reaches the page, a user's message and
// the model's output (reasoning and answer, through the test double), and inspects the DOM in headless
// Chromium while the answer streams, when it is done, and after a reload: the payloads are there as
// text, no element that could run script was created, nothing ran, and the page logged no error (a
// blocked inline script would be logged as a Content-Security-Policy violation).
func TestXSSInBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping: no Chromium found (install chromium or set SMOLCHAT_CHROMIUM)")
	}
	f := newFake()
	f.delay = 15 * time.Millisecond
	f.script(xssReasoning, xssAnswer)
	_, base := startServer(t, f, Config{})
	ctx, errs := newChromium(t, chromium)

	inspect := func(when string) domReport {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](domCheck))
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var r domReport
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatal(err)
		}
		if r.XSS != 0 {
			t.Errorf("%s: payload %d ran", when, r.XSS)
		}
		if len(r.Risky) > 0 {
			t.Errorf("%s: the page holds elements that can run script:\n%s", when, strings.Join(r.Risky, "\n"))
		}
		if e := errs.take(); len(e) > 0 {
			t.Errorf("%s: the page reported errors:\n%s", when, strings.Join(e, "\n"))
		}
		return r
	}
	wait := func(name, expr string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if _, err := chromedp.Run(wctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible("#prompt")); err != nil {
		t.Fatal(err)
	}
	// Thinking on, so that the reasoning streams too.
	if on, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#think").checked`)); !on {
		if err := chromedp.Do(ctx, chromedp.Click(".switch")); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#prompt", xssUser), chromedp.SendKeys("#prompt", kb.Enter)); err != nil {
		t.Fatal(err)
	}
	wait("the answer streaming", `(document.querySelector(".msg.streaming .content")?.textContent || "").includes("window.__xss=12")`)
	inspect("while streaming")
	wait("the answer done", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .content")`)
	done := inspect("after the answer")
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible("#prompt")); err != nil {
		t.Fatal(err)
	}
	wait("the history", `document.querySelectorAll("#messages .msg").length === 2`)
	reloaded := inspect("after a reload")

	for when, r := range map[string]domReport{"after the answer": done, "after a reload": reloaded} {
		for _, text := range []string{xssUser, `<img src=x onerror="window.__xss=11">`, `<script>window.__xss=12</script>`,
			`<iframe srcdoc="<script>parent.__xss=15</script>"></iframe>`, `<script>window.__xss=22</script>`} {
			if !strings.Contains(r.Messages, text) {
				t.Errorf("%s: the conversation does not show %q as text", when, text)
			}
		}
		if !strings.Contains(r.Sidebar, `<img src=x onerror=`) {
			t.Errorf("%s: the sidebar title does not show the message as text: %q", when, r.Sidebar)
		}
	}

	// The check itself sees an element that could run script: one added by hand is reported.
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.querySelector("#messages").insertAdjacentHTML("beforeend", '<img src="x" data-control>'), `+domCheck))
	if err != nil {
		t.Fatal(err)
	}
	var control domReport
	json.Unmarshal([]byte(s), &control)
	if len(control.Risky) != 1 || !strings.Contains(control.Risky[0], "data-control") {
		t.Fatalf("the DOM check missed a planted element: %+v", control.Risky)
	}
}

// newChromium starts headless Chromium for a test and collects what its page reports.
func newChromium(t *testing.T, chromium string) (context.Context, *pageErrors) {
	t.Helper()
	alloc, cancelAlloc := chromiumAllocator(t, chromium)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	errs := &pageErrors{}
	if err := errs.listen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return ctx, errs
}

// TestCrossSiteFormPost has a page on another site (another port of localhost) post a form to the chat
// in the same browser, after the user opened the chat: the post is refused, and nothing reaches the
// history or the model. Same-origin requests from the real page keep working.
func TestCrossSiteFormPost(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping: no Chromium found (install chromium or set SMOLCHAT_CHROMIUM)")
	}
	f := newFake()
	s, base := startServer(t, f, Config{})
	// The attacker's page, served from another origin, submits a form to the chat as soon as it loads.
	evil := http.NewServeMux()
	evil.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="POST" action="%s/chat">
<input name="content" value="pwned by a cross-site form"></form>
<script>document.getElementById("f").submit()</script>`, base)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evilSrv := &http.Server{Handler: evil}
	go evilSrv.Serve(ln)
	defer evilSrv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	evilURL := "http://localhost:" + port + "/"

	ctx, _ := newChromium(t, chromium)
	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible("#prompt")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(evilURL)); err != nil {
		t.Fatal(err)
	}
	// The form lands on the chat's origin; wait for its answer page.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := chromedp.Run(wctx, chromedp.Poll[string](
		`location.href.endsWith("/chat") && document.readyState === "complete" ? document.body.innerText : null`,
		chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		t.Fatalf("the cross-site form never landed: %v", err)
	}
	if !strings.Contains(body, "cross-origin request refused") && !strings.Contains(body, "security token") {
		t.Errorf("the cross-site post was not refused; the page says: %.300s", body)
	}
	convs, err := s.store.Conversations(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 0 || f.requestCount() != 0 {
		t.Fatalf("the cross-site post got through: %d conversations, %d model requests", len(convs), f.requestCount())
	}
	t.Logf("cross-site form post answered: %.120q", body)

	// The real page still sends.
	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible("#prompt"),
		chromedp.SendKeys("#prompt", "legit"), chromedp.SendKeys("#prompt", kb.Enter)); err != nil {
		t.Fatal(err)
	}
	wctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if _, err := chromedp.Run(wctx2, chromedp.Poll[bool](`document.querySelectorAll(".msg.assistant:not(.streaming)").length === 1`,
		chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		t.Fatalf("same-origin send after the attack: %v", err)
	}
}

// TestCSRFWithoutBrowser covers what a non-browser attacker can forge: a form post carrying the victim's
// cookie (as a browser without SameSite would send it) but no token, with or without a foreign Origin,
// and a DELETE the same way. All are refused with 403 and change nothing.
func TestCSRFWithoutBrowser(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "mine", false)
	b.stream(sid, nil)
	u, _ := url.Parse(base)
	cookie := b.client.Jar.Cookies(u)
	if len(cookie) == 0 {
		t.Fatal("no CSRF cookie")
	}
	tests := []struct {
		name, method, path string
		form               url.Values
		header             map[string]string
	}{
		{"form post with the cookie, no token", "POST", "/chat", url.Values{"content": {"forged"}}, nil},
		{"form post from another origin", "POST", "/chat", url.Values{"content": {"forged"}, "_csrf": {cookie[0].Value}},
			map[string]string{"Origin": "http://evil.example"}},
		{"token in the form of another value", "POST", "/chat", url.Values{"content": {"forged"}, "_csrf": {strings.Repeat("A", 43)}}, nil},
		{"delete without token", "DELETE", "/c/" + conv, nil, nil},
		{"settings without token", "POST", "/settings", url.Values{"conversation": {conv}, "temperature": {"2"}}, nil},
		{"stop without token", "POST", "/stream/" + sid + "/cancel", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(cookie[0])
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
		})
	}
	convs, _ := s.store.Conversations(context.Background(), 100)
	c, err := s.store.Conversation(context.Background(), conv)
	if len(convs) != 1 || err != nil || c.Temperature != nil {
		t.Fatalf("forged requests changed the history: %d conversations, %+v, %v", len(convs), c, err)
	}
}

// TestAPIRequiresJSON checks that API POSTs must declare a JSON body. A page on another site may send
// text/plain, form and multipart bodies without a CORS preflight, so those must not start a generation.
func TestAPIRequiresJSON(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	endpoints := []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"q"}]}`},
		{"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"q"}]}`},
		{"/v1/completions", `{"prompt":"q"}`},
	}
	types := []struct {
		contentType string
		ok          bool
	}{
		{"", false},
		{"text/plain", false},
		{"text/plain; charset=utf-8", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"application/jsonp", false},
		{"text/json", false},
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON ; Charset=UTF-8", true},
	}
	want := 0
	for _, ep := range endpoints {
		for _, ct := range types {
			body := ep.body
			if strings.HasPrefix(ct.contentType, "multipart/") {
				// fasthttp parses a multipart body before any handler runs: make it a valid one.
				body = "--x\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n" + body + "\r\n--x--\r\n"
			}
			resp := postJSON(t, base+ep.path, body, "Content-Type", ct.contentType)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct.ok {
				want++
				if resp.StatusCode != 200 {
					t.Errorf("%s with %q: status %d: %.160s", ep.path, ct.contentType, resp.StatusCode, b)
				}
				continue
			}
			var e struct{ Error *apiError }
			if resp.StatusCode != 415 || json.Unmarshal(b, &e) != nil || e.Error == nil ||
				!strings.Contains(e.Error.Message, "Content-Type: application/json") {
				t.Errorf("%s with %q: status %d, body %.200s; want a 415 naming Content-Type: application/json",
					ep.path, ct.contentType, resp.StatusCode, b)
			}
		}
	}
	if n := int(f.calls.Load()); n != want {
		t.Errorf("the model ran %d generations, want %d (the accepted requests only)", n, want)
	}
}

// TestAPIKeyOnEveryEndpoint checks that --api-key guards every /v1 endpoint, streamed or not, and that
// near misses (another key of the same length, a prefix, the key with a suffix, the wrong scheme) fail.
func TestAPIKeyOnEveryEndpoint(t *testing.T) {
	const key = "sk-smolchat-0123456789"
	_, base := startServer(t, newFake(), Config{APIKey: key})
	endpoints := []struct{ method, path, body string }{
		{"GET", "/v1/models", ""},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"q"}]}`},
		{"POST", "/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"q"}]}`},
		{"POST", "/v1/completions", `{"prompt":"q"}`},
		{"POST", "/v1/embeddings", `{}`},
	}
	auths := []struct {
		name, header string
		ok           bool
	}{
		{"none", "", false},
		{"empty bearer", "Bearer ", false},
		{"same length, wrong", "Bearer sk-smolchat-0123456788", false},
		{"prefix", "Bearer sk-smolchat-012345678", false},
		{"with a suffix", "Bearer " + key + "0", false},
		{"lowercase scheme", "bearer " + key, false},
		{"basic scheme", "Basic " + key, false},
		{"right", "Bearer " + key, true},
	}
	for _, ep := range endpoints {
		for _, a := range auths {
			req, _ := http.NewRequest(ep.method, base+ep.path, strings.NewReader(ep.body))
			req.Header.Set("Content-Type", "application/json")
			if a.header != "" {
				req.Header.Set("Authorization", a.header)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.StatusCode != 401; got != a.ok {
				t.Errorf("%s %s with %s: status %d: %.120s", ep.method, ep.path, a.name, resp.StatusCode, b)
			}
			if !a.ok && (resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(string(b), `"invalid_api_key"`)) {
				t.Errorf("%s %s with %s: 401 without WWW-Authenticate or error code: %s", ep.method, ep.path, a.name, b)
			}
		}
	}
}

// TestCORSOnlyWhenConfigured: without --cors-origin no response carries CORS headers, preflights
// included; with it, only the configured origin is allowed, only on the API and /health, and the
// chat page never is.
func TestCORSOnlyWhenConfigured(t *testing.T) {
	_, plain := startServer(t, newFake(), Config{})
	_, withCORS := startServer(t, newFake(), Config{CORSOrigin: "http://app.example"})
	do := func(method, url, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Origin", origin)
		if method == "OPTIONS" {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name, method, url, origin string
		allowed                   bool
	}{
		{"no config: preflight", "OPTIONS", plain + "/v1/chat/completions", "http://app.example", false},
		{"no config: GET", "GET", plain + "/v1/models", "http://app.example", false},
		{"no config: health", "GET", plain + "/health", "http://app.example", false},
		{"configured: preflight", "OPTIONS", withCORS + "/v1/chat/completions", "http://app.example", true},
		{"configured: GET", "GET", withCORS + "/v1/models", "http://app.example", true},
		{"configured: other origin", "GET", withCORS + "/v1/models", "http://evil.example", false},
		{"configured: other origin preflight", "OPTIONS", withCORS + "/v1/chat/completions", "http://evil.example", false},
		{"configured: the page", "GET", withCORS + "/", "http://app.example", false},
		{"configured: page preflight", "OPTIONS", withCORS + "/chat", "http://app.example", false},
	}
	for _, tt := range tests {
		resp := do(tt.method, tt.url, tt.origin)
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if allowed := got == tt.origin || got == "*"; allowed != tt.allowed {
			t.Errorf("%s: Access-Control-Allow-Origin %q (status %d), want allowed = %v", tt.name, got, resp.StatusCode, tt.allowed)
		}
		if !tt.allowed && got != "" {
			t.Errorf("%s: CORS header %q where none is wanted", tt.name, got)
		}
	}
}

// TestCSPOnEveryResponse checks the Content-Security-Policy on every kind of response: pages, error
// pages, fragments, API JSON, event streams and assets. It allows scripts from the server's own files
// only: no inline script, no eval.
func TestCSPOnEveryResponse(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	b := newBrowser(t, base)
	_, sid, _ := b.send("", "hi", false)
	paths := []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/c/nope", ""},
		{"GET", "/status", ""},
		{"GET", "/health", ""},
		{"GET", "/assets/app.js", ""},
		{"GET", "/stream/" + sid, ""},
		{"GET", "/v1/models", ""},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"q"}]}`},
		{"POST", "/v1/chat/completions", `{`},
		{"POST", "/chat", "content=x"},
		{"POST", "/attach", ""},
		{"GET", "/assets/vendor/katex/katex.min.js", ""},
		{"GET", "/assets/vendor/katex/fonts/KaTeX_Main-Regular.woff2", ""},
	}
	for _, p := range paths {
		req, _ := http.NewRequest(p.method, base+p.path, strings.NewReader(p.body))
		if strings.HasPrefix(p.path, "/v1/") {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		script := ""
		for d := range strings.SplitSeq(csp, ";") {
			if d = strings.TrimSpace(d); strings.HasPrefix(d, "script-src ") {
				script = d
			}
		}
		if script != "script-src 'self'" || !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s (status %d): CSP %q, nosniff %q", p.method, p.path, resp.StatusCode, csp, resp.Header.Get("X-Content-Type-Options"))
		}
	}
}
