package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserSignIn signs in to a server with an API key in headless Chromium. Signed out, a link to a
// conversation shows the sign-in page and nothing of the history; a wrong key is refused with a message,
// no sooner than the configured delay; the right key goes on to the conversation asked for, where a
// message is sent and answered; signing out returns to the sign-in page, and the old cookie no longer
// works.
func TestBrowserSignIn(t *testing.T) {
	const delay = 300 * time.Millisecond
	f := newFake()
	_, base := startServer(t, f, Config{APIKey: testKey, signInDelay: delay})
	// A conversation made through the API, whose title must not show before signing in.
	const title = "Confidential roadmap"
	api := signIn(t, base, testKey)
	conv, sid, _ := api.send("", title, false)
	api.stream(sid, nil)

	b := startBrowser(t)
	b.do("open a conversation signed out", chromedp.Navigate(base+"/c/"+conv), chromedp.WaitVisible("#key"))
	if path := eval[string](b, `location.pathname`); path != "/signin" {
		t.Fatalf("signed out, the browser is at %s, not /signin", path)
	}
	if html := eval[string](b, `document.documentElement.outerHTML`); strings.Contains(html, title) ||
		strings.Contains(html, "conversation-list") {
		t.Fatalf("the sign-in page shows the history:\n%.2000s", html)
	}

	start := time.Now()
	b.do("sign in with a wrong key", chromedp.SendKeys("#key", "not-the-key"), chromedp.Click("#signin-submit"),
		chromedp.WaitVisible("#signin-error"))
	took := time.Since(start)
	t.Logf("a wrong key was answered after %v (delay %v)", took, delay)
	if took < delay {
		t.Errorf("a wrong key was answered after %v, before the delay of %v", took, delay)
	}
	if msg := eval[string](b, `document.querySelector("#signin-error").textContent`); !strings.Contains(msg, "Wrong key") {
		t.Errorf("refusal message %q", msg)
	}

	b.do("sign in with the key", chromedp.SendKeys("#key", testKey), chromedp.Click("#signin-submit"),
		chromedp.WaitVisible("#prompt"))
	if path := eval[string](b, `location.pathname`); path != "/c/"+conv {
		t.Errorf("after signing in the browser is at %s, not at the conversation it asked for", path)
	}
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie %+v, want HttpOnly and SameSite=Strict", session)
	}
	b.send("Hello after signing in")
	b.wait("the answer", `(document.querySelector("#messages > article.msg.assistant:last-of-type:not(.streaming) .content")?.textContent || "").includes("Hello#7")`, 15*time.Second)

	b.do("sign out", chromedp.Click("#signout"), chromedp.WaitVisible("#key"))
	if html := eval[string](b, `document.documentElement.outerHTML`); strings.Contains(html, title) {
		t.Fatal("the page after signing out shows the history")
	}
	if resp := send(t, httpClient, withCookie(base+"/c/"+conv, &http.Cookie{Name: sessionCookie, Value: session.Value})); resp.StatusCode != 401 {
		t.Fatalf("the cookie of the signed-out session: status %d, want 401", resp.StatusCode)
	}
	// The 401 of the wrong key is logged as a failed load; anything else (a CSP violation) is an error.
	for _, e := range b.errs.take() {
		if !strings.Contains(e, "status of 401") {
			t.Errorf("the page reported: %s", e)
		}
	}
}
