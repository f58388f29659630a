package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"smolchat/server/store"
)

// Exports of a conversation, as Markdown to read and as JSON to process.

type exportedConversation struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Think       bool      `json:"think"`
	Temperature *float64  `json:"temperature,omitempty"`
	// The system prompt and the other settings, empty ones (the defaults) left out.
	store.Settings
	// Messages is the branch the conversation shows; AllMessages, when there is more than one version of
	// a turn, every message of the tree (parent_id links them).
	Messages    []exportedMessage `json:"messages"`
	AllMessages []exportedMessage `json:"all_messages,omitempty"`
}

type exportedMessage struct {
	ID           int64     `json:"id"`
	ParentID     int64     `json:"parent_id,omitempty"`
	Role         string    `json:"role"`
	Content      string    `json:"content"`
	Thinking     string    `json:"reasoning_content,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	FinishReason string    `json:"finish_reason,omitempty"`
	Tokens       int       `json:"completion_tokens,omitempty"`
	PromptTokens int       `json:"prompt_tokens,omitempty"`
	TokensPerSec float64   `json:"tokens_per_second,omitempty"`
	TTFTMillis   float64   `json:"time_to_first_token_ms,omitempty"`
}

func (s *Server) handleExport(c *fiber.Ctx) error {
	format := c.Params("format")
	if format != "md" && format != "json" {
		return fiber.NewError(fiber.StatusNotFound, "Export formats are md and json.")
	}
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	msgs, err := s.store.Messages(c.UserContext(), conv.ID)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s.%s"`, fileName(conv.Title), format))
	if format == "json" {
		out := exportedConversation{ID: conv.ID, Title: conv.Title, CreatedAt: conv.CreatedAt, UpdatedAt: conv.UpdatedAt,
			Think: conv.Think, Temperature: conv.Temperature, Settings: conv.Settings, Messages: []exportedMessage{}}
		for _, m := range msgs {
			out.Messages = append(out.Messages, exportMessage(m))
		}
		all, err := s.store.AllMessages(c.UserContext(), conv.ID)
		if err != nil {
			return err
		}
		if len(all) > len(msgs) {
			for _, m := range all {
				out.AllMessages = append(out.AllMessages, exportMessage(m))
			}
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		c.Type("json", "utf-8")
		return c.Send(b)
	}
	c.Set(fiber.HeaderContentType, "text/markdown; charset=utf-8")
	return c.SendString(exportMarkdown(conv, msgs))
}

func exportMessage(m store.Message) exportedMessage {
	return exportedMessage{ID: m.ID, ParentID: m.ParentID, Role: m.Role, Content: m.Content, Thinking: m.Thinking,
		CreatedAt: m.CreatedAt, FinishReason: m.FinishReason, Tokens: m.Tokens, PromptTokens: m.PromptTokens,
		TokensPerSec: m.TokensPerSec, TTFTMillis: float64(m.TTFT.Microseconds()) / 1000}
}

// exportMarkdown writes a conversation as a Markdown document: a heading per turn, the reasoning in a
// collapsible block.
func exportMarkdown(conv store.Conversation, msgs []store.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", conv.Title)
	fmt.Fprintf(&b, "_Exported from smolchat on %s · thinking %s", time.Now().Format("2 January 2006 15:04"), onOff(conv.Think))
	p := presetOf(conv)
	for _, f := range settingFields {
		if v := f.format(p); v != "" {
			fmt.Fprintf(&b, " · %s %s", strings.ToLower(f.label), v)
		}
	}
	b.WriteString("_\n")
	if conv.Settings.System != "" {
		fmt.Fprintf(&b, "\n## System prompt\n\n%s\n", conv.Settings.System)
	}
	for _, m := range msgs {
		if m.Role == "user" {
			b.WriteString("\n## You\n\n")
		} else {
			b.WriteString("\n## Assistant\n\n")
		}
		if strings.TrimSpace(m.Thinking) != "" {
			fmt.Fprintf(&b, "<details>\n<summary>Thought process</summary>\n\n%s\n\n</details>\n\n", strings.TrimSpace(m.Thinking))
		}
		b.WriteString(strings.TrimSpace(m.Content))
		b.WriteString("\n")
		if st := statsText(m); st != "" {
			fmt.Fprintf(&b, "\n_%s_\n", st)
		}
	}
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName makes a download name from a title: ASCII letters, digits, '.', '_' and '-' only.
func fileName(title string) string {
	name := strings.Trim(unsafeFileChars.ReplaceAllString(title, "-"), "-.")
	if len(name) > 60 {
		name = strings.TrimRight(name[:60], "-.")
	}
	if name == "" {
		name = "chat"
	}
	return name
}
