package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// findChromium returns a Chromium or Chrome binary: $SMOLCHAT_CHROMIUM, else one on the PATH.
func findChromium() string {
	if p := os.Getenv("SMOLCHAT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromiumAllocator starts headless Chromium with a fresh profile, quiet (no first-run, sync, update or
// background traffic), with extra options added.
func chromiumAllocator(t *testing.T, chromium string, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
	}, extra...)
	return chromedp.NewExecAllocator(context.Background(), opts...)
}

// pageErrors collects what the page complains about: script exceptions, console errors and CSP
// violations (which Chromium logs as errors).
type pageErrors struct {
	mu   sync.Mutex
	list []string
}

func (p *pageErrors) listen(ctx context.Context) error {
	return chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args { // a value as JSON, or an object's description
					args = append(args, string(a.Value)+a.Description)
				}
				msg = "console.error: " + strings.Join(args, " ")
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				msg = fmt.Sprintf("log %s: %s (%s)", e.Entry.Source, e.Entry.Text, e.Entry.URL)
			}
		}
		if msg != "" {
			p.mu.Lock()
			p.list = append(p.list, msg)
			p.mu.Unlock()
		}
	})
}

func (p *pageErrors) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.list
	p.list = nil
	return out
}

// TestBrowser drives the chat page in headless Chromium: send with Enter, see the user message at once
// and the answer stream in, stop it, toggle thinking and see the engine request change, reload and find
// the history. It runs on the test double; TestE2EBrowser does the same on the real engine and takes the
// screenshots in docs/screenshots.
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping: no Chromium found (install chromium or set SMOLCHAT_CHROMIUM)")
	}
	f := newFake()
	f.delay = 25 * time.Millisecond
	f.answerWords = 60
	_, base := startServer(t, f, Config{})

	alloc, cancelAlloc := chromiumAllocator(t, chromium, chromedp.WindowSize(1280, 860))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	var errs pageErrors
	if err := errs.listen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.NodeReady))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	waitJS := func(name, expr string) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
		defer scancel()
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
	}

	// Send with Enter: the user's message shows at once, the answer streams in.
	step("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	step("type and press Enter", chromedp.SendKeys("#prompt", "Hello browser"), chromedp.SendKeys("#prompt", kb.Enter))
	waitJS("the user message", `document.querySelector(".msg.user .bubble")?.textContent === "Hello browser"`)
	waitJS("streamed answer text", `(document.querySelector(".msg.streaming .content")?.textContent || "").includes("Hello#2")`)
	if v := text("#prompt"); v != "" {
		t.Errorf("the composer still holds %q after sending", v)
	}
	if r := f.lastRequest(); r.Think == nil || !*r.Think {
		t.Fatalf("first request: Think = %s, want true (the default)", ptrStr(r.Think))
	}
	// Thinking streamed first and folded away when the answer began.
	waitJS("reasoning folded", `document.querySelector(".msg.streaming details.thinking")?.open === false`)

	// Stop keeps what was generated.
	step("press Stop", chromedp.WaitVisible("#stop"), chromedp.Click("#stop"))
	waitJS("stopped answer", `(document.querySelector(".msg.assistant:not(.streaming) .note")?.textContent || "") === "Stopped."`)
	partial := text(".msg.assistant .content")
	if !strings.Contains(partial, "You said: Hello browser") || strings.Contains(partial, "Hello#59") {
		t.Fatalf("answer after Stop = %q; want the part generated before it", partial)
	}
	step("Send is back", chromedp.WaitVisible("#send"), chromedp.WaitNotVisible("#stop"))

	// Thinking off: the next request says so.
	step("toggle thinking off", chromedp.Click(".switch"))
	waitJS("toggle unchecked", `!document.querySelector("#think").checked`)
	step("send again", chromedp.SendKeys("#prompt", "Second turn"), chromedp.SendKeys("#prompt", kb.Enter))
	waitJS("second answer done", `document.querySelectorAll(".msg.assistant:not(.streaming)").length === 2 && !document.querySelector(".msg.streaming")`)
	if r := f.lastRequest(); r.Think == nil || *r.Think {
		t.Fatalf("after turning thinking off: Think = %s, want false", ptrStr(r.Think))
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".msg:last-of-type details.thinking").length`)); err != nil || n != 0 {
		t.Fatalf("an answer without thinking shows a reasoning block (%d, %v)", n, err)
	}
	answer := text("#messages > article.msg.assistant:last-of-type .content")
	if !strings.Contains(answer, "Second#59") {
		t.Fatalf("second answer = %q", answer)
	}

	// Reload: the conversation and its settings come back from the database.
	step("reload", chromedp.Reload(), chromedp.WaitVisible("#prompt"))
	waitJS("history after reload", `document.querySelectorAll("#messages .msg").length === 4`)
	if title := text("#conversation-list li.current a"); title != "Hello browser" {
		t.Fatalf("sidebar entry = %q", title)
	}
	if checked, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#think").checked`)); checked {
		t.Fatal("the thinking toggle was not remembered for the conversation")
	}
	if !strings.Contains(text("#messages"), "Second#59") {
		t.Fatal("the second answer is missing after reload")
	}
	waitJS("regenerate offered on the last answer only",
		`[...document.querySelectorAll(".msg.assistant .regen")].filter(b => b.offsetParent !== null).length === 1`)

	// A slash command answers on the page without reaching the model.
	before := f.requestCount()
	step("/help", chromedp.SendKeys("#prompt", "/help"), chromedp.SendKeys("#prompt", kb.Enter))
	waitJS("help notice", `(document.querySelector(".notice.help")?.textContent || "").includes("/no_think")`)
	if f.requestCount() != before {
		t.Fatal("/help reached the model")
	}
	if e := errs.take(); len(e) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(e, "\n"))
	}

}
