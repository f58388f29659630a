package server

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// liveAnswer is an answer with every kind of block the page renders while it streams, and hostile
// markup of three kinds: raw HTML with an event handler, a javascript: link, and KaTeX's \href and \url
// with javascript: (refused with trust off). Its last paragraph is still open when the fake pauses.
const liveAnswer = "Here is **bold** text, a formula $e^{i\\pi}+1=0$ inline and \\(a_1 * b_2\\) too.\n\n" +
	"| left | center | right |\n|:-----|:------:|------:|\n| a | b | c |\n\n" +
	"```go\nfunc main() {\n\tfmt.Println(\"<b>hi</b>\")\n}\n```\n\n" +
	"$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$\n\n" +
	"Hostile: <img src=x onerror=\"window.pwned=1\"> [click](javascript:window.pwned=2) " +
	"$\\href{javascript:window.pwned=3}{x}$ and \\(\\url{javascript:window.pwned=4}\\)\n\n" +
	"The last paragraph is still open at the pause ok"

// TestStreamedMarkdownIsSanitized checks every event of a streamed hostile answer, and its last one:
// the markup is text, the javascript: link is dropped, the formulas are escaped TeX.
func TestStreamedMarkdownIsSanitized(t *testing.T) {
	f := newFake()
	f.script("", liveAnswer)
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	_, sid, _ := b.send("", "hostile", false)
	evs := b.stream(sid, nil)
	for _, e := range evs {
		for _, bad := range []string{"<img", "<script", `href="javascript`, "<a href=\"javascript"} {
			if strings.Contains(e.Data, bad) {
				t.Errorf("event %s carries %q: %s", e.Name, bad, e.Data)
			}
		}
	}
	shown := streamed(evs, "answer")
	for _, want := range []string{"&lt;img src=x onerror=", `<span class="math math-inline">\href{javascript:window.pwned=3}{x}</span>`,
		`<span class="code-lang">go</span>`, `<th align="center">center</th>`, `<div class="math math-display">`} {
		if !strings.Contains(shown, want) {
			t.Errorf("the streamed answer lacks %q:\n%s", want, shown)
		}
	}
}

