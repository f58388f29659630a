package server

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"smolchat/engine"
	"smolchat/internal/testutil"
	"smolchat/server/store"
)

// chromeTab is a headless Chromium tab for a test, closed when the test ends.
type chromeTab struct {
	t     *testing.T
	ctx   context.Context
	errs  pageErrors
	shots string // where screenshots go; "" unless SMOLCHAT_SCREENSHOTS=1
}

// startBrowser opens a tab, or skips t when no Chromium is installed.
func startBrowser(t *testing.T) *chromeTab {
	t.Helper()
	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping: no Chromium found (install chromium or set SMOLCHAT_CHROMIUM)")
	}
	alloc, cancelAlloc := chromiumAllocator(t, chromium)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &chromeTab{t: t, ctx: ctx}
	if err := b.errs.listen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b.do("desktop viewport", chromedp.EmulateViewport(1280, 800))
	if os.Getenv("SMOLCHAT_SCREENSHOTS") == "1" {
		b.shots = filepath.Join(testutil.RepoRoot(), "docs", "screenshots")
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// do runs actions, failing the test after 15 s.
func (b *chromeTab) do(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", name, err)
	}
}

// wait polls a JavaScript condition until it holds, failing the test after limit. A poll cut short by
// a navigation (the page it ran in is gone) starts again in the new page.
func (b *chromeTab) wait(name, expr string, limit time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond)))
		if err == nil {
			return
		}
		navigated := strings.Contains(err.Error(), "Cannot find context with specified id") ||
			strings.Contains(err.Error(), "Inspected target navigated or closed")
		if ctx.Err() != nil || !navigated {
			b.t.Fatalf("waiting for %s: %v\nthe page's messages end with:\n%s", name, err, b.messagesTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messagesTail is the end of the conversation's HTML and the page's notices, to show what the page
// holds when a wait fails.
func (b *chromeTab) messagesTail() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#messages")?.innerHTML || "(no #messages)").slice(-1500) +
		"\nnotices: " + [...document.querySelectorAll(".notice")].map((n) => n.textContent).join(" / ")`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return html
}

// eval evaluates a JavaScript expression.
func eval[T any](b *chromeTab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// send types a message and presses Enter.
func (b *chromeTab) send(text string) {
	b.t.Helper()
	b.do("send "+text, chromedp.WaitVisible("#prompt"), chromedp.SendKeys("#prompt", text), chromedp.SendKeys("#prompt", kb.Enter))
}

// noErrors fails the test if the page reported errors since the last call.
func (b *chromeTab) noErrors(when string) {
	b.t.Helper()
	if e := b.errs.take(); len(e) > 0 {
		b.t.Fatalf("%s: the page reported errors:\n%s", when, strings.Join(e, "\n"))
	}
}

// scheme emulates prefers-color-scheme.
func scheme(s string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, _ *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}}})
		return chromedp.Void{}, err
	}
}

// shot saves the viewport as docs/screenshots/name when screenshots are on.
func (b *chromeTab) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	b.do("settle before "+name, chromedp.Sleep(250*time.Millisecond))
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote docs/screenshots/%s", name)
}

// normalizeSpace normalizes white space, to compare rendered text with the model's.
func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// statsRE is the line under a finished answer of more than one token.
var statsRE = regexp.MustCompile(`^(\d+) tokens · (\d+\.\d) tok/s · \d+(\.\d+)? m?s to first token$`)

// TestStatsLine checks the line under an answer, which the end-to-end test reads back.
func TestStatsLine(t *testing.T) {
	for _, tc := range []struct {
		msg  store.Message
		want string
	}{
		{store.Message{}, ""},
		{store.Message{Tokens: 1, TTFT: 111 * time.Millisecond}, "1 token · 111 ms to first token"},
		{store.Message{Tokens: 240, TokensPerSec: 61.84, TTFT: 1500 * time.Millisecond}, "240 tokens · 61.8 tok/s · 1.50 s to first token"},
	} {
		got := statsText(tc.msg)
		if got != tc.want {
			t.Errorf("statsText(%+v) = %q, want %q", tc.msg, got, tc.want)
		}
		if tc.msg.Tokens > 1 && !statsRE.MatchString(got) {
			t.Errorf("%q does not match the end-to-end test's pattern", got)
		}
	}
}

// TestE2EBrowser drives the chat page in headless Chromium on the real engine (CPU backend). With
// stories260K: the page opens while the model loads and turns ready without a reload; an answer streams
// in token by token and ends with its stats; Stop keeps the partial answer; the history survives a
// reload. With SMOLCHAT_SCREENSHOTS=1 it saves the screenshots of docs/screenshots but the reasoning
// ones, which TestE2EBrowserThinking takes.
func TestE2EBrowser(t *testing.T) {
	storiesPath := testutil.SharedFile(t, "stories260K.gguf")
	b := startBrowser(t)
	const storiesCtx = 256 // stories260K never ends a story by itself: it writes until the context is full

	// The page is up while the model loads, and the badge turns ready when it is. The loader is held at
	// its first progress report so that the page can show it; the file is opened by its base name so the
	// report names no directory of this machine.
	srv, base := startServer(t, nil, Config{})
	t.Chdir(filepath.Dir(storiesPath))
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	resume := func() { releaseOnce.Do(func() { close(release) }) }
	var loaded *engine.Engine
	var loadErr error
	go func() {
		defer close(done)
		first := true
		loaded, loadErr = engine.Load(context.Background(), engine.LoadOptions{Path: filepath.Base(storiesPath),
			Backend: "cpu", Context: storiesCtx, Progress: func(frac float64, msg string) {
				srv.SetLoadProgress(frac, msg)
				if first {
					first = false
					close(held)
					<-release
				}
			}})
	}()
	t.Cleanup(func() {
		resume()
		<-done
		if loaded != nil {
			loaded.Close()
		}
	})
	<-held
	b.do("open the page while loading", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible(".model-status.loading"))
	b.wait("the loader's progress", `(document.querySelector(".model-status .backend")?.textContent || "").includes("stories260K.gguf")`, 5*time.Second)
	b.shot("loading-light.png")
	resume()
	<-done
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	stories := newRecorder(loaded)
	srv.SetGenerator(stories)
	b.wait("the ready badge", `document.querySelector(".model-status.ready .model-name")?.textContent === "stories260K"`, 5*time.Second)
	if got := eval[string](b, `document.querySelector(".model-status .backend").textContent`); !strings.HasPrefix(got, "CPU · ") {
		t.Errorf("backend badge = %q, want the CPU", got)
	}
	if got := eval[string](b, `document.querySelector("#prompt").placeholder + " | " + document.querySelector("#empty-state-model").textContent`); got != "Message stories260K… | stories260K" {
		t.Errorf("once the model is ready, the composer and the empty state say %q", got)
	}
	if eval[bool](b, `!!document.querySelector("#think[role=switch]")`) {
		t.Error("the thinking toggle is still there for stories260K, which has no reasoning mode")
	}
	b.shot("new-chat-light.png")

	// Greedy decoding, so that the story is the same on every run.
	b.send("/temp 0")
	b.wait("the temperature notice", `(document.querySelector(".notice")?.textContent || "").includes("Temperature set to 0")`, 5*time.Second)

	// The answer streams in: a mutation observer records the answer's length at every change.
	b.do("watch the stream", chromedp.Evaluate[chromedp.Void](`window.lengths = [];
		new MutationObserver(() => {
			const c = document.querySelector(".msg.streaming .content");
			if (c) window.lengths.push(c.textContent.length);
		}).observe(document.querySelector("#messages"), {childList: true, subtree: true, characterData: true})`))
	start := time.Now()
	b.send("Once upon a time")
	b.wait("the user message", `document.querySelector(".msg.user .bubble")?.textContent === "Once upon a time"`, 5*time.Second)
	b.wait("the finished answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 20*time.Second)
	t.Logf("first answer in %v", time.Since(start).Round(time.Millisecond))
	req, res := stories.last(t)
	if req.Params.Temperature != 0 || len(req.Messages) != 1 {
		t.Fatalf("request reaching the engine: %+v", req)
	}
	lengths := eval[[]int](b, `window.lengths`)
	grew := 0
	for i := 1; i < len(lengths); i++ {
		if lengths[i] > lengths[i-1] {
			grew++
		}
	}
	if grew < 10 {
		t.Errorf("the answer grew %d times while streaming (lengths %v); want it token by token", grew, lengths)
	}
	answer := eval[string](b, `document.querySelector(".msg.assistant .content").textContent`)
	if normalizeSpace(answer) != normalizeSpace(res.Answer) || !strings.HasPrefix(res.Answer, ", there was a little girl named Lily.") {
		t.Errorf("the page shows %q; the engine generated %q", answer, res.Answer)
	}
	stats := eval[string](b, `document.querySelector(".msg.assistant .stats").textContent`)
	m := statsRE.FindStringSubmatch(stats)
	if m == nil || m[1] != strconv.Itoa(len(res.Tokens)) {
		t.Errorf("stats line = %q; the engine generated %d tokens", stats, len(res.Tokens))
	}
	if res.FinishReason != engine.FinishLength || len(res.PromptTokens)+len(res.Tokens) < storiesCtx-1 {
		t.Errorf("finish %s after %d+%d tokens; want the %d-token context filled", res.FinishReason, len(res.PromptTokens), len(res.Tokens), storiesCtx)
	}
	if note := eval[string](b, `document.querySelector(".msg.assistant .note")?.textContent || ""`); !strings.HasPrefix(note, "Cut off: the context window is full") {
		t.Errorf("note under a context-filling answer = %q", note)
	}
	meter := eval[[]int](b, `[+document.querySelector("#context-meter meter").value, +document.querySelector("#context-meter meter").max]`)
	if meter[0] != len(res.PromptTokens)+len(res.Tokens) || meter[1] != storiesCtx {
		t.Errorf("context meter = %v, want [%d %d]", meter, len(res.PromptTokens)+len(res.Tokens), storiesCtx)
	}
	b.noErrors("first answer")
	firstURL := eval[string](b, `location.pathname`)

	// Stop a long answer: what was generated stays. The stream is slowed to 20 ms a token so that the
	// click lands well before the context fills.
	stories.setPace(20 * time.Millisecond)
	b.do("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.send("Tom and his dog")
	b.wait("a few streamed words", `(document.querySelector(".msg.streaming .content")?.textContent || "").split(" ").length > 12`, 10*time.Second)
	b.shot("streaming-light.png")
	b.do("press Stop", chromedp.Click("#stop"))
	b.wait("the stopped answer", `(document.querySelector(".msg.assistant:not(.streaming) .note")?.textContent || "") === "Stopped."`, 10*time.Second)
	stories.setPace(0)
	_, res = stories.last(t)
	partial := eval[string](b, `document.querySelector(".msg.assistant .content").textContent`)
	if res.FinishReason != engine.FinishCancelled || len(res.Tokens) == 0 || len(res.PromptTokens)+len(res.Tokens) >= storiesCtx-1 {
		t.Errorf("after Stop the engine finished with %q after %d tokens; want cancelled part way", res.FinishReason, len(res.Tokens))
	}
	if normalizeSpace(partial) == "" || normalizeSpace(partial) != normalizeSpace(res.Answer) {
		t.Errorf("after Stop the page shows %q; the engine had generated %q", partial, res.Answer)
	}
	b.do("Send is back", chromedp.WaitVisible("#send"), chromedp.WaitNotVisible("#stop"))
	b.do("reload the stopped chat", chromedp.Reload(), chromedp.WaitVisible("#prompt"))
	b.wait("the stopped answer after reload", `(document.querySelector(".msg.assistant .note")?.textContent || "") === "Stopped."`, 5*time.Second)
	if got := eval[string](b, `document.querySelector(".msg.assistant .content").textContent`); normalizeSpace(got) != normalizeSpace(partial) {
		t.Errorf("after reload the stopped answer is %q, before it was %q", got, partial)
	}

	// The history: both chats are in the sidebar, and the first opens with its answer.
	b.do("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	titles := eval[[]string](b, `[...document.querySelectorAll("#conversation-list li a")].map(a => a.textContent.trim())`)
	if strings.Join(titles, "|") != "Tom and his dog|Once upon a time" {
		t.Fatalf("sidebar = %q", titles)
	}
	b.do("open the first chat", chromedp.Click(`#conversation-list li:last-child a`))
	b.wait("the first chat", `location.pathname === "`+firstURL+`" && document.querySelectorAll("#messages .msg").length === 2`, 5*time.Second)
	if got := eval[string](b, `document.querySelector(".msg.assistant .content").textContent`); normalizeSpace(got) != normalizeSpace(answer) {
		t.Errorf("the first answer from history = %q, it was %q", got, answer)
	}
	b.noErrors("stop and history")
	if b.shots != "" {
		b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`document.querySelector("#scroller").scrollTop = 0`))
		b.do("light", scheme("light"))
		b.shot("chat-light.png")
		b.do("dark", scheme("dark"))
		b.shot("chat-dark.png")
		b.do("phone width", scheme("light"), chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		b.shot("phone-light.png")
		b.do("phone sidebar", chromedp.Click("#open-sidebar"), chromedp.Sleep(300*time.Millisecond))
		b.shot("phone-sidebar.png")
	}
}

