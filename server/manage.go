package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
	"smolchat/server/store"
)

// Finding and managing chats: search across titles and messages, rename, import an exported chat.
// (Deleting is handleDelete.)

// maxTitleRunes caps a conversation's title.
const maxTitleRunes = 200

// currentConvID is the conversation of the page an htmx request came from, or "".
func currentConvID(c *fiber.Ctx) string {
	id, _ := strings.CutPrefix(c.Get("HX-Current-URL"), c.BaseURL()+"/c/")
	return id
}

// handleSearch answers the sidebar's search box with the conversations that match, each with the words
// around the match; an empty query lists them all again.
func (s *Server) handleSearch(c *fiber.Ctx) error {
	ctx := c.UserContext()
	q := strings.TrimSpace(c.Query("q"))
	current := currentConvID(c)
	var items []sidebarItem
	if q == "" {
		list, err := s.store.Conversations(ctx, sidebarLimit)
		if err != nil {
			return err
		}
		for _, cv := range list {
			items = append(items, sidebarItem{ID: cv.ID, Title: cv.Title, Current: cv.ID == current})
		}
	} else {
		if !utf8.ValidString(q) {
			return fiber.NewError(fiber.StatusBadRequest, "The search is not valid UTF-8 text.")
		}
		hits, err := s.store.Search(ctx, q, sidebarLimit)
		if err != nil {
			return err
		}
		for _, h := range hits {
			items = append(items, sidebarItem{ID: h.ID, Title: h.Title, Current: h.ID == current, Snippet: snippetHTML(h.Snippet)})
		}
	}
	return c.Render("partials/search", struct {
		Items []sidebarItem
		Query string
	}{items, q})
}

// snippetHTML escapes a search snippet and marks its matched words.
func snippetHTML(snippet string) template.HTML {
	esc := html.EscapeString(snippet)
	esc = strings.ReplaceAll(esc, store.MatchStart, "<mark>")
	return template.HTML(strings.ReplaceAll(esc, store.MatchEnd, "</mark>"))
}

// handleSidebarItem is a conversation's sidebar entry (the rename form's Cancel).
func (s *Server) handleSidebarItem(c *fiber.Ctx) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	return c.Render("partials/sidebar-item", sidebarItem{ID: conv.ID, Title: conv.Title, Current: conv.ID == currentConvID(c)})
}

func (s *Server) handleRenameForm(c *fiber.Ctx) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	return c.Render("partials/rename", sidebarItem{ID: conv.ID, Title: conv.Title, Current: conv.ID == currentConvID(c)})
}

// checkTitle reads a title the user typed: one line of text, not empty, not too long.
func checkTitle(text string) (string, error) {
	title := strings.Join(strings.Fields(text), " ")
	switch {
	case !utf8.ValidString(title):
		return "", errors.New("the title is not valid UTF-8 text")
	case title == "":
		return "", errors.New("the title is empty")
	case utf8.RuneCountInString(title) > maxTitleRunes:
		return "", fmt.Errorf("the title is longer than %d characters", maxTitleRunes)
	}
	return title, nil
}

// handleRename renames a conversation: its sidebar entry comes back, and the page's title with it when
// the page shows that conversation.
func (s *Server) handleRename(c *fiber.Ctx) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	title, err := checkTitle(c.FormValue("title"))
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "Not renamed: "+err.Error()+".")
	}
	if err := s.store.Rename(c.UserContext(), conv.ID, title); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNoConversation
		}
		return errNotSaved(err)
	}
	return c.Render("partials/renamed", sidebarItem{ID: conv.ID, Title: title, Current: conv.ID == currentConvID(c)})
}

// handleImport stores a conversation exported as JSON (its branch shown, "messages") as a new chat and
// opens it. Everything in it is checked as if typed: roles, text, settings and sizes.
func (s *Server) handleImport(c *fiber.Ctx) error {
	fh, err := c.FormFile("file")
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "Choose a chat exported as JSON to import.")
	}
	f, err := fh.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(s.cfg.BodyLimit)+1))
	if err != nil {
		return err
	}
	conv, msgs, err := s.parseImport(data)
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "Not imported: "+err.Error()+".")
	}
	conv, err = s.store.ImportConversation(c.UserContext(), conv, msgs)
	if err != nil {
		return errNotSaved(err)
	}
	c.Set("HX-Redirect", "/c/"+conv.ID)
	return c.SendStatus(fiber.StatusNoContent)
}

// parseImport reads and checks an exported conversation.
func (s *Server) parseImport(data []byte) (store.Conversation, []store.Message, error) {
	var in exportedConversation
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD.
		return store.Conversation{}, nil, errors.New("the file is not UTF-8 text")
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return store.Conversation{}, nil, fmt.Errorf("the file is not a chat exported as JSON (%v)", err)
	}
	if len(in.Messages) == 0 {
		return store.Conversation{}, nil, errors.New("the file holds no messages")
	}
	if len(in.Messages) > s.cfg.MaxMessages {
		return store.Conversation{}, nil, fmt.Errorf("the chat has %d messages; at most %d can be imported", len(in.Messages), s.cfg.MaxMessages)
	}
	p := store.Preset{Think: in.Think, Temperature: in.Temperature, Settings: in.Settings}
	if err := checkPreset(p); err != nil {
		return store.Conversation{}, nil, err
	}
	var msgs []store.Message
	for i, m := range in.Messages {
		switch {
		case m.Role != "user" && m.Role != "assistant":
			return store.Conversation{}, nil, fmt.Errorf("message %d has the role %q; a chat holds user and assistant messages", i+1, m.Role)
		case i == 0 && m.Role != "user":
			return store.Conversation{}, nil, errors.New("the chat does not start with a user message")
		case !utf8.ValidString(m.Content) || !utf8.ValidString(m.Thinking):
			return store.Conversation{}, nil, fmt.Errorf("message %d is not valid UTF-8 text", i+1)
		case !slices.Contains([]string{"", engine.FinishStop, engine.FinishLength, engine.FinishCancelled, "error"}, m.FinishReason):
			return store.Conversation{}, nil, fmt.Errorf("message %d has an unknown finish_reason %q", i+1, m.FinishReason)
		case m.Tokens < 0 || m.PromptTokens < 0 || !(m.TokensPerSec >= 0 && m.TokensPerSec < 1e9) || !(m.TTFTMillis >= 0 && m.TTFTMillis < 1e9):
			return store.Conversation{}, nil, fmt.Errorf("message %d has stats out of range", i+1)
		}
		msgs = append(msgs, store.Message{Role: m.Role, Content: m.Content, Thinking: m.Thinking, FinishReason: m.FinishReason,
			Tokens: m.Tokens, PromptTokens: m.PromptTokens, TokensPerSec: m.TokensPerSec, TTFT: durationMillis(m.TTFTMillis)})
	}
	auto := titleOf(in.Messages[0].Content)
	title, err := checkTitle(in.Title)
	if err != nil {
		title = auto
	}
	return withPreset(store.Conversation{Title: title, Renamed: title != auto}, p), msgs, nil
}

// checkPreset checks settings that did not come from the panel's form (an imported chat) against the
// same ranges.
func checkPreset(p store.Preset) error {
	for _, f := range settingFields {
		if err := f.parse(f.format(p), &store.Preset{}); err != nil {
			var fe *fiber.Error
			if errors.As(err, &fe) {
				return errors.New(strings.TrimSuffix(fe.Message, "."))
			}
			return err
		}
	}
	return checkSystem(p.System)
}

// durationMillis is a duration given in milliseconds.
func durationMillis(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
