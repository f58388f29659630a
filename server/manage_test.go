package server

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSearchRename: the sidebar's search finds chats by their titles and messages, showing the words
// around a match with the user's text escaped; an empty search lists every chat; a rename changes the
// title (and the page's, on that chat's page) and is what a search finds next.
func TestSearchRename(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	a, sid, _ := b.send("", "Recipe for <b>crème brûlée</b>", false)
	b.stream(sid, nil)
	_, sid, _ = b.send("", "Plan a trip", false)
	b.stream(sid, nil)
	search := func(q string) string {
		t.Helper()
		resp, body := b.do("GET", "/search?q="+url.QueryEscape(q), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("search %q: %d %s", q, resp.StatusCode, body)
		}
		return body
	}
	if got := search("creme"); !strings.Contains(got, `id="conv-`+a+`"`) || strings.Contains(got, "Plan a trip") ||
		!strings.Contains(got, `&lt;b&gt;<mark>crème</mark> brûlée&lt;/b&gt;`) {
		t.Fatalf("search creme: %s", got)
	}
	if got := search("zebra"); !strings.Contains(got, "No chat matches “zebra”.") {
		t.Fatalf("search with no match: %s", got)
	}
	if got := search(""); strings.Count(got, `class="conv`) != 2 {
		t.Fatalf("an empty search lists %d chats: %s", strings.Count(got, `class="conv`), got)
	}
	if resp, form := b.do("GET", "/c/"+a+"/rename", nil); resp.StatusCode != 200 || !strings.Contains(form, `name="title" value="Recipe for &lt;b&gt;crème brûlée&lt;/b&gt;"`) {
		t.Fatalf("rename form: %d %s", resp.StatusCode, form)
	}
	req, _ := http.NewRequest("POST", base+"/c/"+a+"/rename", strings.NewReader(url.Values{"title": {"  Dessert\n notes "}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", b.token)
	req.Header.Set("HX-Current-URL", base+"/c/"+a)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `>Dessert notes</a>`) || !strings.Contains(string(body), `<h1 id="chat-title" class="chat-title" hx-swap-oob="true">Dessert notes</h1>`) {
		t.Fatalf("rename: %d %s", resp.StatusCode, body)
	}
	if c, _ := s.store.Conversation(context.Background(), a); c.Title != "Dessert notes" {
		t.Fatalf("stored title %q", c.Title)
	}
	if got := search("dessert"); !strings.Contains(got, "Dessert notes") {
		t.Fatalf("the new title is not found: %s", got)
	}
	for _, title := range []string{"", "   ", strings.Repeat("x", maxTitleRunes+1)} {
		if resp, body := b.do("POST", "/c/"+a+"/rename", url.Values{"title": {title}}); resp.StatusCode != 400 || !strings.Contains(body, "Not renamed") {
			t.Errorf("rename to %q: %d %s", title, resp.StatusCode, body)
		}
	}
}

// upload posts a file to /import as the page's form does.
func (b *browser) upload(path, name string, data []byte) (*http.Response, string) {
	b.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("file", name)
	fw.Write(data)
	w.Close()
	return b.doBody("POST", path, w.FormDataContentType(), &buf)
}

// TestImport: a chat exported as JSON comes back as a new chat with its messages, settings and stats;
// files that are not such a chat, or whose settings, roles or text are out of bounds, are refused
// saying why, and store nothing.
func TestImport(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	resp, body := b.do("POST", "/chat", url.Values{"content": {"Export me"}, "system": {"Be brief."}, "top_k": {"12"}})
	conv := strings.TrimPrefix(resp.Header.Get("HX-Push-Url"), "/c/")
	b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	exported := b.get("/c/" + conv + "/export/json")

	resp, body = b.upload("/import", "chat.json", []byte(exported))
	id := strings.TrimPrefix(resp.Header.Get("HX-Redirect"), "/c/")
	if resp.StatusCode != 204 || id == "" || id == conv {
		t.Fatalf("import: %d %s (redirect %q)", resp.StatusCode, body, resp.Header.Get("HX-Redirect"))
	}
	ctx := context.Background()
	orig, _ := s.store.Messages(ctx, conv)
	got, _ := s.store.Messages(ctx, id)
	c, _ := s.store.Conversation(ctx, id)
	if len(got) != 2 || got[0].Content != "Export me" || got[1].Content != orig[1].Content || got[1].Thinking != orig[1].Thinking ||
		got[1].Tokens != orig[1].Tokens || c.Title != "Export me" || c.Settings.System != "Be brief." || *c.Settings.TopK != 12 {
		t.Fatalf("the imported chat: %+v %+v", c, got)
	}

	before, _ := s.store.Conversations(ctx, 100)
	for _, tc := range []struct{ file, want string }{
		{"not json", "not a chat exported as JSON"},
		{`{"messages": []}`, "no messages"},
		{`{"messages": [{"role": "system", "content": "x"}]}`, `role &#34;system&#34;`},
		{`{"messages": [{"role": "assistant", "content": "x"}]}`, "does not start with a user message"},
		{`{"temperature": 7, "messages": [{"role": "user", "content": "x"}]}`, "Temperature must be a number from 0 to 2"},
		{`{"top_p": 0, "messages": [{"role": "user", "content": "x"}]}`, "Top-p must be"},
		{`{"messages": [{"role": "user", "content": "x", "finish_reason": "weird"}]}`, "unknown finish_reason"},
		{`{"messages": [{"role": "user", "content": "x", "completion_tokens": -1}]}`, "stats out of range"},
		{"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}]}", "not UTF-8 text"},
	} {
		resp, body := b.upload("/import", "bad.json", []byte(tc.file))
		if resp.StatusCode != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("import %q: %d %s; want 400 saying %q", tc.file, resp.StatusCode, body, tc.want)
		}
	}
	if after, _ := s.store.Conversations(ctx, 100); len(after) != len(before) {
		t.Fatalf("refused imports stored %d conversations", len(after)-len(before))
	}
}

// TestTitleFollowsFirstMessage: editing a chat's first message retitles it (page and sidebar) until the
// user renames the chat; after that an edit leaves the title alone.
func TestTitleFollowsFirstMessage(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	ctx := context.Background()
	conv, sid, _ := b.send("", "Old question", false)
	b.stream(sid, nil)
	first := func() int64 { msgs, _ := s.store.Messages(ctx, conv); return msgs[0].ID }
	edit := func(text string) string {
		t.Helper()
		resp, body := b.do("POST", "/c/"+conv+"/m/"+itoa(first()), url.Values{"content": {text}})
		if resp.StatusCode != 200 {
			t.Fatalf("edit: %d %s", resp.StatusCode, body)
		}
		b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
		return body
	}
	body := edit("New question")
	if c, _ := s.store.Conversation(ctx, conv); c.Title != "New question" || c.Renamed ||
		!strings.Contains(body, `<h1 id="chat-title" class="chat-title" hx-swap-oob="true">New question</h1>`) ||
		!strings.Contains(body, `id="conv-`+conv+`" hx-swap-oob="true"`) {
		t.Fatalf("after editing the first message: title %q; response %s", c.Title, body)
	}
	if resp, _ := b.do("POST", "/c/"+conv+"/rename", url.Values{"title": {"Mine"}}); resp.StatusCode != 200 {
		t.Fatalf("rename: %d", resp.StatusCode)
	}
	body = edit("Third wording")
	if c, _ := s.store.Conversation(ctx, conv); c.Title != "Mine" || !c.Renamed || strings.Contains(body, "chat-title") {
		t.Fatalf("after a rename, an edit retitled the chat: %q", c.Title)
	}
}

// TestImportHostile: an imported chat's title and messages are hostile input: the page, the sidebar and
// a search show them as text.
func TestImportHostile(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	file := `{"title": "<img src=x onerror=alert(1)>", "messages": [
		{"role": "user", "content": "<script>alert(2)</script> payload"},
		{"role": "assistant", "content": "<iframe src=javascript:alert(3)></iframe> payload"}]}`
	resp, body := b.upload("/import", "x.json", []byte(file))
	if resp.StatusCode != 204 {
		t.Fatalf("import: %d %s", resp.StatusCode, body)
	}
	page := b.get(resp.Header.Get("HX-Redirect"))
	_, found := b.do("GET", "/search?q=payload", nil)
	for _, html := range []string{page, found} {
		for _, bad := range []string{"<img src=x", "<script>alert", "<iframe"} {
			if strings.Contains(html, bad) {
				t.Errorf("%q reached the HTML unescaped", bad)
			}
		}
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") || !strings.Contains(found, "&lt;script&gt;alert(2)&lt;/script&gt; <mark>payload</mark>") {
		t.Errorf("the hostile text is not shown as text:\n%s\n%s", page, found)
	}
}
