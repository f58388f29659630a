package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/server/store"
)

// browser is an HTTP client that behaves like the page: it keeps cookies and sends the CSRF token and
// htmx's headers.
type browser struct {
	t      testing.TB
	base   string
	client *http.Client
	token  string
}

var metaToken = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func newBrowser(t testing.TB, base string) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, base: base, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
	b.loadToken(b.get("/"))
	return b
}

// loadToken takes the CSRF token from a page.
func (b *browser) loadToken(page string) {
	b.t.Helper()
	m := metaToken.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatal("page has no CSRF token")
	}
	b.token = m[1]
	if !strings.Contains(page, `hx-headers='{"X-CSRF-Token": "`+b.token+`"}'`) {
		b.t.Fatal("page does not send the CSRF token with htmx requests")
	}
}

func (b *browser) get(path string) string {
	b.t.Helper()
	resp, err := b.client.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// do sends an htmx request with the given form fields and returns the response and its body.
func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	return b.doBody(method, path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// doBody sends an htmx request with a body of the given type and returns the response and its body.
func (b *browser) doBody(method, path, contentType string, body io.Reader) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.token)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp, string(got)
}

var streamAttr = regexp.MustCompile(`sse-connect="/stream/([0-9a-f]+)"`)

// send posts a chat message and returns the conversation and stream IDs from the response.
func (b *browser) send(conv, text string, think bool) (convID, streamID, body string) {
	b.t.Helper()
	form := url.Values{"content": {text}, "conversation": {conv}}
	if think {
		form.Set("think", "on")
	}
	resp, body := b.do("POST", "/chat", form)
	if resp.StatusCode != 200 {
		b.t.Fatalf("send: status %d: %s", resp.StatusCode, body)
	}
	m := streamAttr.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("send: no stream in %s", body)
	}
	convID = conv
	if p := resp.Header.Get("HX-Push-Url"); p != "" {
		convID = strings.TrimPrefix(p, "/c/")
	}
	return convID, m[1], body
}

// stream reads a browser stream to its end; onEvent (may be nil) sees each event as it arrives.
func (b *browser) stream(id string, onEvent func(sseEvent)) []sseEvent {
	b.t.Helper()
	resp, err := b.client.Get(b.base + "/stream/" + id)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs []sseEvent
	readSSE(b.t, resp.Body, func(ev sseEvent) bool {
		evs = append(evs, ev)
		if onEvent != nil {
			onEvent(ev)
		}
		return ev.Name != "done" && ev.Name != "failed"
	})
	return evs
}

// openStream connects to a browser stream and reads it until n answer tokens have arrived; the caller
// closes the response (the page goes away) or reads on.
func (b *browser) openStream(id string, n int) *http.Response {
	b.t.Helper()
	resp, err := b.client.Get(b.base + "/stream/" + id)
	if err != nil {
		b.t.Fatal(err)
	}
	answers := 0
	readSSE(b.t, resp.Body, func(ev sseEvent) bool {
		if ev.Name == "answer-open" {
			answers++
		}
		return answers < n
	})
	return resp
}

func eventData(evs []sseEvent, name string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Name == name {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// streamed is the HTML a page shows of an answer's part ("answer" or "thinking") once the events of
// evs are applied, before the last one: a P-all event's, then the finished blocks, then the open one.
func streamed(evs []sseEvent, part string) string {
	var blocks, open string
	for _, e := range evs {
		switch e.Name {
		case part + "-all": // the finished blocks, then the open one in its element
			m := openDiv.FindStringSubmatchIndex(e.Data)
			blocks, open = e.Data[:m[0]], strings.TrimSuffix(e.Data[m[1]:], "</div>")
		case part + "-blocks":
			blocks += e.Data
		case part + "-open":
			open = e.Data
		}
	}
	return blocks + open
}

var openDiv = regexp.MustCompile(`<div class="md-open" id="[a-z]-open-[0-9a-f]+">`)

func lastEvent(t testing.TB, evs []sseEvent) sseEvent {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	return evs[len(evs)-1]
}

func TestPageAndCSRF(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	b := newBrowser(t, base)
	page := b.get("/")
	for _, want := range []string{`id="composer"`, `hx-post="/chat"`, `role="switch"`, `SmolLM3-3B-Q4_K_M`, `GPU`, `/assets/app.js?v=`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	form := url.Values{"content": {"hi"}}
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"no token", nil},
		{"wrong token", map[string]string{"X-CSRF-Token": strings.Repeat("A", 43)}},
		{"foreign origin", map[string]string{"X-CSRF-Token": b.token, "Origin": "http://evil.example"}},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", base+"/chat", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: status %d, want 403", tt.name, resp.StatusCode)
		}
	}
	// Another browser's token does not fit this browser's cookie.
	other := newBrowser(t, base)
	b.token, other.token = other.token, b.token
	if resp, _ := b.do("POST", "/chat", form); resp.StatusCode != 403 {
		t.Errorf("token of another session: status %d, want 403", resp.StatusCode)
	}
}

