package server

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestReloadMidAnswerInBrowser reloads the page while an answer streams: the reloaded page shows the text
// generated so far as soon as it loads, and follows the answer to its end.
func TestReloadMidAnswerInBrowser(t *testing.T) {
	b := startBrowser(t)
	f := newFake()
	f.delay, f.answerWords = 10*time.Millisecond, 150
	_, base := startServer(t, f, Config{})
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.send("reload me")
	b.wait("the answer streaming", `(document.querySelector(".msg.streaming .content")?.textContent || "").includes("reload#3 ")`, 10*time.Second)
	b.do("reload", chromedp.Reload(), chromedp.WaitReady("#messages"))
	shown := eval[string](b, `(document.querySelector(".msg.assistant .content")?.textContent || "") + " | " + document.querySelector(".msg.user .bubble")?.textContent`)
	if !strings.Contains(shown, "You said: reload me") || !strings.HasSuffix(shown, " | reload me") {
		t.Fatalf("right after the reload the page shows %q, want the question and the answer so far", shown)
	}
	b.wait("the whole answer", `!document.querySelector(".msg.streaming") &&
		(document.querySelector(".msg.assistant .content")?.textContent || "").includes("reload#149")`, 20*time.Second)
	if n := eval[int](b, `document.querySelectorAll(".msg.assistant").length`); n != 1 {
		t.Fatalf("%d answers on the page, want 1", n)
	}
	if note := eval[string](b, `document.querySelector(".msg.assistant .note")?.textContent || ""`); note != "" {
		t.Fatalf("the answer has a note: %q", note)
	}
	b.noErrors("after the reload")
}

// TestNotSavedInBrowser makes the answer's write fail (a full disk): the page keeps the answer with a
// "not saved" note, and its Retry button saves it once there is room.
func TestNotSavedInBrowser(t *testing.T) {
	b := startBrowser(t)
	f := newFake()
	f.delay = 30 * time.Millisecond
	s, base := startServer(t, f, Config{})
	h := &faultyHistory{history: s.store}
	s.store = h
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	b.send("keep this")
	b.wait("the answer streaming", `!!document.querySelector(".msg.streaming")`, 10*time.Second)
	h.setFailing(errDiskFull)
	b.wait("the unsaved answer", `!document.querySelector(".msg.streaming") && !!document.querySelector("button.retry-save")`, 10*time.Second)
	got := eval[string](b, `document.querySelector(".msg.assistant .content").textContent + " | " + document.querySelector(".msg.assistant .note").textContent`)
	if !strings.Contains(got, "You said: keep this") || !strings.Contains(got, "| Not saved: adding message: database or disk is full") {
		t.Fatalf("the unsaved answer shows %q", got)
	}
	h.setFailing(nil)
	b.do("retry", chromedp.Click("button.retry-save"))
	b.wait("the saved answer", `!document.querySelector("button.retry-save") && !document.querySelector(".msg.assistant .note") &&
		(document.querySelector(".msg.assistant .content")?.textContent || "").includes("You said: keep this")`, 10*time.Second)
	b.noErrors("after the retry")
}
