package server

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"smolchat/engine"
)

// TestBrowserAttachments attaches files in Chromium on the test double in the three ways a person does:
// the button's file picker (a PDF), a drop on the composer and a paste into the message box (text files,
// one with a hostile name and contents). Each shows as a chip with its token count before sending; an
// image is refused with a notice; a chip can be removed; the message sent holds the files' text, shown as
// text. With SMOLCHAT_SCREENSHOTS=1 it saves the composer with its chips, light and dark, desktop and phone.
func TestBrowserAttachments(t *testing.T) {
	f := newFake()
	f.script("", "Got the files.")
	_, base := startServer(t, f, Config{})
	b := startBrowser(t)
	pdf, err := filepath.Abs(filepath.Join("testdata", "attach", "notes.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pdf); err != nil {
		t.Fatal(err)
	}
	b.do("open the page", chromedp.Navigate(base), scheme("light"), chromedp.WaitVisible("#prompt"))
	b.do("thinking off", chromedp.Click(".switch"))
	b.wait("thinking off", `!document.querySelector("#think").checked`, 5*time.Second)

	b.do("pick a PDF", chromedp.SetUploadFiles("#attach-file", []string{pdf}, chromedp.NodeReady))
	b.wait("the PDF's chip", `document.querySelectorAll("#attachments .attachment").length === 1`, 10*time.Second)
	// A drop and a paste, as the browser delivers them: events carrying a DataTransfer of files.
	b.do("drop and paste", chromedp.Evaluate[chromedp.Void](`(() => {
		const files = (name, text, type) => { const dt = new DataTransfer(); dt.items.add(new File([text], name, {type})); return dt; };
		document.querySelector("#composer").dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true,
			dataTransfer: files('<img src=x onerror="window.pwned=1">.js', '</textarea><script>window.pwned=2</script>', "text/javascript")}));
		document.querySelector("#prompt").dispatchEvent(new ClipboardEvent("paste", {bubbles: true, cancelable: true,
			clipboardData: files("todo.txt", "buy milk", "text/plain")}));
		document.querySelector("#composer").dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true,
			dataTransfer: files("cat.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png")}));
	})()`))
	b.wait("three chips and a notice", `document.querySelectorAll("#attachments .attachment").length === 3 && !!document.querySelector(".notice.error")`, 10*time.Second)
	if got := eval[string](b, `document.querySelector(".notice.error").textContent`); !strings.Contains(got, "cat.png is not attached: images cannot be attached: the model reads text only (it has no vision)") {
		t.Errorf("the image's notice: %q", got)
	}
	names := eval[string](b, `[...document.querySelectorAll("#attachments .attachment-name")].map((e) => e.textContent).sort().join("|")`)
	// Chromium writes a quote in a file's name as %22 in the upload.
	if names != `<img src=x onerror=%22window.pwned=1%22>.js|notes.pdf|todo.txt` {
		t.Errorf("the chips' names: %q", names)
	}
	if !eval[bool](b, `[...document.querySelectorAll("#attachments .attachment-tokens")].every((e) => /^\d+ tokens$/.test(e.textContent))`) {
		t.Errorf("a chip without its token count: %s", eval[string](b, `document.querySelector("#attachments").innerText`))
	}
	b.shotEach("attach")
	b.do("remove todo.txt", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#attachments .attachment")].find((e) => e.textContent.includes("todo.txt")).querySelector(".attachment-remove").click()`))
	b.send("Summarize")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	msg := f.lastRequest().Messages[0].Content
	for _, want := range []string{"notes.pdf:\n```\nMeeting notes: the launch moves to <b>Tuesday</b>.", "Second page: ask Ada.", `window.pwned=2`, "\n\nSummarize"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "buy milk") {
		t.Error("a removed file was sent")
	}
	if bubble := eval[string](b, `document.querySelector(".msg.user .bubble").textContent`); !strings.Contains(bubble, `<img src=x onerror=%22window.pwned=1%22>.js:`) {
		t.Errorf("the sent message does not show the file's name as text: %q", bubble)
	}
	if !eval[bool](b, `window.pwned === undefined && !document.querySelector("#messages img, #messages script") && document.querySelectorAll("#attachments .attachment").length === 0`) {
		t.Error("hostile file markup ran, or the chips stayed after sending")
	}
	b.errs.take() // the refused image's 415 is logged by the browser as a failed request
}

// TestE2EBrowserAttachments attaches files in Chromium on the real engine (the synthetic SmolLM3, CPU,
// a 1024-token context): the chip's token count is the one the model's tokenizer and chat template give
// the file in the chat's settings (its tokens in a message, less those of an empty one), a file too
// long for the context is refused with its count and the limit, and the answer's request carries the
// PDF's text.
func TestE2EBrowserAttachments(t *testing.T) {
	synth := newRecorder(synthEngine(t, 1024))
	_, base := startServer(t, synth, Config{})
	b := startBrowser(t)
	pdf, err := filepath.Abs(filepath.Join("testdata", "attach", "notes.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(long, []byte(strings.Repeat("All work and no play makes a dull model. ", 120)), 0o644); err != nil {
		t.Fatal(err)
	}
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.do("16 answer tokens", chromedp.Click("#settings-toggle"), chromedp.WaitVisible("#set-max_tokens"),
		chromedp.SendKeys("#set-max_tokens", "16"), chromedp.SendKeys("#set-max_tokens", kb.Escape), chromedp.WaitNotVisible("#settings-panel"))
	b.do("pick a PDF", chromedp.SetUploadFiles("#attach-file", []string{pdf}, chromedp.NodeReady))
	b.wait("the PDF's chip", `document.querySelectorAll("#attachments .attachment").length === 1`, 20*time.Second)
	text := eval[string](b, `document.querySelector("#attachments input[name=attachment]").value`)
	think := true // the Thinking switch as a new chat starts (the template's overhead cancels out anyway)
	withFile, err := synth.CountChatTokens([]engine.Message{{Role: "user", Content: withAttachments("", []attachmentView{{Name: "notes.pdf", Text: text}})}}, &think)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := synth.CountChatTokens([]engine.Message{{Role: "user", Content: ""}}, &think)
	if err != nil {
		t.Fatal(err)
	}
	want := withFile - empty
	if got := eval[string](b, `document.querySelector("#attachments .attachment-tokens").textContent`); got != fmt.Sprintf("%d tokens", want) {
		t.Errorf("the chip says %q; the model counts %d tokens", got, want)
	}
	b.do("pick a long file", chromedp.SetUploadFiles("#attach-file", []string{long}, chromedp.NodeReady))
	b.wait("the refusal", `(document.querySelector(".notice.error")?.textContent || "").includes("long.txt is ")`, 20*time.Second)
	if got := eval[string](b, `document.querySelector(".notice.error").textContent`); !regexp.MustCompile(`^long\.txt is [\d,]+ tokens; with room kept for the answer, the chat's template and its system prompt, the context window holds [\d,]+\.`).MatchString(got) {
		t.Errorf("the long file's refusal: %q", got)
	}
	b.errs.take() // the refused file's 413
	b.send("Summarize")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 60*time.Second)
	req, _ := synth.last(t)
	if msg := req.Messages[len(req.Messages)-1].Content; !strings.Contains(msg, "notes.pdf:\n```\nMeeting notes: the launch moves to <b>Tuesday</b>.") || !strings.HasSuffix(msg, "\n\nSummarize") {
		t.Errorf("the model was sent %q", msg)
	}
}
