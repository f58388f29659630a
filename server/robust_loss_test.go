package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/server/store"
)

// Tests that a user's data is never lost or hidden: a busy queue, a full disk, a double submit, a
// failing regeneration, a reload mid-answer (docs/RELIABILITY.md §11).

// faultyHistory is the history with writes that fail on demand, as on a full disk.
type faultyHistory struct {
	history
	fail atomic.Pointer[error]
}

// errDiskFull is SQLite's message for a full disk, as the store wraps it.
var errDiskFull = fmt.Errorf("store: adding message: %w", errors.New("database or disk is full (13)"))

func (h *faultyHistory) failing() error {
	if e := h.fail.Load(); e != nil {
		return *e
	}
	return nil
}

func (h *faultyHistory) setFailing(err error) {
	if err == nil {
		h.fail.Store(nil)
		return
	}
	h.fail.Store(&err)
}

func (h *faultyHistory) CreateConversation(ctx context.Context, c store.Conversation, first store.Message) (store.Conversation, store.Message, error) {
	if err := h.failing(); err != nil {
		return store.Conversation{}, store.Message{}, err
	}
	return h.history.CreateConversation(ctx, c, first)
}

func (h *faultyHistory) AddMessage(ctx context.Context, m store.Message) (store.Message, error) {
	if err := h.failing(); err != nil {
		return store.Message{}, err
	}
	return h.history.AddMessage(ctx, m)
}

func (h *faultyHistory) AddTurn(ctx context.Context, c store.Conversation, m store.Message) (store.Message, error) {
	if err := h.failing(); err != nil {
		return store.Message{}, err
	}
	return h.history.AddTurn(ctx, c, m)
}

func (h *faultyHistory) ReplaceMessage(ctx context.Context, old int64, m store.Message) (store.Message, error) {
	if err := h.failing(); err != nil {
		return store.Message{}, err
	}
	return h.history.ReplaceMessage(ctx, old, m)
}

func (h *faultyHistory) EditMessage(ctx context.Context, conv string, id int64, content string) (store.Message, error) {
	if err := h.failing(); err != nil {
		return store.Message{}, err
	}
	return h.history.EditMessage(ctx, conv, id, content)
}

func (h *faultyHistory) UpdateSettings(ctx context.Context, c store.Conversation) error {
	if err := h.failing(); err != nil {
		return err
	}
	return h.history.UpdateSettings(ctx, c)
}

// failingGen is the test double whose next generation fails after its first token.
type failingGen struct {
	*fakeGen
	failNext atomic.Bool
}

var errGenFailed = errors.New("test: the generation failed")

func (g *failingGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	if !g.failNext.CompareAndSwap(true, false) {
		return g.fakeGen.Chat(ctx, req, emit)
	}
	emit(engine.Delta{Answer: "Half "})
	return engine.Result{}, errGenFailed
}

// holdModel starts n streamed API requests that keep the model busy (the first runs, the others wait)
// until the returned function is called.
func holdModel(t *testing.T, f *fakeGen, base string, n int) (release func()) {
	t.Helper()
	f.delay, f.answerWords = 20*time.Millisecond, 10000
	var open []*http.Response
	for i := range n {
		resp := postJSON(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"hold"}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("holding request %d: status %d", i, resp.StatusCode)
		}
		open = append(open, resp)
		if i == 0 {
			// The first holds the model once it streams; the next ones wait behind it.
			readSSE(t, resp.Body, func(sseEvent) bool { return false })
		}
	}
	return func() {
		for _, r := range open {
			r.Body.Close()
		}
		f.waitIdle(5 * time.Second)
		f.delay, f.answerWords = 2*time.Millisecond, 8
	}
}

// trySend posts a message and returns its answer's stream ID, or "" if it was refused with status
// refused; any other answer fails the test.
func (b *browser) trySend(conv, text string, refused int) string {
	resp, body := b.do("POST", "/chat", url.Values{"content": {text}, "conversation": {conv}})
	switch resp.StatusCode {
	case 200:
		return streamAttr.FindStringSubmatch(body)[1]
	case refused:
		return ""
	}
	b.t.Errorf("send %q: status %d: %s", text, resp.StatusCode, body)
	return ""
}