func TestChatFlow(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)

	conv, sid, body := b.send("", "Hello <b>world</b>", true)
	if conv == "" {
		t.Fatal("a first message must create a conversation (HX-Push-Url)")
	}
	for _, want := range []string{"Hello &lt;b&gt;world&lt;/b&gt;", `hx-swap-oob="afterbegin:#conversation-list"`, `id="chat-title"`} {
		if !strings.Contains(body, want) {
			t.Errorf("send response lacks %q", want)
		}
	}
	evs := b.stream(sid, nil)
	if a := streamed(evs, "answer"); strings.Contains(a, "<b>") || !strings.Contains(a, "&lt;b&gt;world") {
		t.Fatalf("the streamed answer must show markup as text: %q", a)
	}
	if th := streamed(evs, "thinking"); !strings.HasPrefix(th, "<p>Thinking step 0.") {
		t.Fatalf("the streamed reasoning = %q", th)
	}
	var order []string
	for _, e := range evs {
		name, _, _ := strings.Cut(e.Name, "-") // thinking-open, thinking-blocks: thinking
		if len(order) == 0 || order[len(order)-1] != name {
			order = append(order, name)
		}
	}
	if strings.Join(order, ",") != "thinking,answer,stats,done" {
		t.Fatalf("event order = %v", order)
	}
	done := lastEvent(t, evs)
	if !strings.Contains(done.Data, `class="msg assistant"`) || !strings.Contains(done.Data, "Thought process") ||
		!strings.Contains(done.Data, "tok/s") {
		t.Fatalf("done event = %s", done.Data)
	}
	if stats := eventData(evs, "stats"); !strings.Contains(stats, `id="context-meter" hx-swap-oob="true"`) {
		t.Fatalf("stats event must update the context meter: %s", stats)
	}
	if r := f.lastRequest(); r.Think == nil || !*r.Think || r.Params.Temperature != engine.DefaultSamplerParams().Temperature {
		t.Fatalf("engine request: think %s, params %+v", ptrStr(r.Think), r.Params)
	}

	// Second turn in the same conversation with thinking off: the history goes to the engine.
	_, sid, _ = b.send(conv, "second question", false)
	b.stream(sid, nil)
	r := f.lastRequest()
	if r.Think == nil || *r.Think || len(r.Messages) != 3 || r.Messages[1].Role != "assistant" ||
		r.Messages[1].Content != f.expectedAnswer("Hello <b>world</b>") {
		t.Fatalf("second turn: think %s, messages %+v", ptrStr(r.Think), r.Messages)
	}

	// The history survives in the database and renders on the page.
	page := b.get("/c/" + conv)
	for _, want := range []string{"Hello &lt;b&gt;world&lt;/b&gt;", "second question", "Thought process", "tok/s", `aria-current="page"`} {
		if !strings.Contains(page, want) {
			t.Errorf("conversation page lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>world</b>") {
		t.Error("user text reached the page unescaped")
	}
	msgs, err := s.store.Messages(context.Background(), conv)
	if err != nil || len(msgs) != 4 || msgs[3].FinishReason != "stop" || msgs[3].Tokens == 0 {
		t.Fatalf("stored messages = %+v, %v", msgs, err)
	}
}

func TestStopKeepsPartialAnswer(t *testing.T) {
	f := newFake()
	f.delay = 15 * time.Millisecond
	f.answerWords = 200
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "long story", false)
	answers := 0
	evs := b.stream(sid, func(ev sseEvent) {
		if ev.Name == "answer-open" {
			if answers++; answers == 3 {
				if resp, _ := b.do("POST", "/stream/"+sid+"/cancel", nil); resp.StatusCode != 204 {
					t.Errorf("cancel: status %d", resp.StatusCode)
				}
			}
		}
	})
	done := lastEvent(t, evs)
	if done.Name != "done" || !strings.Contains(done.Data, "Stopped.") {
		t.Fatalf("final event = %+v", done)
	}
	msgs, _ := s.store.Messages(context.Background(), conv)
	if len(msgs) != 2 || msgs[1].FinishReason != engine.FinishCancelled || !strings.HasPrefix(msgs[1].Content, "You said: long story") {
		t.Fatalf("stored = %+v", msgs)
	}
	if n := strings.Count(msgs[1].Content, "#"); n > 20 {
		t.Fatalf("stop did not stop the generation: %d tokens kept", n)
	}
	if _, ok := f.waitIdle(time.Second); !ok {
		t.Fatal("generator still busy after stop")
	}
}

