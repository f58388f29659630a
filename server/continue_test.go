package server

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// TestContinueCutAnswer: an answer cut by its token limit offers "Continue"; continuing sends the cut
// answer to the engine to go on from, streams only what follows it after the text the page has, and
// stores the whole answer as the answer shown (the cut one kept as its earlier version). An answer that
// was not cut cannot be continued.
func TestContinueCutAnswer(t *testing.T) {
	f := newFake()
	f.answerWords = 4 // "You said: …" then 4 numbered tokens: 5 in all
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	ctx := context.Background()
	resp, body := b.do("POST", "/chat", url.Values{"content": {"go on"}, "max_tokens": {"3"}})
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %s", resp.StatusCode, body)
	}
	conv := strings.TrimPrefix(resp.Header.Get("HX-Push-Url"), "/c/")
	last := lastEvent(t, b.stream(streamAttr.FindStringSubmatch(body)[1], nil))
	msgs, _ := s.store.Messages(ctx, conv)
	cut := msgs[1]
	if cut.FinishReason != "length" || cut.Content != "You said: go on\ngo#0 go#1 " {
		t.Fatalf("the cut answer: %+v", cut)
	}
	if !strings.Contains(last.Data, `hx-post="/c/`+conv+`/m/`+itoa(cut.ID)+`/continue"`) {
		t.Fatalf("the cut answer offers no Continue: %s", last.Data)
	}

	resp, body = b.do("POST", "/c/"+conv+"/m/"+itoa(cut.ID)+"/continue", nil)
	// The placeholder shows the cut answer, rendered; its stream goes on from there.
	if resp.StatusCode != 200 || !strings.Contains(body, `<div class="md-open" id="a-open-`) || !strings.Contains(body, "go#0 go#1</p>") {
		t.Fatalf("continue: %d %s", resp.StatusCode, body)
	}
	evs := b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	if got := streamed(evs, "answer"); got != "<p>You said: go on<br>\ngo#0 go#1 go#2 go#3</p>\n" {
		t.Errorf("the continuation streamed %q, want the cut answer and what follows", got)
	}
	r := f.lastRequest()
	if r.Continue == nil || r.Continue.Answer != cut.Content || r.Messages[len(r.Messages)-1].Role != "user" {
		t.Fatalf("the engine's request: %+v", r)
	}
	msgs, _ = s.store.Messages(ctx, conv)
	whole := msgs[1]
	if whole.Content != f.expectedAnswer("go on") || whole.FinishReason != "stop" || whole.Tokens != 5 || len(whole.Versions) != 2 {
		t.Fatalf("the continued answer: %+v", whole)
	}
	if last := lastEvent(t, evs); strings.Contains(last.Data, "/continue") || !strings.Contains(last.Data, "go#3") {
		t.Fatalf("the continued answer's last event: %s", last.Data)
	}
	if resp, body := b.do("POST", "/c/"+conv+"/m/"+itoa(whole.ID)+"/continue", nil); resp.StatusCode != 400 || !strings.Contains(body, "cut off") {
		t.Fatalf("continuing a finished answer: %d %s", resp.StatusCode, body)
	}
	if resp, _ := b.do("POST", "/c/"+conv+"/m/"+itoa(cut.ID)+"/continue", nil); resp.StatusCode != 409 {
		t.Fatalf("continuing an answer no longer shown: %d, want 409", resp.StatusCode)
	}
}