func conversationCount(t *testing.T, s *Server) int {
	t.Helper()
	list, err := s.store.Conversations(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestBusyQueueRefusesBeforeStoring fills the queue, then sends, regenerates and edits: each is refused
// with 503 and changes nothing (a regeneration used to delete the answer, then fail as busy).
func TestBusyQueueRefusesBeforeStoring(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{MaxQueue: 1})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "first question", false)
	b.stream(sid, nil)
	before, _ := s.store.Messages(context.Background(), conv)

	release := holdModel(t, f, base, 2) // one runs, one waits: the queue is full
	for _, tc := range []struct {
		name, method, path string
		form               url.Values
	}{
		{"send to a new chat", "POST", "/chat", url.Values{"content": {"new"}}},
		{"send", "POST", "/chat", url.Values{"content": {"more"}, "conversation": {conv}}},
		{"regenerate", "POST", "/c/" + conv + "/regenerate", nil},
		{"edit", "POST", "/c/" + conv + "/m/" + itoa(before[0].ID), url.Values{"content": {"edited"}}},
	} {
		resp, body := b.do(tc.method, tc.path, tc.form)
		if resp.StatusCode != 503 || !strings.Contains(body, "busy") {
			t.Errorf("%s with the queue full: status %d: %s", tc.name, resp.StatusCode, body)
		}
	}
	release()
	after, _ := s.store.Messages(context.Background(), conv)
	if len(after) != len(before) || after[1].ID != before[1].ID || after[0].Content != before[0].Content {
		t.Fatalf("refused requests changed the conversation:\nbefore %+v\nafter  %+v", before, after)
	}
	if n := conversationCount(t, s); n != 1 {
		t.Fatalf("%d conversations, want 1", n)
	}
}

// TestAcceptedSendIsAnswered sends two messages while one place is left in the queue: the one accepted
// must get its answer, never "server is busy" after it was stored; the other is refused unstored.
func TestAcceptedSendIsAnswered(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{MaxQueue: 1})
	release := holdModel(t, f, base, 1) // the model is busy, one place left in the queue
	b := newBrowser(t, base)
	var accepted []string
	for _, text := range []string{"alpha", "beta"} {
		if id := b.trySend("", text, 503); id != "" {
			accepted = append(accepted, id)
		}
	}
	if len(accepted) != 1 || conversationCount(t, s) != 1 {
		t.Fatalf("%d sends accepted, %d conversations stored; want 1 and 1", len(accepted), conversationCount(t, s))
	}
	release()
	evs := b.stream(accepted[0], nil)
	if last := evs[len(evs)-1]; last.Name != "done" || !strings.Contains(last.Data, "You said: alpha") {
		t.Fatalf("the accepted message's answer ended %s: %s", last.Name, last.Data)
	}
}

// TestDoubleSubmitStoresOne sends two messages to one conversation at once, many times: exactly the
// sends answered 200 are stored, never two user turns in a row.
func TestDoubleSubmitStoresOne(t *testing.T) {
	f := newFake()
	f.answerWords = 1
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "start", false)
	b.stream(sid, nil)
	for round := range 25 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var streams []string
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id := b.trySend(conv, fmt.Sprintf("r%d-%d", round, i), 409)
				mu.Lock()
				defer mu.Unlock()
				if id != "" {
					streams = append(streams, id)
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, id := range streams {
			b.stream(id, nil)
		}
		msgs, _ := s.store.Messages(context.Background(), conv)
		for i := 1; i < len(msgs); i++ {
			if msgs[i].Role == "user" && msgs[i-1].Role == "user" {
				t.Fatalf("round %d: two user turns in a row (%q, %q); %d sends accepted", round, msgs[i-1].Content, msgs[i].Content, len(streams))
			}
		}
		if len(streams) != 1 {
			t.Fatalf("round %d: %d of 2 simultaneous sends accepted, want 1", round, len(streams))
		}
	}
}