func TestRegenerateEditDelete(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	ctx := context.Background()
	conv, sid, _ := b.send("", "first", true)
	b.stream(sid, nil)
	_, sid, _ = b.send(conv, "second", true)
	b.stream(sid, nil)

	// Regenerate replaces the last answer.
	resp, body := b.do("POST", "/c/"+conv+"/regenerate", nil)
	m := streamAttr.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("regenerate: status %d: %s", resp.StatusCode, body)
	}
	before, _ := s.store.Messages(ctx, conv)
	if len(before) != 4 || before[3].Role != "assistant" {
		t.Fatalf("regenerate must keep the old answer until the new one is saved: %+v", before)
	}
	// While it streams, the conversation refuses another change.
	if resp, _ := b.do("POST", "/chat", url.Values{"content": {"again"}, "conversation": {conv}}); resp.StatusCode != 409 {
		t.Fatalf("send during an answer: status %d, want 409", resp.StatusCode)
	}
	b.stream(m[1], nil)
	msgs, _ := s.store.Messages(ctx, conv)
	if len(msgs) != 4 || msgs[3].Role != "assistant" || msgs[3].ID == before[3].ID {
		t.Fatalf("after regenerate: %+v", msgs)
	}

	// Edit the first message: later turns go, a new answer streams.
	first := msgs[0]
	_, form := b.do("GET", "/c/"+conv+"/m/"+itoa(first.ID)+"/edit", nil)
	if !strings.Contains(form, `<textarea id="edit-`) || !strings.Contains(form, ">first</textarea>") {
		t.Fatalf("edit form = %s", form)
	}
	resp, body = b.do("POST", "/c/"+conv+"/m/"+itoa(first.ID), url.Values{"content": {"first, edited"}})
	m = streamAttr.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil || !strings.Contains(body, "first, edited") || strings.Contains(body, "second") {
		t.Fatalf("edit: status %d: %s", resp.StatusCode, body)
	}
	b.stream(m[1], nil)
	if r := f.lastRequest(); len(r.Messages) != 1 || r.Messages[0].Content != "first, edited" {
		t.Fatalf("edited request = %+v", r.Messages)
	}

	// Exports.
	md := b.get("/c/" + conv + "/export/md")
	if !strings.HasPrefix(md, "# first, edited\n") || !strings.Contains(md, "## You\n\nfirst, edited") || !strings.Contains(md, "\n## Assistant\n") ||
		!strings.Contains(md, "<summary>Thought process</summary>") {
		t.Fatalf("markdown export:\n%s", md)
	}
	var exp exportedConversation
	if err := json.Unmarshal([]byte(b.get("/c/"+conv+"/export/json")), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.ID != conv || len(exp.Messages) != 2 || exp.Messages[1].Thinking == "" || exp.Messages[1].Tokens == 0 {
		t.Fatalf("json export = %+v", exp)
	}

	// Delete: from the conversation's own page, the browser is sent home.
	req, _ := http.NewRequest("DELETE", base+"/c/"+conv, nil)
	req.Header.Set("X-CSRF-Token", b.token)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Current-URL", base+"/c/"+conv)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("HX-Redirect") != "/" {
		t.Fatalf("delete: status %d, HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
	if _, err := s.store.Conversation(ctx, conv); err == nil {
		t.Fatal("conversation survived its deletion")
	}
	resp, _ = b.client.Get(base + "/c/" + conv)
	if resp.StatusCode != 404 {
		t.Fatalf("deleted conversation page: status %d", resp.StatusCode)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSlashCommands(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	ctx := context.Background()
	conv, sid, _ := b.send("", "hi", true)
	b.stream(sid, nil)
	cmd := func(text string) (*http.Response, string) {
		return b.do("POST", "/chat", url.Values{"content": {text}, "conversation": {conv}, "think": {"on"}})
	}
	tests := []struct {
		text   string
		status int
		want   string // in the body, or the HX-Redirect header
		check  func(store.Conversation) bool
	}{
		{"/help", 200, "/no_think", nil},
		{"/no_think", 200, "Thinking is off", func(c store.Conversation) bool { return !c.Think }},
		{"/think", 200, "Thinking is on", func(c store.Conversation) bool { return c.Think }},
		{"/temp 0.3", 200, "temp 0.3", func(c store.Conversation) bool { return c.Temperature != nil && *c.Temperature == 0.3 }},
		{"/temp 9", 400, "from 0 to 2", nil},
		{"/temp", 200, "reset", func(c store.Conversation) bool { return c.Temperature == nil }},
		{"/clear", 200, "/", nil},
		{"/export", 200, "/c/" + conv + "/export/md", nil},
	}
	for _, tt := range tests {
		resp, body := cmd(tt.text)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.text, resp.StatusCode, tt.status, body)
			continue
		}
		if !strings.Contains(body, tt.want) && resp.Header.Get("HX-Redirect") != tt.want {
			t.Errorf("%s: response lacks %q: %s (HX-Redirect %q)", tt.text, tt.want, body, resp.Header.Get("HX-Redirect"))
		}
		if tt.check != nil {
			c, _ := s.store.Conversation(ctx, conv)
			if !tt.check(c) {
				t.Errorf("%s: conversation settings = %+v", tt.text, c)
			}
		}
	}
	if n := f.requestCount(); n != 1 {
		t.Fatalf("slash commands reached the model: %d requests", n)
	}
	// A message that only starts with a slash is a message.
	if _, _, body := b.send(conv, "/usr/bin is a directory", true); !strings.Contains(body, "/usr/bin is a directory") {
		t.Fatalf("slash-prefixed message: %s", body)
	}
}

func TestSettingsToggle(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "hi", true)
	b.stream(sid, nil)
	if resp, _ := b.do("POST", "/settings", url.Values{"conversation": {conv}}); resp.StatusCode != 204 {
		t.Fatalf("settings: status %d", resp.StatusCode)
	}
	if c, _ := s.store.Conversation(context.Background(), conv); c.Think {
		t.Fatal("thinking toggle not stored")
	}
	// The toggle is remembered for new chats in this browser, and for the conversation on reload.
	if page := b.get("/"); strings.Contains(page, `name="think" value="on" checked`) {
		t.Fatal("new chat ignores the remembered toggle")
	}
	if page := b.get("/c/" + conv); strings.Contains(page, `name="think" value="on" checked`) {
		t.Fatal("conversation page ignores the stored toggle")
	}
}