// TestBrowserMarkdownStreams streams a Markdown answer into Chromium on the test double and looks at the
// page while the answer's last paragraph is still open: the finished blocks are rendered as the final
// answer renders them (a code block with its language and Copy button, a table with its columns'
// alignment, formulas typeset by KaTeX), the hostile markup is inert (no image, no javascript: link,
// nothing run), and when the answer ends nothing above the last paragraph moves. The page reports no
// error, so no CSP violation either; KaTeX's fonts come from the server. With SMOLCHAT_SCREENSHOTS=1 it
// saves the answer while it streams, and once it ended, light and dark, desktop and phone.
func TestBrowserMarkdownStreams(t *testing.T) {
	f := newFake()
	f.script("", liveAnswer)
	toks := splitTokens(liveAnswer)
	f.resume, f.pauseAt = make(chan struct{}), len(toks)-1
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	b.do("thinking off", chromedp.Click(".switch"))
	b.wait("thinking off", `!document.querySelector("#think").checked`, 5*time.Second)
	b.send("Show me markdown")
	b.wait("the open paragraph", `document.querySelector(".msg.streaming .content .md-open")?.textContent.includes("still open at the pause")`, 10*time.Second)
	b.wait("settled", settled, 5*time.Second)

	// checks is run on the streaming answer, then on the finished one.
	checks := []struct{ name, expr string }{
		{"code block with its language", `[...document.querySelectorAll(".msg.assistant .code-block .code-lang")].map((e) => e.textContent).join() === "go"`},
		{"copy button on the code block", `!!document.querySelector(".msg.assistant .code-head button.copy-code")`},
		{"highlighted code", `!!document.querySelector(".msg.assistant .code-block pre.chroma .kd")`},
		{"code shown as text", `document.querySelector(".msg.assistant .code-block code").textContent.includes('"<b>hi</b>"')`},
		{"table alignment", `[...document.querySelectorAll(".msg.assistant td")].map((td) => getComputedStyle(td).textAlign).join() === "left,center,right"`},
		{"formulas typeset", `document.querySelectorAll(".msg.assistant .katex").length === 5 && document.querySelectorAll(".msg.assistant .katex-display").length === 1`},
		{"no markdown inside a formula", `document.querySelector(".msg.assistant .math-inline:nth-of-type(2) annotation")?.textContent === "a_1 * b_2"`},
		{"raw HTML is text", `document.querySelector(".msg.assistant .content").textContent.includes('<img src=x onerror="window.pwned=1">') && !document.querySelector(".msg.assistant .content img")`},
		{"no javascript: link", `![...document.querySelectorAll(".msg.assistant a")].some((a) => a.href.startsWith("javascript:"))`},
		{"\\href and \\url refused with trust off", `!document.querySelector(".msg.assistant .katex a, .msg.assistant .katex [href]") && [...document.querySelectorAll(".msg.assistant .katex-html")].filter((e) => /^\\(href|url)/.test(e.textContent)).length === 2`},
		{"nothing ran", `window.pwned === undefined`},
	}
	for _, c := range checks {
		if !eval[bool](b, c.expr) {
			t.Errorf("while streaming: %s: %s", c.name, c.expr)
		}
	}
	// Where each block sits, the answer's height and where the line below it starts: the last paragraph
	// gains one short word.
	const layout = `JSON.stringify([...document.querySelector(".msg.assistant .content").querySelectorAll("p, table, .code-block, .math-display")].map((e) => Math.round(e.getBoundingClientRect().top)).concat([Math.round(document.querySelector(".msg.assistant .content").getBoundingClientRect().height), Math.round(document.querySelector(".msg.assistant .msg-foot").getBoundingClientRect().top)]))`
	before := eval[string](b, layout)
	if b.shots != "" {
		b.do("to the answer's start", chromedp.Evaluate[chromedp.Void](`document.querySelector(".msg.assistant").scrollIntoView()`))
		b.shot("markdown-streaming-light.png")
	}
	close(f.resume)
	b.wait("the finished answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	b.wait("settled", settled, 5*time.Second)
	for _, c := range checks {
		if !eval[bool](b, c.expr) {
			t.Errorf("finished: %s: %s", c.name, c.expr)
		}
	}
	if after := eval[string](b, layout); after != before {
		t.Errorf("the answer's blocks moved when it ended: top of each block and height %s, then %s", before, after)
	}
	if !eval[bool](b, `performance.getEntriesByType("resource").some((r) => new URL(r.name).pathname.startsWith("/assets/vendor/katex/fonts/KaTeX_Main-Regular.woff2"))`) {
		t.Error("KaTeX's main font was not loaded from the server")
	}
	// Copying: the answer with its formulas as TeX and without the code bar's words; a code block alone.
	b.do("catch the clipboard", chromedp.Evaluate[chromedp.Void](`navigator.clipboard.writeText = (t) => { window.copied = t; return Promise.resolve(); }`))
	b.do("copy the answer", chromedp.Click(".msg.assistant .msg-foot .copy"))
	b.wait("copied", `typeof window.copied === "string"`, 5*time.Second)
	answer := eval[string](b, `window.copied`)
	for _, want := range []string{"Here is bold text, a formula $e^{i\\pi}+1=0$ inline and $a_1 * b_2$ too.", "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$",
		"func main() {\n\tfmt.Println(\"<b>hi</b>\")\n}", "The last paragraph is still open at the pause ok"} {
		if !strings.Contains(answer, want) {
			t.Errorf("the copied answer lacks %q:\n%s", want, answer)
		}
	}
	if strings.Contains(answer, "Copy") || strings.Count(answer, "e^{i") != 1 {
		t.Errorf("the copied answer carries the code bar or a formula twice:\n%s", answer)
	}
	b.do("copy the code", chromedp.Evaluate[chromedp.Void](`window.copied = undefined`), chromedp.Click(".msg.assistant .copy-code"))
	b.wait("copied", `typeof window.copied === "string"`, 5*time.Second)
	if code := eval[string](b, `window.copied`); code != "func main() {\n\tfmt.Println(\"<b>hi</b>\")\n}\n" {
		t.Errorf("the copied code: %q", code)
	}
	b.noErrors("markdown streamed")
	b.do("to the answer's start", chromedp.Evaluate[chromedp.Void](`document.querySelector(".msg.assistant").scrollIntoView()`))
	b.shotEach("markdown")
}