// TestFailedRegenerationKeepsAnswer regenerates an answer with a generation that fails: the previous
// answer stays, in the history and on the page, and the failure is said.
func TestFailedRegenerationKeepsAnswer(t *testing.T) {
	g := &failingGen{fakeGen: newFake()}
	s, base := startServer(t, g, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "question", false)
	b.stream(sid, nil)
	before, _ := s.store.Messages(context.Background(), conv)

	g.failNext.Store(true)
	resp, body := b.do("POST", "/c/"+conv+"/regenerate", nil)
	m := streamAttr.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("regenerate: status %d: %s", resp.StatusCode, body)
	}
	evs := b.stream(m[1], nil)
	last := evs[len(evs)-1]
	if last.Name != "failed" || !strings.Contains(last.Data, "You said: question") || !strings.Contains(last.Data, "previous answer is kept") {
		t.Fatalf("failed regeneration ended %s: %s", last.Name, last.Data)
	}
	after, _ := s.store.Messages(context.Background(), conv)
	if len(after) != 2 || after[1].ID != before[1].ID {
		t.Fatalf("after a failed regeneration: %+v", after)
	}
	if page := b.get("/c/" + conv); !strings.Contains(page, "You said: question") {
		t.Fatal("the reloaded page lost the previous answer")
	}

	// A regeneration that completes replaces it; the old one is kept as an earlier version.
	_, body = b.do("POST", "/c/"+conv+"/regenerate", nil)
	b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	after, _ = s.store.Messages(context.Background(), conv)
	if len(after) != 2 || after[1].ID == before[1].ID || after[1].Content != g.expectedAnswer("question") {
		t.Fatalf("after a regeneration: %+v", after)
	}
	// A page loaded now shows the one current answer: none of the streams that just ended comes back.
	for range 5 {
		page := b.get("/c/" + conv)
		if n := strings.Count(page, `class="msg assistant`); n != 1 || strings.Contains(page, "sse-connect") {
			t.Fatalf("the page after regenerations shows %d answers (stream placeholder: %v)", n, strings.Contains(page, "sse-connect"))
		}
	}
}

// TestFullDiskKeepsAnswer makes the history's writes fail (an injected "database or disk is full"): a
// new chat is refused with the reason and leaves nothing behind, an answer that cannot be saved stays
// on the page with the reason and a retry, and everything works again once there is room.
func TestFullDiskKeepsAnswer(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	h := &faultyHistory{history: s.store}
	s.store = h
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "first", false)
	b.stream(sid, nil)

	// An answer whose write fails.
	_, sid, _ = b.send(conv, "second", false)
	h.setFailing(errDiskFull)
	evs := b.stream(sid, nil)
	last := evs[len(evs)-1]
	if last.Name != "failed" || !strings.Contains(last.Data, "Not saved: adding message: database or disk is full") ||
		!strings.Contains(last.Data, "You said: second") || !strings.Contains(last.Data, "/stream/"+sid+"/save") {
		t.Fatalf("unsaved answer ended %s: %s", last.Name, last.Data)
	}
	if page := b.get("/c/" + conv); !strings.Contains(page, "You said: second") || !strings.Contains(page, "Not saved") {
		t.Fatal("a reloaded page does not show the unsaved answer")
	}

	// A new chat: refused with the reason, nothing stored.
	resp, body := b.do("POST", "/chat", url.Values{"content": {"new chat"}})
	if resp.StatusCode != 507 || !strings.Contains(body, "disk is full") || !strings.Contains(body, "Nothing was changed") {
		t.Fatalf("new chat on a full disk: status %d: %s", resp.StatusCode, body)
	}
	if n := conversationCount(t, s); n != 1 {
		t.Fatalf("%d conversations after a refused new chat, want 1", n)
	}
	// Settings too say why they were not saved.
	if resp, body := b.do("POST", "/settings", url.Values{"conversation": {conv}, "temperature": {"0.5"}}); resp.StatusCode != 507 ||
		!strings.Contains(body, "disk is full") {
		t.Fatalf("settings on a full disk: status %d: %s", resp.StatusCode, body)
	}
	// A retry while still full says so again.
	resp, body = b.do("POST", "/stream/"+sid+"/save", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Not saved") {
		t.Fatalf("retry while full: status %d: %s", resp.StatusCode, body)
	}

	// A next message is refused while the answer before it cannot be saved: the history keeps its order.
	if resp, body := b.do("POST", "/chat", url.Values{"content": {"third"}, "conversation": {conv}}); resp.StatusCode != 507 {
		t.Fatalf("a next message while the answer is unsaved: status %d: %s", resp.StatusCode, body)
	}

	// Room again: the retry saves it, and new chats work.
	h.setFailing(nil)
	resp, body = b.do("POST", "/stream/"+sid+"/save", nil)
	if resp.StatusCode != 200 || strings.Contains(body, "Not saved") || !strings.Contains(body, "You said: second") {
		t.Fatalf("retry with room: status %d: %s", resp.StatusCode, body)
	}
	msgs, _ := s.store.Messages(context.Background(), conv)
	if len(msgs) != 4 || msgs[3].Content != f.expectedAnswer("second") {
		t.Fatalf("after the retry: %+v", msgs)
	}
	if page := b.get("/c/" + conv); strings.Contains(page, "Not saved") {
		t.Fatal("the saved answer still shows as not saved")
	}
	_, sid, _ = b.send("", "new chat", false)
	b.stream(sid, nil)

	// An unsaved answer is written before the next message, in order, when there is room again.
	_, sid, _ = b.send(conv, "fourth", false)
	h.setFailing(errDiskFull)
	b.stream(sid, nil)
	h.setFailing(nil)
	_, sid, _ = b.send(conv, "fifth", false)
	b.stream(sid, nil)
	var roles []string
	msgs, _ = s.store.Messages(context.Background(), conv)
	for _, m := range msgs {
		roles = append(roles, m.Role)
	}
	if got := strings.Join(roles, " "); got != "user assistant user assistant user assistant user assistant" {
		t.Fatalf("turns after an unsaved answer and a next message: %s", got)
	}
}

