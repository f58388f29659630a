package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestServerUnreachableInBrowser stops the server under an open page: a send turns the status pill red
// with one notice; when a server answers on the same address again, both go without a reload.
func TestServerUnreachableInBrowser(t *testing.T) {
	b := startBrowser(t)
	dir := t.TempDir()
	first, base := startServer(t, newFake(), Config{DataDir: dir})
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.send("first")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	const lost = `document.querySelector("#model-status").classList.contains("unreachable") &&
		[...document.querySelectorAll(".notice")].filter(n => n.textContent.includes("Cannot reach smolchat")).length`
	b.send("while the server is away")
	b.wait("the red pill and its notice", lost+` === 1`, 10*time.Second)

	ln, err := net.Listen("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("listening again on the page's address: %v", err)
	}
	second, err := New(Config{DataDir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, newFake())
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, second, ln)
	b.wait("the pill and the notice back to normal", `!(`+lost+`) && !document.querySelector(".notice")`, 15*time.Second)
	b.errs.take() // the browser logs the request that could not connect
}

// TestThemeSwitchInBrowser: the page follows the system's light or dark until the sidebar's switch
// chooses one, which survives a reload; "System" follows the system again.
func TestThemeSwitchInBrowser(t *testing.T) {
	b := startBrowser(t)
	_, base := startServer(t, newFake(), Config{})
	const state = `document.documentElement.dataset.theme + " " + document.querySelector("#theme-switch").textContent + " " +
		getComputedStyle(document.body).backgroundColor`
	const (
		light = "rgb(255, 255, 255)"
		dark  = "rgb(23, 23, 22)"
	)
	type act = chromedp.Action[chromedp.Void]
	steps := []struct {
		name    string
		actions []act
		want    string
	}{
		{"system light", []act{chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt")}, "light Theme: System " + light},
		{"system turns dark", []act{scheme("dark")}, "dark Theme: System " + dark},
		{"choose light", []act{chromedp.Click("#theme-switch")}, "light Theme: Light " + light},
		{"reload keeps it", []act{chromedp.Reload(), chromedp.WaitVisible("#prompt")}, "light Theme: Light " + light},
		{"choose dark", []act{scheme("light"), chromedp.Click("#theme-switch")}, "dark Theme: Dark " + dark},
		{"back to system", []act{chromedp.Click("#theme-switch")}, "light Theme: System " + light},
	}
	for _, st := range steps {
		b.do(st.name, st.actions...)
		b.wait(st.name, state+` === "`+st.want+`"`, 5*time.Second)
	}
	b.noErrors("after switching themes")
}