func TestUIWhileLoading(t *testing.T) {
	s, base := startServer(t, nil, Config{})
	s.SetLoadProgress(0.25, "reading tensors")
	b := newBrowser(t, base)
	page := b.get("/")
	if !strings.Contains(page, "Loading model… 25%") || !strings.Contains(page, `hx-get="/status" hx-trigger="every 1s"`) {
		t.Fatal("page does not show loading progress")
	}
	if !strings.Contains(page, `placeholder="Message the model…"`) {
		t.Error("while loading, the composer should not name a model")
	}
	resp, body := b.do("POST", "/chat", url.Values{"content": {"hi"}})
	if resp.StatusCode != 503 || !strings.Contains(body, "loading") || resp.Header.Get("HX-Retarget") != "#messages" {
		t.Fatalf("send while loading: status %d, body %s", resp.StatusCode, body)
	}
	s.SetGenerator(newFake())
	_, status := b.do("GET", "/status", nil)
	if strings.Contains(status, `hx-trigger="every 1s"`) || !strings.Contains(status, "SmolLM3-3B-Q4_K_M") || !strings.Contains(status, `id="context-meter" hx-swap-oob="true"`) {
		t.Fatalf("status once ready = %s", status)
	}
	if !strings.Contains(status, `id="composer-settings" hx-swap-oob="true"`) || !strings.Contains(status, `role="switch"`) {
		t.Errorf("status once ready does not bring the composer's settings with the thinking toggle: %s", status)
	}
	// The page names the model that is loaded, whatever it is.
	if page := b.get("/"); !strings.Contains(page, `placeholder="Message SmolLM3-3B-Q4_K_M…"`) || !strings.Contains(page, `<span id="empty-state-model">SmolLM3-3B-Q4_K_M</span> runs on this computer`) {
		t.Error("the ready page does not name the loaded model in the composer and the empty state")
	}

	// A model without a reasoning mode loaded under an open page: its thinking toggle goes away.
	s2, base2 := startServer(t, nil, Config{})
	s2.SetLoadProgress(0.5, "reading tensors")
	b2 := newBrowser(t, base2)
	if page := b2.get("/"); !strings.Contains(page, `role="switch"`) {
		t.Fatal("the loading page has no thinking toggle to take away")
	}
	plain := newFake()
	plain.noReasoning = true
	s2.SetGenerator(plain)
	_, status = b2.do("GET", "/status", nil)
	if !strings.Contains(status, `id="composer-settings" hx-swap-oob="true"`) || strings.Contains(status, `role="switch"`) {
		t.Errorf("status once a model without reasoning is ready: %s", status)
	}
}