var resumeAttr = regexp.MustCompile(`sse-connect="/stream/([0-9a-f]+)"`)

// TestReloadMidAnswer renders the page while its answer streams: it shows the text so far, and the
// answer goes on to the reloaded page after the first page has gone.
func TestReloadMidAnswer(t *testing.T) {
	f := newFake()
	f.delay, f.answerWords = 5*time.Millisecond, 60
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "reload me", true)

	// The first page reads a few answer tokens, then the page is reloaded.
	resp := b.openStream(sid, 3)
	page := b.get("/c/" + conv)
	m := resumeAttr.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "You said: reload me") || !strings.Contains(page, "Thinking step 0.") {
		t.Fatalf("the reloaded page does not show the answer so far:\n%s", page)
	}
	resp.Body.Close() // the old page goes away

	// The reloaded page connects and follows the answer to its end: it is sent the answer so far, rendered
	// (it may show a little less), then what follows.
	evs := b.stream(m[1], nil)
	if last := lastEvent(t, evs); last.Name != "done" || !strings.Contains(last.Data, "reload#59") || strings.Contains(last.Data, "Stopped") {
		t.Fatalf("the reloaded page's stream ended %s: %s", last.Name, last.Data)
	}
	if first := eventData(evs, "answer-all"); !strings.Contains(first, "><p>You said: reload me") {
		t.Fatalf("the reloaded page was sent %q for the answer so far", first)
	}
	if rest := streamed(evs, "answer"); !strings.Contains(rest, "reload#59") {
		t.Fatalf("the reloaded page was shown %q", rest)
	}
}

// TestReloadAfterStopShowsStopped: an answer cancelled by its page going away before the reload is
// shown stopped, with its text, on the reloaded page.
func TestReloadAfterStopShowsStopped(t *testing.T) {
	f := newFake()
	f.delay, f.answerWords = 5*time.Millisecond, 1000
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "gone", false)
	b.openStream(sid, 2).Body.Close()
	if _, ok := f.waitIdle(5 * time.Second); !ok {
		t.Fatal("generation still running after its only page left")
	}
	// The generation ends before its record is saved (the stream's goroutine writes it after the
	// engine returns), so the page is read until it shows the stop, for as long as waitIdle allows.
	stopped := func(page string) bool {
		return strings.Contains(page, "You said: gone") && strings.Contains(page, "Stopped.") && !strings.Contains(page, "sse-connect")
	}
	page := b.get("/c/" + conv)
	for deadline := time.Now().Add(5 * time.Second); !stopped(page) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		page = b.get("/c/" + conv)
	}
	if !stopped(page) {
		t.Fatalf("page after the answer stopped:\n%s", page)
	}
}

