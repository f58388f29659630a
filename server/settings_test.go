package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSettingsValidation sends messages with each setting in and out of range: a value out of range,
// NaN or infinite is refused with a message naming the setting and its range, and nothing reaches the
// model; one in range reaches the engine's request.
func TestSettingsValidation(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	tests := []struct {
		field, value string
		want         string // in the refusal; "" = accepted
	}{
		{"temperature", "0.7", ""},
		{"temperature", "2.5", "Temperature must be a number from 0 to 2"},
		{"temperature", "NaN", "Temperature must be"},
		{"temperature", "-Inf", "Temperature must be"},
		{"top_p", "0.9", ""},
		{"top_p", "0", "Top-p must be a number above 0 and at most 1"},
		{"top_p", "nan", "Top-p must be"},
		{"top_k", "40", ""},
		{"top_k", "4.5", "Top-k must be a whole number"},
		{"top_k", "-1", "Top-k must be"},
		{"min_p", "0.05", ""},
		{"min_p", "Inf", "Min-p must be"},
		{"repeat_penalty", "1.1", ""},
		{"repeat_penalty", "0", "Repeat penalty must be a number above 0"},
		{"max_tokens", "64", ""},
		{"max_tokens", "0", "Max answer tokens must be a whole number from 1"},
		{"max_tokens", "1e3", "Max answer tokens must be"},
		{"system", strings.Repeat("x", maxSystemRunes+1), "the system prompt is 20,001 characters"},
		{"system", "\xff", "not valid UTF-8"},
	}
	for _, tt := range tests {
		before := f.requestCount()
		resp, body := b.do("POST", "/chat", url.Values{"content": {"hello"}, tt.field: {tt.value}})
		if tt.want == "" {
			if resp.StatusCode != 200 {
				t.Errorf("%s=%s: status %d: %s", tt.field, tt.value, resp.StatusCode, body)
				continue
			}
			b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
			continue
		}
		if resp.StatusCode != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s=%q: status %d, body %s; want 400 saying %q", tt.field, tt.value, resp.StatusCode, body, tt.want)
		}
		if f.requestCount() != before {
			t.Errorf("%s=%q reached the model", tt.field, tt.value)
		}
	}
}

// TestSettingsReachEngineAndExport: a chat's system prompt and settings go to the engine with every
// answer, are stored with the conversation, shown on its page and written in its exports.
func TestSettingsReachEngineAndExport(t *testing.T) {
	f := newFake()
	s, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	form := url.Values{"content": {"hello"}, "system": {"You are <b>terse</b>."}, "temperature": {"0.4"}, "top_p": {"0.8"},
		"top_k": {"20"}, "min_p": {"0.1"}, "repeat_penalty": {"1.2"}, "max_tokens": {"5"}}
	resp, body := b.do("POST", "/chat", form)
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %s", resp.StatusCode, body)
	}
	conv := strings.TrimPrefix(resp.Header.Get("HX-Push-Url"), "/c/")
	evs := b.stream(streamAttr.FindStringSubmatch(body)[1], nil)
	r := f.lastRequest()
	p := r.Params
	if len(r.Messages) != 2 || r.Messages[0].Role != "system" || r.Messages[0].Content != "You are <b>terse</b>." ||
		p.Temperature != 0.4 || p.TopP != 0.8 || p.TopK != 20 || p.MinP != 0.1 || p.RepeatPenalty != 1.2 || p.MaxTokens != 5 {
		t.Fatalf("engine request: %+v", r)
	}
	if last := lastEvent(t, evs); !strings.Contains(last.Data, "Cut off at the limit of answer tokens") {
		t.Errorf("an answer cut by max tokens says: %s", last.Data)
	}
	page := b.get("/c/" + conv)
	for _, want := range []string{`You are &lt;b&gt;terse&lt;/b&gt;.</textarea>`, `name="top_k" id="set-top_k" value="20"`, `name="max_tokens" id="set-max_tokens" value="5"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	md := b.get("/c/" + conv + "/export/md")
	for _, want := range []string{"thinking off · temperature 0.4 · top-p 0.8 · top-k 20 · min-p 0.1 · repeat penalty 1.2 · max answer tokens 5", "## System prompt\n\nYou are <b>terse</b>."} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown export lacks %q:\n%s", want, md)
		}
	}
	var js struct {
		System    string   `json:"system"`
		TopK      int      `json:"top_k"`
		MinP      float64  `json:"min_p"`
		MaxTokens int      `json:"max_tokens"`
		Temp      *float64 `json:"temperature"`
	}
	if err := json.Unmarshal([]byte(b.get("/c/"+conv+"/export/json")), &js); err != nil || js.System != "You are <b>terse</b>." ||
		js.TopK != 20 || js.MinP != 0.1 || js.MaxTokens != 5 || js.Temp == nil || *js.Temp != 0.4 {
		t.Fatalf("JSON export: %+v, %v", js, err)
	}
	// A change in the panel is saved to the conversation; an empty field is the default again.
	if resp, body := b.do("POST", "/settings", url.Values{"conversation": {conv}, "system": {"Other"}, "top_k": {""}}); resp.StatusCode != 204 {
		t.Fatalf("settings: %d %s", resp.StatusCode, body)
	}
	c, _ := s.store.Conversation(context.Background(), conv)
	if c.Settings.System != "Other" || c.Settings.TopK != nil || c.Temperature != nil {
		t.Fatalf("after a change: %+v", c)
	}
}

// TestPresetsAndDefaults: presets are saved on the server, applied to a chat, and deleted; the settings
// saved for new chats show on a new chat's page, and serve --system sets its system prompt over them.
func TestPresetsAndDefaults(t *testing.T) {
	for _, flagSystem := range []string{"", "From the flag."} {
		f := newFake()
		s, base := startServer(t, f, Config{System: flagSystem})
		b := newBrowser(t, base)
		ctx := context.Background()
		if flagSystem != "" && !strings.Contains(b.get("/"), flagSystem+"</textarea>") {
			t.Fatalf("--system does not show on a new chat")
		}
		resp, body := b.do("POST", "/presets", url.Values{"preset_name": {"  Code  review "}, "system": {"Review code."}, "top_k": {"30"}, "think": {"on"}})
		if resp.StatusCode != 200 || !strings.Contains(body, `Saved as the preset &#34;Code review&#34;.`) || !strings.Contains(body, `<option value="Code review">`) {
			t.Fatalf("saving a preset: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.do("POST", "/presets", url.Values{"preset_name": {""}}); resp.StatusCode != 400 || !strings.Contains(body, "name") {
			t.Fatalf("a preset without a name: %d %s", resp.StatusCode, body)
		}
		conv, sid, _ := b.send("", "hi", false)
		b.stream(sid, nil)
		resp, body = b.do("POST", "/presets/apply", url.Values{"conversation": {conv}, "preset": {"Code review"}})
		if resp.StatusCode != 200 || !strings.Contains(body, "Review code.</textarea>") {
			t.Fatalf("applying a preset: %d %s", resp.StatusCode, body)
		}
		if c, _ := s.store.Conversation(ctx, conv); c.Settings.System != "Review code." || *c.Settings.TopK != 30 || !c.Think {
			t.Fatalf("the preset did not reach the conversation: %+v", c)
		}
		if resp, _ := b.do("POST", "/presets/apply", url.Values{"preset": {"nope"}}); resp.StatusCode != 404 {
			t.Fatalf("applying a missing preset: %d", resp.StatusCode)
		}
		if resp, body := b.do("POST", "/presets/delete", url.Values{"preset": {"Code review"}}); resp.StatusCode != 200 || strings.Contains(body, `<option value="Code review">`) {
			t.Fatalf("deleting a preset: %d %s", resp.StatusCode, body)
		}
		resp, body = b.do("POST", "/settings/defaults", url.Values{"system": {"Saved default."}, "temperature": {"0.3"}})
		if resp.StatusCode != 200 || !strings.Contains(body, "New chats will start with these settings.") ||
			strings.Contains(body, "serve --system") != (flagSystem != "") {
			t.Fatalf("saving the defaults: %d %s", resp.StatusCode, body)
		}
		page := b.get("/")
		wantSystem := "Saved default."
		if flagSystem != "" {
			wantSystem = flagSystem
		}
		if !strings.Contains(page, wantSystem+"</textarea>") || !strings.Contains(page, `name="temperature" id="set-temperature" value="0.3"`) {
			t.Fatalf("a new chat does not start with the defaults (system %q)", wantSystem)
		}
	}
}

