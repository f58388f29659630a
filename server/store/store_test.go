package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "history.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestConversationLifecycle(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	temp := 0.3
	c, u, err := s.CreateConversation(ctx, Conversation{Title: "Hello", Think: true, Temperature: &temp},
		Message{Role: "user", Content: "Hi <b>there</b>"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.CreatedAt.IsZero() || u.ConversationID != c.ID || u.ID == 0 {
		t.Fatalf("created conversation lacks id or time: %+v, first message %+v", c, u)
	}
	a, err := s.AddMessage(ctx, Message{ConversationID: c.ID, Role: "assistant", Content: "Hello!", Thinking: "greet",
		FinishReason: "stop", PromptTokens: 12, Tokens: 3, TokensPerSec: 41.5, TTFT: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID <= u.ID {
		t.Fatalf("message ids not increasing: %d then %d", u.ID, a.ID)
	}

	// Reopen: history must survive a restart.
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Conversation(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Title != "Hello" || !got.Think || got.Temperature == nil || *got.Temperature != 0.3 {
		t.Fatalf("conversation after reopen = %+v", got)
	}
	msgs, err := s2.Messages(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m := msgs[1]
	if m.Role != "assistant" || m.Content != "Hello!" || m.Thinking != "greet" || m.FinishReason != "stop" ||
		m.PromptTokens != 12 || m.Tokens != 3 || m.TokensPerSec != 41.5 || m.TTFT != 250*time.Millisecond {
		t.Fatalf("assistant message after reopen = %+v", m)
	}
	if msgs[0].Content != "Hi <b>there</b>" {
		t.Fatalf("user content = %q", msgs[0].Content)
	}

	got.Think, got.Temperature, got.Title = false, nil, "Renamed"
	if err := s2.UpdateSettings(ctx, got); err != nil {
		t.Fatal(err)
	}
	got2, _ := s2.Conversation(ctx, c.ID)
	if got2.Think || got2.Temperature != nil || got2.Title != "Renamed" {
		t.Fatalf("settings not stored: %+v", got2)
	}

	if err := s2.DeleteConversation(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Conversation(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: err = %v, want ErrNotFound", err)
	}
	if msgs, _ := s2.Messages(ctx, c.ID); len(msgs) != 0 {
		t.Fatalf("messages survive their conversation: %d", len(msgs))
	}
}

// newConv creates a conversation whose turns have the given roles; it returns the conversation's ID and
// the messages' IDs.
func newConv(t *testing.T, s *Store, roles ...string) (string, []int64) {
	t.Helper()
	ctx := context.Background()
	c, first, err := s.CreateConversation(ctx, Conversation{Title: "t"}, Message{Role: roles[0], Content: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{first.ID}
	for i, role := range roles[1:] {
		m, err := s.AddMessage(ctx, Message{ConversationID: c.ID, Role: role, Content: string(rune('b' + i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return c.ID, ids
}

// contents lists the contents of a conversation's current messages.
func contents(t *testing.T, s *Store, conv string) []string {
	t.Helper()
	msgs, err := s.Messages(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Content)
	}
	return out
}

// versions lists the versions of each message of a conversation's branch, as the page's switchers show
// them: "2/3" for the second of three.
func versions(t *testing.T, s *Store, conv string) []string {
	t.Helper()
	msgs, err := s.Messages(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d/%d", slices.Index(m.Versions, m.ID)+1, len(m.Versions)))
	}
	return out
}

// TestVersions: an edit makes a new branch from the edited turn, a regeneration a new version of the
// answer; every version is kept, and showing an earlier one brings back the turns that followed it.
func TestVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	conv, ids := newConv(t, s, "user", "assistant", "user", "assistant")
	edited, err := s.EditMessage(ctx, conv, ids[2], "edited")
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a", "b", "edited"}) || edited.Role != "user" || edited.ParentID != ids[1] {
		t.Fatalf("after edit: %q (new message %+v)", got, edited)
	}
	ans, err := s.AddMessage(ctx, Message{ConversationID: conv, Role: "assistant", Content: "answer to the edit"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.ReplaceMessage(ctx, ans.ID, Message{ConversationID: conv, Role: "assistant", Content: "again"})
	if err != nil {
		t.Fatal(err)
	}
	// A failed regeneration is kept as a version without being shown.
	if _, err := s.AddMessage(ctx, Message{ConversationID: conv, Role: "assistant", Content: "failed", ReplacedBy: again.ID}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		show     int64 // 0: look only
		contents []string
		versions []string
	}{
		{0, []string{"a", "b", "edited", "again"}, []string{"1/1", "1/1", "2/2", "2/3"}},
		{ids[2], []string{"a", "b", "c", "d"}, []string{"1/1", "1/1", "1/2", "1/1"}},
		// Back to the edit: the way below it as last shown ("again", not the newer failed one).
		{edited.ID, []string{"a", "b", "edited", "again"}, []string{"1/1", "1/1", "2/2", "2/3"}},
		{ans.ID, []string{"a", "b", "edited", "answer to the edit"}, []string{"1/1", "1/1", "2/2", "1/3"}},
	}
	for _, st := range steps {
		if st.show != 0 {
			if err := s.ShowVersion(ctx, conv, st.show); err != nil {
				t.Fatal(err)
			}
		}
		if got := contents(t, s, conv); !slices.Equal(got, st.contents) {
			t.Fatalf("showing %d: branch %q, want %q", st.show, got, st.contents)
		}
		if got := versions(t, s, conv); !slices.Equal(got, st.versions) {
			t.Fatalf("showing %d: versions %q, want %q", st.show, got, st.versions)
		}
	}
	// The conversation goes on from the branch shown.
	if _, err := s.AddMessage(ctx, Message{ConversationID: conv, Role: "user", Content: "next"}); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a", "b", "edited", "answer to the edit", "next"}) {
		t.Fatalf("after a message on the branch shown: %q", got)
	}
	if err := s.ShowVersion(ctx, conv, 9999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("showing a missing message: %v", err)
	}
	if all, _ := s.AllMessages(ctx, conv); len(all) != 9 {
		t.Fatalf("%d messages in the tree, want 9", len(all))
	}
}

// TestFullDiskLeavesNothingHalfDone fills the database (SQLite's own SQLITE_FULL, from a page limit) and
// checks that a failed write changes nothing, that the error says why, and that writes work again once
// there is room.
func TestFullDiskLeavesNothingHalfDone(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	conv, ids := newConv(t, s, "user", "assistant")
	// max_page_count belongs to a connection: keep one, so that the limit holds for every write.
	s.db.SetMaxOpenConns(1)
	var pages int
	if err := s.db.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10) // needs new pages
	_, _, err := s.CreateConversation(ctx, Conversation{Title: "new"}, Message{Role: "user", Content: big})
	if err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("create on a full database: err = %v, want a 'full' error", err)
	}
	if list, _ := s.Conversations(ctx, 10); len(list) != 1 {
		t.Fatalf("a failed create left %d conversations, want 1", len(list))
	}
	if _, err := s.ReplaceMessage(ctx, ids[1], Message{ConversationID: conv, Role: "assistant", Content: big}); err == nil {
		t.Fatal("replace on a full database succeeded")
	}
	if _, err := s.EditMessage(ctx, conv, ids[0], big); err == nil {
		t.Fatal("edit on a full database succeeded")
	}
	c, _ := s.Conversation(ctx, conv)
	c.Title = "renamed"
	if _, err := s.AddTurn(ctx, c, Message{Role: "user", Content: big}); err == nil {
		t.Fatal("adding a turn on a full database succeeded")
	}
	if c, _ := s.Conversation(ctx, conv); c.Title != "t" {
		t.Fatalf("a failed turn changed the settings: title %q", c.Title)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("failed writes changed the conversation: %q", got)
	}
	// Room again: writes succeed.
	if _, err := s.db.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceMessage(ctx, ids[1], Message{ConversationID: conv, Role: "assistant", Content: big}); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
}

// writeOldDatabase writes the database of testdata/history-v2.sql at path, made older by the SQL in older
// (run after it).
func writeOldDatabase(t *testing.T, path string, older ...string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("testdata", "history-v2.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append([]string{string(script)}, older...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("writing the old database: %v", err)
		}
	}
}

// TestUpgrade opens databases of every earlier schema version: each keeps all its messages, shows the
// same current turns, and comes out at the current version.
func TestUpgrade(t *testing.T) {
	for _, tc := range []struct {
		version int
		older   []string // turns the version 2 fixture into this version
	}{
		{2, nil},
		// Version 1 had no replaced_by: every message was current.
		{1, []string{`DELETE FROM messages WHERE replaced_by IS NOT NULL`, `ALTER TABLE messages DROP COLUMN replaced_by`, `PRAGMA user_version = 1`}},
	} {
		t.Run(fmt.Sprintf("v%d", tc.version), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "old.db")
			writeOldDatabase(t, path, tc.older...)
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var v, n int
			s.db.QueryRow(`PRAGMA user_version`).Scan(&v)
			if v != schemaVersion {
				t.Fatalf("user_version = %d, want %d", v, schemaVersion)
			}
			s.db.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&n)
			if want := map[int]int{1: 4, 2: 7}[tc.version]; n != want {
				t.Fatalf("%d messages after the upgrade, want %d", n, want)
			}
			const id = "0123456789abcdef"
			c, err := s.Conversation(ctx, id)
			if err != nil || c.Title != "Old chat" || !c.Think || c.Temperature == nil || *c.Temperature != 0.3 || c.Settings != (Settings{}) || c.Renamed {
				t.Fatalf("conversation after the upgrade: %+v, %v", c, err)
			}
			want := []string{"First question", "First answer, again", "Second question, edited", "Second answer"}
			if got := contents(t, s, id); !slices.Equal(got, want) {
				t.Fatalf("current turns after the upgrade: %q, want %q", got, want)
			}
			if tc.version == 2 {
				// Every version of the fixture has its place in the tree.
				if got, want := versions(t, s, id), []string{"1/1", "2/2", "2/2", "1/1"}; !slices.Equal(got, want) {
					t.Fatalf("versions after the upgrade: %q, want %q", got, want)
				}
				if err := s.ShowVersion(ctx, id, 4); err != nil {
					t.Fatal(err)
				}
				if got, want := contents(t, s, id), []string{"First question", "First answer, again", "Second question", "Answer to the first wording"}; !slices.Equal(got, want) {
					t.Fatalf("the edited question's first version after the upgrade: %q, want %q", got, want)
				}
				if err := s.ShowVersion(ctx, id, 7); err != nil {
					t.Fatal(err)
				}
			}
			msgs, _ := s.Messages(ctx, id)
			if m := msgs[1]; m.Tokens != 6 || m.TokensPerSec != 11 || m.TTFT != 250*time.Millisecond || m.FinishReason != "stop" {
				t.Fatalf("an answer's stats after the upgrade: %+v", m)
			}
			// The upgraded database's messages, of every version, are indexed for search.
			if hits, err := s.Search(ctx, "edited", 10); err != nil || len(hits) != 1 || hits[0].ID != id {
				t.Fatalf("search after the upgrade: %+v, %v", hits, err)
			}
			// The upgraded database takes the new settings.
			c.Settings.System = "Be brief."
			if err := s.UpdateSettings(ctx, c); err != nil {
				t.Fatal(err)
			}
			if c, _ := s.Conversation(ctx, id); c.Settings.System != "Be brief." {
				t.Fatalf("system prompt after the upgrade: %q", c.Settings.System)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	c, _, _ := s.CreateConversation(ctx, Conversation{Title: "t"}, Message{Role: "user"})
	tests := []struct {
		name string
		err  error
	}{
		{"conversation", func() error { _, err := s.Conversation(ctx, "nope"); return err }()},
		{"message", func() error { _, err := s.Message(ctx, c.ID, 99); return err }()},
		{"delete conversation", s.DeleteConversation(ctx, "nope")},
		{"edit message", func() error { _, err := s.EditMessage(ctx, c.ID, 99, "x"); return err }()},
		{"replace in missing conversation", func() error {
			_, err := s.ReplaceMessage(ctx, 1, Message{ConversationID: "nope", Role: "assistant"})
			return err
		}()},
		{"message in missing conversation", func() error {
			_, err := s.AddMessage(ctx, Message{ConversationID: "nope", Role: "user", Content: "x"})
			return err
		}()},
		{"settings of missing conversation", s.UpdateSettings(ctx, Conversation{ID: "nope"})},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tt.name, tt.err)
		}
	}
}

func TestConversationsOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	clock := time.Now()
	s.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock } // each write a millisecond later
	a, _, _ := s.CreateConversation(ctx, Conversation{Title: "a"}, Message{Role: "user"})
	b, _, _ := s.CreateConversation(ctx, Conversation{Title: "b"}, Message{Role: "user"})
	if _, err := s.AddMessage(ctx, Message{ConversationID: a.ID, Role: "user", Content: "bump"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.Conversations(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, c := range list {
		titles = append(titles, c.Title)
	}
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("order = %v, want [a b] (a was just active)", titles)
	}
	if list, _ := s.Conversations(ctx, 1); len(list) != 1 {
		t.Fatalf("limit ignored: %d", len(list))
	}
}

func TestSettingsPresetsAndDefaults(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	topK, p := 40, 0.9
	c, _, err := s.CreateConversation(ctx, Conversation{Title: "t", Settings: Settings{System: "Be brief.", TopK: &topK, TopP: &p}},
		Message{Role: "user", Content: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.NewChatDefaults(ctx); ok || err != nil {
		t.Fatalf("defaults of a new database: ok %v, err %v", ok, err)
	}
	temp := 0.2
	for _, pr := range []Preset{{Name: "b", Think: true, Temperature: &temp}, {Name: "a", Settings: Settings{System: "x"}}, {Name: "b", Settings: Settings{MaxTokens: &topK}}} {
		if err := s.SavePreset(ctx, pr); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveNewChatDefaults(ctx, Preset{Temperature: &temp, Settings: Settings{System: "Default system"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePreset(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a missing preset: %v", err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.Conversation(ctx, c.ID)
	if got.Settings.System != "Be brief." || *got.Settings.TopK != 40 || *got.Settings.TopP != 0.9 || got.Settings.MinP != nil {
		t.Fatalf("settings after reopen: %+v", got.Settings)
	}
	list, err := s.Presets(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[0].System != "x" || list[1].Name != "b" ||
		list[1].Think || list[1].Temperature != nil || *list[1].MaxTokens != 40 {
		t.Fatalf("presets: %+v, %v", list, err)
	}
	d, ok, err := s.NewChatDefaults(ctx)
	if !ok || err != nil || d.System != "Default system" || *d.Temperature != 0.2 {
		t.Fatalf("defaults: %+v %v %v", d, ok, err)
	}
}

// TestSearch: titles and messages (every version) are found by whole words or their starts, accents
// folded, every word required; a renamed title and deleted conversations follow; punctuation alone
// finds nothing and fails nothing.
func TestSearch(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	a, _, _ := s.CreateConversation(ctx, Conversation{Title: "Crème brûlée recipe"}, Message{Role: "user", Content: "How do I caramelize sugar?"})
	b, first, _ := s.CreateConversation(ctx, Conversation{Title: "Trip"}, Message{Role: "user", Content: "Plan a trip to Lisbon"})
	if _, err := s.AddMessage(ctx, Message{ConversationID: b.ID, Role: "assistant", Content: "Day one: the <b>castle</b> and the tram."}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EditMessage(ctx, b.ID, first.ID, "Plan a trip to Porto"); err != nil {
		t.Fatal(err)
	}
	found := func(q string) string {
		t.Helper()
		hits, err := s.Search(ctx, q, 10)
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		var out []string
		for _, h := range hits {
			out = append(out, h.Title+"|"+strings.NewReplacer(MatchStart, "[", MatchEnd, "]").Replace(h.Snippet))
		}
		return strings.Join(out, " / ")
	}
	for _, tc := range []struct{ q, want string }{
		{"creme", "Crème brûlée recipe|"},
		{"caramel", "Crème brûlée recipe|How do I [caramelize] sugar?"},
		{"lisbon", "Trip|Plan a trip to [Lisbon]"}, // an earlier version of the question
		{"castle tram", "Trip|Day one: the <b>[castle]</b> and the [tram]."},
		{"castle sugar", ""},
		{"trip", "Trip|Plan a [trip] to Porto"},
		{`?`, ""},
		{`"`, ""},
		{"   ", ""},
	} {
		if got := found(tc.q); got != tc.want && !(tc.q == "trip" && got == "Trip|Plan a [trip] to Lisbon") {
			t.Errorf("search %q: %q, want %q", tc.q, got, tc.want)
		}
	}
	if err := s.Rename(ctx, a.ID, "Dessert"); err != nil {
		t.Fatal(err)
	}
	if got := found("dessert"); got != "Dessert|" {
		t.Errorf("after a rename: %q", got)
	}
	if got := found("creme"); got != "" {
		t.Errorf("the old title is still found: %q", got)
	}
	if err := s.DeleteConversation(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := found("castle"); got != "" {
		t.Errorf("a deleted conversation's messages are still found: %q", got)
	}
	if err := s.Rename(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("renaming a missing conversation: %v", err)
	}
}

// TestShowVersionGoesBackTheWayShown: showing a version again shows the branch below it as it was last
// shown (the older answer chosen there), not the newest one, and the conversation goes on from there.
func TestShowVersionGoesBackTheWayShown(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	conv, ids := newConv(t, s, "user", "assistant", "user", "assistant") // a b c d
	newer, err := s.ReplaceMessage(ctx, ids[3], Message{ConversationID: conv, Role: "assistant", Content: "d2"})
	if err != nil {
		t.Fatal(err)
	}
	// The older answer d is chosen; then the first question is edited, and its first version shown again.
	if err := s.ShowVersion(ctx, conv, ids[3]); err != nil {
		t.Fatal(err)
	}
	edited, err := s.EditMessage(ctx, conv, ids[0], "a2")
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("after the edit: %q", got)
	}
	if err := s.ShowVersion(ctx, conv, ids[0]); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("the first version again: %q, want the branch as it was shown (d, not %s)", got, newer.Content)
	}
	next, err := s.AddMessage(ctx, Message{ConversationID: conv, Role: "user", Content: "e"})
	if err != nil || next.ParentID != ids[3] {
		t.Fatalf("the next message went under %d, want the answer shown (%d): %v", next.ParentID, ids[3], err)
	}
	// The edit's branch is remembered the same way.
	if err := s.ShowVersion(ctx, conv, edited.ID); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s, conv); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("the edited version again: %q", got)
	}
}