// TestE2EBrowserThinking checks the thinking toggle in Chromium on the real engine with the synthesized
// SmolLM3-architecture model: thinking on renders the long reasoning system prompt and off the empty
// <think></think> block. The context meter, updated when a message is sent, shows the prompt's length,
// and the engine's request says the same. With SMOLCHAT_SCREENSHOTS=1 it saves the reasoning block.
func TestE2EBrowserThinking(t *testing.T) {
	const synthCtx = 1024
	synthRec := newRecorder(synthEngine(t, synthCtx))
	b := startBrowser(t)
	_, synthBase := startServer(t, synthRec, Config{})
	promptLen := map[bool]int{}
	for _, think := range []bool{true, false} {
		b.do("new chat on the SmolLM3-architecture model", chromedp.Navigate(synthBase), chromedp.WaitVisible("#prompt"))
		if eval[bool](b, `document.querySelector("#think").checked`) != think {
			b.do("toggle thinking", chromedp.Click(".switch"))
			b.wait("the toggle", `document.querySelector("#think").checked === `+strconv.FormatBool(think), 5*time.Second)
		}
		b.send("/temp 0")
		b.wait("the temperature notice", `(document.querySelector(".notice")?.textContent || "").includes("Temperature set to 0")`, 5*time.Second)
		n := synthRec.count()
		b.send("Hi there")
		b.wait("the prompt's meter", `+document.querySelector("#context-meter meter").value > 0`, 5*time.Second)
		promptLen[think] = eval[int](b, `+document.querySelector("#context-meter meter").value`)
		// The answer does not matter here: stop it once it has begun, unless it has ended already.
		b.wait("the answer to begin", `!document.querySelector(".msg.streaming") || (document.querySelector(".msg.streaming .content")?.textContent || "").length > 0`, 20*time.Second)
		b.do("press Stop", chromedp.Evaluate[chromedp.Void](`document.querySelector("#stop:not([hidden])")?.click()`))
		b.wait("the answer's end", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
		if synthRec.count() != n+1 {
			t.Fatalf("thinking %v: %d generations ran, want 1", think, synthRec.count()-n)
		}
		req, res := synthRec.last(t)
		if req.Think == nil || *req.Think != think {
			t.Errorf("thinking %v: Think reaching the engine = %s", think, ptrStr(req.Think))
		}
		if len(res.PromptTokens) != promptLen[think] {
			t.Errorf("thinking %v: the meter shows %d prompt tokens, the engine read %d", think, promptLen[think], len(res.PromptTokens))
		}
	}
	t.Logf("prompt tokens with thinking on/off: %d/%d", promptLen[true], promptLen[false])
	if promptLen[true] == promptLen[false] {
		t.Errorf("thinking on and off give the same %d-token prompt", promptLen[true])
	}
	b.noErrors("thinking toggle")

	if b.shots != "" {
		// A reasoning block from the real engine: the synthesized model never opens one by itself, so
		// the recorder forces it as a reasoning budget would (see forcedReasoning). The text is the
		// random-weight model's own gibberish.
		synthRec.setReason(48)
		b.do("new chat", chromedp.Navigate(synthBase), chromedp.WaitVisible("#prompt"), scheme("light"))
		if !eval[bool](b, `document.querySelector("#think").checked`) {
			b.do("thinking on", chromedp.Click(".switch"))
			b.wait("the toggle", `document.querySelector("#think").checked`, 5*time.Second)
		}
		b.send("Why is the sea salty?")
		b.wait("the reasoning answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant details.thinking")`, 30*time.Second)
		synthRec.setReason(0)
		b.do("open the reasoning", chromedp.Click(".msg.assistant details.thinking summary"),
			chromedp.Evaluate[chromedp.Void](`document.querySelector("#scroller").scrollTop = 0`))
		b.shot("thinking-light.png")
		b.do("dark", scheme("dark"))
		b.shot("thinking-dark.png")
		b.noErrors("screenshots")
	}
}
