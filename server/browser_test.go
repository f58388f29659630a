package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"smolchat/internal/testutil"
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
				msg = fmt.Sprintf("console.error: %v", e.Args)
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
// the history. With SMOLCHAT_SCREENSHOTS=1 it also saves screenshots to docs/screenshots.
//
// It runs on the test double; the real model is one line away (server.New(cfg, engine)).
func TestBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping: no Chromium found (install chromium or set SMOLCHAT_CHROMIUM)")
	}
	f := newFake()
	f.delay = 25 * time.Millisecond
	f.answerWords = 60
	_, base := startServer(t, f, Config{})

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
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
		chromedp.WindowSize(1280, 860),
	)
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

	if os.Getenv("SMOLCHAT_SCREENSHOTS") == "1" {
		screenshots(t, ctx, f, base, step, waitJS)
		if e := errs.take(); len(e) > 0 {
			t.Fatalf("the page reported errors:\n%s", strings.Join(e, "\n"))
		}
	}
}

const screenshotQuestion = "How do I reverse a string in Go?"

const screenshotReasoning = `The user wants to reverse a string in Go. Strings are UTF-8 byte sequences, so reversing bytes would break multi-byte characters. The safe way is to convert to a slice of runes, swap from both ends, and convert back. I should show a short function, mention the rune conversion, and note that combining characters are a limit of this approach.`

const screenshotAnswer = "Reverse the **runes**, not the bytes — Go strings are UTF-8, so a byte-wise reverse would break characters like `é` or `ß`.\n\n" +
	"```go\nfunc Reverse(s string) string {\n\tr := []rune(s)\n\tfor i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {\n\t\tr[i], r[j] = r[j], r[i]\n\t}\n\treturn string(r)\n}\n```\n\n" +
	"How it works:\n\n" +
	"1. `[]rune(s)` decodes the string into Unicode code points.\n" +
	"2. Two indexes walk in from both ends and swap.\n" +
	"3. `string(r)` encodes the runes back to UTF-8.\n\n" +
	"> Combined characters (a letter plus an accent mark) are two runes, so they come out reversed too. For those, use a grapheme library such as `github.com/rivo/uniseg`."

// screenshots saves the page in light and dark, with the reasoning open, and at phone width.
func screenshots(t *testing.T, ctx context.Context, f *fakeGen, base string,
	step func(string, ...chromedp.Action[chromedp.Void]), waitJS func(string, string)) {
	dir := filepath.Join(testutil.RepoRoot(), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/screenshots/%s", name)
	}
	scheme := func(s string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}}})
			return chromedp.Void{}, err
		}
	}

	f.script(screenshotReasoning, screenshotAnswer)
	defer f.script("", "")
	step("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"), scheme("light"))
	step("thinking on", chromedp.Click(".switch"))
	waitJS("toggle checked", `document.querySelector("#think").checked`)
	shot("new-chat-light.png")
	step("ask", chromedp.SendKeys("#prompt", screenshotQuestion), chromedp.SendKeys("#prompt", kb.Enter))
	waitJS("reasoning streaming", `(document.querySelector(".msg.streaming .thinking-body")?.textContent || "").split(" ").length > 30`)
	shot("streaming-light.png")
	waitJS("scripted answer done", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant pre.chroma")`)
	step("scroll to top", chromedp.Evaluate[chromedp.Void](`document.querySelector("#scroller").scrollTop = 0`))
	step("light", scheme("light"), chromedp.Sleep(200*time.Millisecond))
	shot("chat-light.png")
	step("dark", scheme("dark"), chromedp.Sleep(200*time.Millisecond))
	shot("chat-dark.png")
	step("open the reasoning", chromedp.Click(".msg.assistant details.thinking summary"), chromedp.Sleep(200*time.Millisecond))
	shot("thinking-dark.png")
	step("light again", scheme("light"), chromedp.Sleep(200*time.Millisecond))
	shot("thinking-light.png")
	step("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Sleep(300*time.Millisecond))
	shot("phone-light.png")
	step("phone sidebar", chromedp.Click("#open-sidebar"), chromedp.Sleep(400*time.Millisecond))
	shot("phone-sidebar.png")

	// First start: the page is up while the model loads.
	loading, loadingBase := startServer(t, nil, Config{})
	loading.SetLoadProgress(0.37, "uploading weights to the GPU (121/326 tensors)")
	step("loading page", chromedp.EmulateViewport(1280, 720), chromedp.Navigate(loadingBase), chromedp.WaitVisible(".model-status.loading"),
		chromedp.Sleep(200*time.Millisecond))
	shot("loading-light.png")
}