// TestOversizedMessageRefused sends a message larger than the context window: refused at send with its
// size and the limit, nothing stored; the meter never shows more than the window.
func TestOversizedMessageRefused(t *testing.T) {
	f := newFake()
	f.context = 384
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	resp, body := b.do("POST", "/chat", url.Values{"content": {strings.Repeat("word ", 1200)}})
	if resp.StatusCode != 400 || !strings.Contains(body, "1,216 tokens") || !strings.Contains(body, "context window holds 288.") {
		t.Fatalf("oversized message: status %d: %s", resp.StatusCode, body)
	}
	if n := conversationCount(t, s); n != 0 {
		t.Fatalf("%d conversations stored", n)
	}
	if m := newMeter(1159, 384); m.Used != 384 {
		t.Fatalf("meter shows %d of %d", m.Used, m.Size)
	}
}

// TestUnopenedAnswerHoldsNothing sends a message whose page never opens the answer's stream: it keeps
// a place in the queue, but the model serves others meanwhile.
func TestUnopenedAnswerHoldsNothing(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{MaxQueue: 1})
	b := newBrowser(t, base)
	_, sid, _ := b.send("", "later", false)
	if out := callAPI(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"now"}]}`); out.status != 200 || out.err != nil {
		t.Fatalf("an API request beside an unopened answer: status %d, error %v", out.status, out.err)
	}
	// The reserved place still counts: with the model busy and that place taken, a new chat is refused.
	release := holdModel(t, f, base, 1)
	if resp, body := b.do("POST", "/chat", url.Values{"content": {"refused"}}); resp.StatusCode != 503 {
		t.Fatalf("a send with the model busy and the place reserved: status %d: %s", resp.StatusCode, body)
	}
	release()
	if last := lastEvent(t, b.stream(sid, nil)); last.Name != "done" || !strings.Contains(last.Data, "You said: later") {
		t.Fatalf("the unopened answer, opened at last, ended %s: %s", last.Name, last.Data)
	}
}

// TestStaleTabRefused sends from a page that does not show the conversation's last turns (another tab
// moved it on): refused with 409 and nothing stored; a page that shows them, or a client that does not
// say what it shows, is accepted.
func TestStaleTabRefused(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "first", false)
	b.stream(sid, nil)
	msgs, _ := s.store.Messages(context.Background(), conv)
	stale := itoa(msgs[len(msgs)-1].ID)
	_, sid, _ = b.send(conv, "from the other tab", false) // the other tab moves the chat on
	b.stream(sid, nil)

	resp, body := b.do("POST", "/chat", url.Values{"content": {"from the stale tab"}, "conversation": {conv}, "shown": {stale}})
	if resp.StatusCode != 409 || !strings.Contains(body, "changed in another window") {
		t.Fatalf("send from a stale page: status %d: %s", resp.StatusCode, body)
	}
	// The page is shown the chat as it is now, in place of what it shows.
	if !strings.Contains(body, "You said: from the other tab") || resp.Header.Get("HX-Retarget") != "#messages" || resp.Header.Get("HX-Reswap") != "innerHTML" {
		t.Fatalf("the stale page is not brought up to date: %v %s", resp.Header, body)
	}
	if msgs, _ := s.store.Messages(context.Background(), conv); len(msgs) != 4 {
		t.Fatalf("a refused send was stored: %d messages", len(msgs))
	}
	msgs, _ = s.store.Messages(context.Background(), conv)
	for _, shown := range []string{itoa(msgs[len(msgs)-1].ID), ""} {
		resp, body := b.do("POST", "/chat", url.Values{"content": {"up to date"}, "conversation": {conv}, "shown": {shown}})
		if resp.StatusCode != 200 {
			t.Fatalf("send with shown=%q: status %d: %s", shown, resp.StatusCode, body)
		}
		b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	}
}

// TestLiveSpeed: while an answer streams, the line under it shows the tokens and speed so far, before
// the final stats line.
func TestLiveSpeed(t *testing.T) {
	f := newFake()
	f.delay, f.answerWords = 20*time.Millisecond, 60
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	_, sid, _ := b.send("", "speed", false)
	evs := b.stream(sid, nil)
	live := 0
	for i, ev := range evs {
		if ev.Name == "stats" && i < len(evs)-2 {
			if !regexp.MustCompile(`^\d+ tokens · \d+\.\d tok/s$`).MatchString(ev.Data) {
				t.Fatalf("live stats line %q", ev.Data)
			}
			live++
		}
	}
	if live == 0 {
		t.Fatal("no live speed while the answer streamed (1.2 s of tokens)")
	}
}
