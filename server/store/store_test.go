package store

import (
	"context"
	"errors"
	"path/filepath"
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
	c, err := s.CreateConversation(ctx, Conversation{Title: "Hello", Think: true, Temperature: &temp})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.CreatedAt.IsZero() {
		t.Fatalf("created conversation lacks id or time: %+v", c)
	}
	u, err := s.AddMessage(ctx, Message{ConversationID: c.ID, Role: "user", Content: "Hi <b>there</b>"})
	if err != nil {
		t.Fatal(err)
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

func TestEditMessageDropsLaterTurns(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	c, _ := s.CreateConversation(ctx, Conversation{Title: "t"})
	var ids []int64
	for i, role := range []string{"user", "assistant", "user", "assistant"} {
		m, err := s.AddMessage(ctx, Message{ConversationID: c.ID, Role: role, Content: string(rune('a' + i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := s.EditMessage(ctx, c.ID, ids[2], "edited"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := s.Messages(ctx, c.ID)
	if len(msgs) != 3 || msgs[2].Content != "edited" {
		t.Fatalf("after edit: %+v", msgs)
	}
	if err := s.DeleteMessage(ctx, c.ID, ids[1]); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := s.Messages(ctx, c.ID); len(msgs) != 2 {
		t.Fatalf("after delete: %d messages", len(msgs))
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	c, _ := s.CreateConversation(ctx, Conversation{Title: "t"})
	tests := []struct {
		name string
		err  error
	}{
		{"conversation", func() error { _, err := s.Conversation(ctx, "nope"); return err }()},
		{"message", func() error { _, err := s.Message(ctx, c.ID, 99); return err }()},
		{"delete conversation", s.DeleteConversation(ctx, "nope")},
		{"delete message", s.DeleteMessage(ctx, c.ID, 99)},
		{"edit message", s.EditMessage(ctx, c.ID, 99, "x")},
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
	a, _ := s.CreateConversation(ctx, Conversation{Title: "a"})
	time.Sleep(2 * time.Millisecond)
	b, _ := s.CreateConversation(ctx, Conversation{Title: "b"})
	time.Sleep(2 * time.Millisecond)
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