func TestUnknownStream(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	b := newBrowser(t, base)
	evs := b.stream("0123456789abcdef", nil)
	if ev := lastEvent(t, evs); ev.Name != "failed" || !strings.Contains(ev.Data, "no longer streaming") {
		t.Fatalf("unknown stream: %+v", evs)
	}
}

func TestBrowserQueuePosition(t *testing.T) {
	f := newFake()
	f.resume, f.pauseAt = make(chan struct{}), 1
	var resumeOnce sync.Once
	resume := func() { resumeOnce.Do(func() { close(f.resume) }) }
	t.Cleanup(resume)
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	// An API request holds the model, paused mid-answer; the browser's answer waits and is told its
	// place, and then the API answer goes on. (Ten seconds without a queue event let it go on anyway,
	// and the test fails on the events.)
	resp := postJSON(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"busy"}]}`)
	defer resp.Body.Close()
	_, sid, _ := b.send("", "queued question", false)
	timer := time.AfterFunc(10*time.Second, resume)
	defer timer.Stop()
	evs := b.stream(sid, func(ev sseEvent) {
		if ev.Name == "queue" {
			resume()
		}
	})
	if q := eventData(evs, "queue"); !strings.Contains(q, "you are next") {
		t.Fatalf("queue events = %q", q)
	}
	if lastEvent(t, evs).Name != "done" {
		t.Fatalf("queued answer did not finish: %+v", lastEvent(t, evs))
	}
}

func TestReloadPicksUpPendingAnswer(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "sent just before a reload", true)
	// The page reloads before its EventSource connected: the new page carries the same answer.
	page := b.get("/c/" + conv)
	if !strings.Contains(page, `sse-connect="/stream/`+sid+`"`) {
		t.Fatal("a reloaded page does not pick up the answer still waiting for its stream")
	}
	if ev := lastEvent(t, b.stream(sid, nil)); ev.Name != "done" {
		t.Fatalf("final event = %+v", ev)
	}
	if page := b.get("/c/" + conv); strings.Contains(page, "sse-connect") {
		t.Fatal("a finished answer is still offered as a stream")
	}
}

func TestGracefulShutdown(t *testing.T) {
	f := newFake()
	f.delay = 10 * time.Millisecond
	f.answerWords = 100000
	dir := t.TempDir()
	s, base := startServer(t, f, Config{DataDir: dir})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "endless answer", false)
	uiEvents := make(chan []sseEvent, 1)
	flowing := make(chan struct{})
	go func() {
		var once sync.Once
		uiEvents <- b.stream(sid, func(ev sseEvent) {
			if ev.Name == "answer-open" {
				once.Do(func() { close(flowing) })
			}
		})
	}()
	<-flowing
	// An API stream waits behind the browser's answer.
	api := postJSON(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"queued"}]}`)
	defer api.Body.Close()
	for deadline := time.Now().Add(2 * time.Second); s.queue.waitingCount() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the API request never queued")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	evs := <-uiEvents
	if ev := lastEvent(t, evs); ev.Name != "failed" || !strings.Contains(ev.Data, "shut down") {
		t.Fatalf("the browser stream ended with %+v", ev)
	}
	var apiChunks []string
	readSSE(t, api.Body, func(ev sseEvent) bool { apiChunks = append(apiChunks, ev.Data); return true })
	if len(apiChunks) == 0 || !strings.Contains(apiChunks[len(apiChunks)-1], `"error"`) ||
		!strings.Contains(apiChunks[len(apiChunks)-1], "shutting down") {
		t.Fatalf("the queued API stream ended with %q", apiChunks)
	}
	if _, ok := f.waitIdle(time.Second); !ok {
		t.Fatal("a generation outlived the shutdown")
	}
	// The partial answer was saved before the database closed.
	st, err := store.Open(filepath.Join(dir, "smolchat.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msgs, err := st.Messages(context.Background(), conv)
	if err != nil || len(msgs) != 2 || msgs[1].FinishReason != engine.FinishCancelled || msgs[1].Content == "" {
		t.Fatalf("after shutdown the conversation holds %+v (%v)", msgs, err)
	}
	if _, err := httpClient.Get(base + "/health"); err == nil {
		t.Fatal("the server still accepts connections after Shutdown")
	}
}
