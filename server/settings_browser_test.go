package server

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// settled is true once htmx has wired what it swapped in (it does so when the swap settles, 20 ms later).
const settled = `!document.querySelector(".htmx-added, .htmx-settling")`

// shotEach saves the page as name-light.png, name-dark.png and name-phone.png (light, 390 px wide) when
// screenshots are on, and leaves it light at the desktop width.
func (b *chromeTab) shotEach(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	b.do("light", scheme("light"))
	b.shot(name + "-light.png")
	b.do("dark", scheme("dark"))
	b.shot(name + "-dark.png")
	b.do("phone", scheme("light"), chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	b.shot(name + "-phone.png")
	b.do("desktop", chromedp.EmulateViewport(1280, 800))
}

// TestBrowserSettings drives the settings panel in Chromium on the test double: open it, refuse a
// temperature of NaN with a notice, set a system prompt and top-k, save them as a preset, send a message
// and see the engine's request carry them, then reload and find them on the conversation; then set
// thinking off for new chats and see a new chat start, and answer, without it. With
// SMOLCHAT_SCREENSHOTS=1 it saves the open panel, light and dark, desktop and phone.
func TestBrowserSettings(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	b.do("open the panel", chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#settings-panel"))
	if got := eval[string](b, `document.querySelector("#set-temperature").placeholder + "|" + document.querySelector("#set-top_p").placeholder`); got != "0.6|0.95" {
		t.Errorf("the defaults shown = %q, want SmolLM3's model card's 0.6|0.95", got)
	}

	// NaN is refused, with a message saying what the field takes.
	b.do("type NaN", chromedp.SendKeys("#set-temperature", "NaN"), chromedp.SendKeys("#set-temperature", kb.Enter))
	b.wait("the refusal", `[...document.querySelectorAll(".notice")].some((n) => n.textContent.includes("Temperature must be a number from 0 to 2"))`, 5*time.Second)
	if n := eval[int](b, `document.querySelectorAll(".msg").length`); n != 0 {
		t.Fatalf("Enter in a settings field sent a message (%d on the page)", n)
	}

	b.do("fix the temperature", chromedp.Evaluate[chromedp.Void](`document.querySelector("#set-temperature").value = ""`), chromedp.SendKeys("#set-temperature", "0.5"),
		chromedp.SendKeys("#set-system", "You answer in one sentence."), chromedp.SendKeys("#set-top_k", "40"),
		chromedp.SendKeys("#preset-name", "One sentence"), chromedp.Click("#preset-save"))
	b.wait("the preset saved", `(document.querySelector("#settings-status")?.textContent || "").includes("Saved as the preset")`, 5*time.Second)
	b.wait("the panel settled", settled, 5*time.Second)
	b.errs.take() // the refusal's 400, which htmx and Chromium log
	if got := eval[string](b, `[...document.querySelectorAll("#preset option")].map((o) => o.value).join("|")`); got != "|One sentence" {
		t.Errorf("presets offered: %q", got)
	}
	b.shotEach("settings")

	// Escape closes the panel; the message goes with the panel's settings.
	b.do("close the panel", chromedp.SendKeys("#set-top_k", kb.Escape), chromedp.WaitNotVisible("#settings-panel"))
	b.send("Hello settings")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	r := f.lastRequest()
	if len(r.Messages) != 2 || r.Messages[0].Content != "You answer in one sentence." || r.Params.TopK != 40 || r.Params.Temperature != 0.5 {
		t.Fatalf("the engine's request: %+v", r)
	}

	// A reload shows the conversation's settings; a new chat starts from the defaults again.
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible("#prompt"))
	if got := eval[string](b, `document.querySelector("#set-system").value + "|" + document.querySelector("#set-top_k").value`); got != "You answer in one sentence.|40" {
		t.Errorf("after a reload the panel shows %q", got)
	}
	if !strings.Contains(eval[string](b, `document.querySelector("#composer-settings").textContent`), "system") {
		t.Error("no chip says the chat has a system prompt")
	}
	b.do("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	if got := eval[string](b, `document.querySelector("#set-system").value`); got != "" {
		t.Errorf("a new chat starts with the system prompt %q", got)
	}
	b.do("choose the preset", chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#preset"),
		chromedp.Evaluate[chromedp.Void](`const s = document.querySelector("#preset"); s.value = "One sentence"; s.dispatchEvent(new Event("change", {bubbles: true}))`))
	b.wait("the preset's settings", `document.querySelector("#set-system")?.value === "You answer in one sentence." && document.querySelector("#set-top_k").value === "40"`, 5*time.Second)
	b.wait("settled", settled, 5*time.Second)

	// The thinking default: new chats start with thinking off, though the switch was left on.
	if !eval[bool](b, `document.querySelector("#think").checked`) {
		t.Fatal("the Thinking switch is off before the default is set")
	}
	b.do("thinking off in new chats", chromedp.SetValue("#set-think_default", "off"), chromedp.Click("#settings-defaults"))
	b.wait("the defaults saved", `(document.querySelector("#settings-status")?.textContent || "").includes("New chats will start with these settings")`, 5*time.Second)
	b.do("another new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	if got := eval[string](b, `document.querySelector("#think").checked + "|" + document.querySelector("#set-think_default").value`); got != "false|off" {
		t.Errorf("a new chat after 'thinking off in new chats': switch checked, default = %q, want false|off", got)
	}
	b.send("Hello default")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	if r := f.lastRequest(); r.Think == nil || *r.Think {
		t.Errorf("the new chat's answer was asked with thinking %s", ptrStr(r.Think))
	}
	b.noErrors("the settings panel")
}

// TestE2EBrowserSystemPrompt sets a system prompt and a limit of 8 answer tokens in the settings panel,
// in Chromium on the synthetic SmolLM3 (CPU): the engine renders the system prompt into SmolLM3's
// "Custom Instructions" (in place of its default persona), the context meter counts it, and the answer stops at 8 tokens with Continue
// offered.
func TestE2EBrowserSystemPrompt(t *testing.T) {
	rec := newRecorder(synthEngine(t, 1024))
	_, base := startServer(t, rec, Config{})
	b := startBrowser(t)
	meter := func(system string) int {
		t.Helper()
		b.do("new chat", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"), chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#set-system"))
		if system != "" {
			b.do("system prompt", chromedp.SendKeys("#set-system", system))
		}
		b.do("8 answer tokens", chromedp.SendKeys("#set-max_tokens", "8"), chromedp.SendKeys("#set-max_tokens", kb.Escape),
			chromedp.WaitNotVisible("#settings-panel"))
		b.send("Hi there")
		b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 30*time.Second)
		return eval[int](b, `+document.querySelector("#context-meter meter").value`)
	}
	without := meter("")
	with := meter("You are a pirate. Answer like one.")
	req, res := rec.last(t)
	p, _, err := rec.Engine.RenderChat(req.Messages, req.Think)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.String(), "## Custom Instructions\n\nYou are a pirate. Answer like one.") {
		t.Errorf("the rendered prompt lacks the system prompt:\n%s", p.String())
	}
	// The meter counts the system prompt: it shows the rendered prompt and the answer.
	n, err := rec.Engine.CountChatTokens(req.Messages, req.Think)
	if err != nil || with != n+len(res.Tokens) || with == without {
		t.Errorf("the meter shows %d tokens (%d without the system prompt); the prompt has %d and the answer %d", with, without, n, len(res.Tokens))
	}
	if len(res.Tokens) > 8 || (res.FinishReason == "length") != eval[bool](b, `!!document.querySelector(".msg.assistant .continue")`) {
		t.Errorf("%d tokens, finish %s; Continue offered: %v", len(res.Tokens), res.FinishReason, eval[bool](b, `!!document.querySelector(".msg.assistant .continue")`))
	}
	b.noErrors("a system prompt on SmolLM3")
}
