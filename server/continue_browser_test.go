package server

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"smolchat/engine"
)

// TestBrowserContinue drives "Continue" in Chromium on the test double: with a limit of 3 answer tokens
// set in the settings panel and thinking off, the answer is cut and offers Continue; each press goes on with the same
// answer, the text shown so far staying in place, until it ends by itself. With SMOLCHAT_SCREENSHOTS=1
// it saves the cut answer with its Continue button, light and dark, desktop and phone.
func TestBrowserContinue(t *testing.T) {
	f := newFake()
	f.delay = 20 * time.Millisecond
	f.answerWords = 6 // 7 tokens: cut after 3 and 6, ends within the third part
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	b.do("limit the answer", chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#set-max_tokens"),
		chromedp.SendKeys("#set-max_tokens", "3"), chromedp.SendKeys("#set-max_tokens", kb.Escape), chromedp.WaitNotVisible("#settings-panel"))
	b.do("thinking off", chromedp.Click(".switch"))
	b.wait("thinking off", `!document.querySelector("#think").checked`, 5*time.Second)
	b.send("Count for me")
	cut := `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .continue")`
	b.wait("the cut answer", cut, 10*time.Second)
	if got := eval[string](b, `document.querySelector(".msg.assistant .note").textContent`); got != "Cut off at the limit of answer tokens (Settings). Continue" {
		t.Errorf("the cut answer's note: %q", got)
	}
	b.wait("settled", settled, 5*time.Second)
	b.shotEach("continue")

	// While the continuation streams, the text so far stays on the page: a mutation observer records the
	// shortest answer text the page showed.
	b.do("watch", chromedp.Evaluate[chromedp.Void](`window.shortest = 1e9;
		new MutationObserver(() => {
			const c = document.querySelector(".msg.assistant .content");
			if (c) window.shortest = Math.min(window.shortest, c.textContent.length);
		}).observe(document.querySelector("#messages"), {childList: true, subtree: true, characterData: true})`))
	before := eval[int](b, `document.querySelector(".msg.assistant .content").textContent.length`)
	b.do("continue", chromedp.Click(".msg.assistant .continue"))
	b.wait("cut again", `!!document.querySelector(".msg.assistant .content")?.textContent.includes("Count#4") && `+cut, 10*time.Second)
	b.wait("settled", settled, 5*time.Second)
	b.do("continue again", chromedp.Click(".msg.assistant .continue"))
	b.wait("the whole answer", `!document.querySelector(".msg.streaming") && !document.querySelector(".msg.assistant .continue") &&
		!!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	if got := normalizeSpace(eval[string](b, `document.querySelector(".msg.assistant .content").textContent`)); got != normalizeSpace(f.expectedAnswer("Count for me")) {
		t.Fatalf("the continued answer reads %q", got)
	}
	if shortest := eval[int](b, `window.shortest`); shortest < before {
		t.Errorf("the answer shrank to %d characters while continuing (it had %d)", shortest, before)
	}
	if got := eval[string](b, `document.querySelector(".msg.assistant .version-count")?.textContent`); got != "3/3" {
		t.Errorf("the versions of the answer: %q, want 3/3 (the two cut ones kept)", got)
	}
	b.noErrors("continue")
}

// TestE2EBrowserContinue continues a cut answer in Chromium on the real engine (stories260K, CPU,
// greedy): an answer cut at 24 tokens, continued for 24 more, reads as the answer of one 48-token
// generation does, and the engine was asked to go on from the cut text rather than to answer again.
func TestE2EBrowserContinue(t *testing.T) {
	stories := newRecorder(storiesEngine(t, 256))
	_, base := startServer(t, stories, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.do("greedy, 24 tokens", chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#set-max_tokens"),
		chromedp.SendKeys("#set-temperature", "0"), chromedp.SendKeys("#set-max_tokens", "24"),
		chromedp.SendKeys("#set-max_tokens", kb.Escape), chromedp.WaitNotVisible("#settings-panel"))
	b.send("Once upon a time")
	b.wait("the cut answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .continue")`, 20*time.Second)
	_, cut := stories.last(t)
	b.wait("settled", settled, 5*time.Second)
	b.do("continue", chromedp.Click(".msg.assistant .continue"))
	b.wait("the continued answer", `!document.querySelector(".msg.streaming") && document.querySelector(".msg.assistant .version-count")?.textContent === "2/2"`, 20*time.Second)
	req, more := stories.last(t)
	if req.Continue == nil || req.Continue.Answer != cut.Answer || len(more.Tokens) != 24 {
		t.Fatalf("the continuation's request: continue %+v after %q; %d tokens", req.Continue, cut.Answer, len(more.Tokens))
	}
	shown := eval[string](b, `document.querySelector(".msg.assistant .content").textContent`)

	// The same answer in one go.
	whole, err := stories.Engine.Chat(context.Background(), engine.ChatRequest{Messages: []engine.Message{{Role: "user", Content: "Once upon a time"}},
		Params: engine.GenParams{MaxTokens: 48}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cut: %q\ncontinued: %q\nin one go: %q", cut.Answer, more.Answer, whole.Answer)
	if cut.Answer+more.Answer != whole.Answer {
		t.Errorf("cut and continued %q, in one go %q", cut.Answer+more.Answer, whole.Answer)
	}
	if normalizeSpace(shown) != normalizeSpace(whole.Answer) {
		t.Errorf("the page shows %q, want %q", shown, whole.Answer)
	}
	b.noErrors("continue on the real engine")
}
