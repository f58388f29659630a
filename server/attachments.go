package server

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"smolchat/server/attach"
	"smolchat/server/store"
)

// Attachments. The composer uploads a file (its button, a drop, a paste) to POST /attach, which reads
// its text (server/attach), counts its tokens (in the chat's settings, which the composer sends along)
// and answers with a chip for the composer: the file's name and token count, and its text in a hidden
// field. The message is sent with the chips' fields, and
// withAttachments puts each file's text into it. A file whose text cannot fit the context window with
// room for an answer is refused there, with its count and the limit.

// maxAttachmentBytes bounds an uploaded file (the rest of the page's requests have Config.BodyLimit).
const maxAttachmentBytes = 10 << 20

// maxAttachmentName bounds a file's name as the page shows it.
const maxAttachmentName = 120

// attachmentView is an attached file's chip in the composer.
type attachmentView struct {
	Name, Text string
	Tokens     int
}

func (s *Server) handleAttach(c *fiber.Ctx) error {
	m := s.ready()
	if m == nil {
		return s.errLoading()
	}
	fh, err := c.FormFile("file")
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "Choose a file to attach.")
	}
	name := attachmentName(fh.Filename)
	if fh.Size > maxAttachmentBytes {
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, fmt.Sprintf("%s is %s bytes; files of at most %s bytes (%s) can be attached.",
			name, thousands(int(fh.Size)), thousands(maxAttachmentBytes), mebibytes(maxAttachmentBytes)))
	}
	f, err := fh.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAttachmentBytes+1))
	if err != nil {
		return err
	}
	text, err := attach.Text(name, data)
	switch {
	case errors.Is(err, attach.ErrImage), errors.Is(err, attach.ErrBinary):
		return fiber.NewError(fiber.StatusUnsupportedMediaType, fmt.Sprintf("%s is not attached: %v.", name, err))
	case err != nil:
		return fiber.NewError(fiber.StatusUnprocessableEntity, fmt.Sprintf("%s is not attached: %v.", name, err))
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return fiber.NewError(fiber.StatusUnprocessableEntity, fmt.Sprintf("%s is not attached: it is empty.", name))
	}
	// The file's tokens: those of a message of it alone, less those of an empty message (the chat
	// template's, and the system prompt's), in the chat's settings (the composer sends them along).
	p, err := formSettings(c)
	if err != nil {
		return err
	}
	file := attachmentView{Name: name, Text: text}
	count := func(files ...attachmentView) (n, limit int, err error) {
		msgs := chatMessages(p.System, []store.Message{{Role: "user", Content: withAttachments("", files)}})
		return fitLastTurn(m.gen, m.info().Context, msgs, &p.Think, genParams(p))
	}
	total, limit, err := count(file)
	if err == nil {
		var empty int
		if empty, _, err = count(); err == nil {
			file.Tokens, limit = total-empty, limit-empty
		}
	}
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("%s cannot be read: %v", name, err))
	}
	if file.Tokens > limit {
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, fmt.Sprintf(
			"%s is %s tokens; with room kept for the answer, the chat's template and its system prompt, the context window holds %s. Attach a shorter file or a part of it, or start smolchat with a larger --ctx.",
			name, thousands(file.Tokens), thousands(max(limit, 0))))
	}
	return c.Render("partials/attachment", file)
}

// attachmentName is a file's name as shown and written into the message: its last path element, one
// line of printable characters, shortened.
func attachmentName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, name)
	name = strings.Join(strings.Fields(name), " ")
	if utf8.RuneCountInString(name) > maxAttachmentName {
		name = string([]rune(name)[:maxAttachmentName]) + "…"
	}
	if name == "" {
		name = "file"
	}
	return name
}

func mebibytes(n int) string { return fmt.Sprintf("%d MiB", n>>20) }

// formAttachments reads the attached files a message was sent with (the chips' fields).
func formAttachments(c *fiber.Ctx) ([]attachmentView, error) {
	args := c.Request().PostArgs()
	names, texts := args.PeekMulti("attachment_name"), args.PeekMulti("attachment")
	if form, err := c.MultipartForm(); err == nil { // a form sent as multipart
		names, texts = nil, nil
		for _, v := range form.Value["attachment_name"] {
			names = append(names, []byte(v))
		}
		for _, v := range form.Value["attachment"] {
			texts = append(texts, []byte(v))
		}
	}
	if len(names) != len(texts) {
		return nil, fiber.NewError(fiber.StatusBadRequest, "The attached files came without their names: reload the page and attach them again.")
	}
	var out []attachmentView
	for i := range texts {
		if !utf8.Valid(texts[i]) {
			return nil, fiber.NewError(fiber.StatusBadRequest, "An attached file is not valid UTF-8 text.")
		}
		out = append(out, attachmentView{Name: attachmentName(string(names[i])), Text: strings.TrimSpace(string(texts[i]))})
	}
	return out, nil
}

// withAttachments is a message with the text of its attached files before it, each under its name in a
// code fence longer than any run of backticks in it.
func withAttachments(text string, files []attachmentView) string {
	var b strings.Builder
	for _, f := range files {
		fence := strings.Repeat("`", max(3, longestRun(f.Text, '`')+1))
		fmt.Fprintf(&b, "%s:\n%s\n%s\n%s\n\n", f.Name, fence, f.Text, fence)
	}
	b.WriteString(text)
	return strings.TrimSpace(b.String())
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}