// TestOldDatabaseShows starts the server on a history database written by schema version 2 (the one
// before issue #16): it opens, and the conversation's page shows every current message.
func TestOldDatabaseShows(t *testing.T) {
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join("store", "testdata", "history-v2.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(filepath.Join(dir, "smolchat.db")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, base := startServer(t, newFake(), Config{DataDir: dir})
	page := newBrowser(t, base).get("/c/0123456789abcdef")
	for _, want := range []string{"Old chat", "First question", "First answer, again", "Second question, edited", "Second answer", "temp 0.3"} {
		if !strings.Contains(page, want) {
			t.Errorf("the upgraded conversation's page lacks %q", want)
		}
	}
}

// TestThinkingDefault: the settings saved for new chats carry thinking on, off, or as this browser's
// Thinking switch was last left; a new chat's page and its first answer follow it, and a value that is
// none of these is refused, naming the field.
func TestThinkingDefault(t *testing.T) {
	tests := []struct {
		saved, cookie string // the saved default; the switch as last left ("1" on, "0" off)
		want          bool
	}{
		{"", "1", true}, {"", "0", false}, {"on", "0", true}, {"off", "1", false},
	}
	for _, tt := range tests {
		t.Run(tt.saved+"/"+tt.cookie, func(t *testing.T) {
			f := newFake()
			_, base := startServer(t, f, Config{})
			b := newBrowser(t, base)
			if resp, body := b.do("POST", "/settings/defaults", url.Values{"think_default": {tt.saved}}); resp.StatusCode != 200 ||
				!strings.Contains(body, `<option value="`+tt.saved+`" selected>`) {
				t.Fatalf("saving the defaults: %d %s", resp.StatusCode, body)
			}
			// The switch as last left: a change of it in any chat.
			think := url.Values{}
			if tt.cookie == "1" {
				think.Set("think", "on")
			}
			if resp, body := b.do("POST", "/settings", think); resp.StatusCode != 204 {
				t.Fatalf("the switch: %d %s", resp.StatusCode, body)
			}
			page := b.get("/")
			if checked := strings.Contains(page, `name="think" value="on" checked`); checked != tt.want {
				t.Errorf("a new chat's Thinking switch is on: %v, want %v", checked, tt.want)
			}
			if !strings.Contains(page, `<option value="`+tt.saved+`" selected>`) {
				t.Errorf("the panel does not show the saved default %q", tt.saved)
			}
		})
	}
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	if resp, body := b.do("POST", "/settings/defaults", url.Values{"think_default": {"maybe"}}); resp.StatusCode != 400 || !strings.Contains(body, "think_default") {
		t.Fatalf("think_default=maybe: %d %s", resp.StatusCode, body)
	}
}
