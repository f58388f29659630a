package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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
	b.noErrors("after sending again")
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
	// htmx 2 wires a swapped-in button only when the swap settles (20 ms later): until then a click
	// does nothing, so the wait includes the settle.
	b.wait("the unsaved answer", `!document.querySelector(".msg.streaming") && !!document.querySelector("button.retry-save") &&
		!document.querySelector(".htmx-added, .htmx-settling")`, 10*time.Second)
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

// TestStaleTabInBrowser moves a chat on from another window while the page shows it: the page's send is
// refused, the page shows the chat as it now is (the other window's turn) with a notice, its text is
// kept, and sent again it lands after the turn it now shows. The first chat of all also removes the
// sidebar's "Your conversations will appear here".
func TestStaleTabInBrowser(t *testing.T) {
	b := startBrowser(t)
	f := newFake()
	s, base := startServer(t, f, Config{})
	b.do("open the page", chromedp.Navigate(base), chromedp.WaitVisible("#prompt"))
	if !eval[bool](b, `getComputedStyle(document.querySelector("#history-empty")).display !== "none"`) {
		t.Fatal("an empty history does not say so")
	}
	b.send("first")
	b.wait("the answer", `!document.querySelector(".msg.streaming") && !!document.querySelector(".msg.assistant .stats")`, 10*time.Second)
	if eval[bool](b, `getComputedStyle(document.querySelector("#history-empty")).display !== "none"`) {
		t.Fatal(`"Your conversations will appear here" still shows beside the first chat`)
	}
	convURL := eval[string](b, `location.href`)
	conv := strings.TrimPrefix(convURL, base+"/c/")

	// Another window moves the chat on; this page does not show it.
	other := newBrowser(t, base)
	_, sid, _ := other.send(conv, "moved on", false)
	other.stream(sid, nil)

	b.send("stale")
	b.wait("the refusal", `(document.querySelector(".notice")?.textContent || "").includes("changed in another window")`, 10*time.Second)
	// (chromedp types Enter as a key press and a separate "\r" character, which the page's keydown
	// handler cannot cancel: a real Enter leaves no newline.)
	if got := eval[string](b, `document.querySelector("#prompt").value`); strings.TrimSpace(got) != "stale" {
		t.Fatalf("the refused message is not kept in the box: %q", got)
	}
	if got := eval[string](b, `[...document.querySelectorAll(".msg.user .bubble")].map((e) => e.textContent).join()`); got != "first,moved on" {
		t.Fatalf("the page was not brought up to date before anything was appended: its messages %q", got)
	}
	b.errs.take() // the 409, which the browser and htmx log as errors
	b.wait("settled", settled, 5*time.Second)
	b.do("send again", chromedp.SendKeys("#prompt", kb.Enter))
	b.wait("the answer after the chat was shown again", `!document.querySelector(".msg.streaming") && document.querySelectorAll(".msg.assistant .stats").length === 3`, 10*time.Second)
	var users []string
	msgs, _ := s.store.Messages(context.Background(), conv)
	for _, m := range msgs {
		if m.Role == "user" {
			users = append(users, m.Content)
		}
	}
	if strings.Join(users, ",") != "first,moved on,stale" {
		t.Fatalf("stored questions: %q", users)
	}
	b.noErrors("after sending again")
}
