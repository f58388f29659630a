package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
	"smolchat/server/store"
)

// The browser chat: server-rendered pages and fragments that htmx swaps in. Answers stream over
// Server-Sent Events from /stream/{id} (stream.go); the protocol is in docs/STREAMING.md.

// sidebarLimit is how many past conversations the sidebar lists.
const sidebarLimit = 200

// thinkCookie remembers the thinking toggle for new chats in this browser.
const thinkCookie = "smolchat_think"

// View models of the templates.
type (
	page struct {
		CSRF          string
		Title         string
		ConvID        string
		Conversations []sidebarItem
		Messages      []messageView
		Stream        *streamView // an answer still waiting for its event stream
		Settings      settingsView
		Status        statusView
		Meter         meterView
		Actions       actionsView
		SignOut       bool // an API key is set: offer to sign out
	}
	sidebarItem struct {
		ID, Title string
		Current   bool
		Snippet   template.HTML // a search's match in the conversation's messages
		OOB       bool          // swapped in out of band, in place of the entry with its ID
	}
	messageView struct {
		ConvID   string
		ID       int64
		User     bool
		Text     string        // the user's message, escaped by the template
		HTML     template.HTML // the answer, rendered from Markdown and sanitized
		Thinking template.HTML
		Stats    string
		Note     string
		NoteErr  bool
		// RetrySave is the stream ID of an answer that could not be saved: the message offers a retry.
		RetrySave string
		// Continue offers to go on with an answer cut by its token limit.
		Continue bool
		// Version of Versions, when there are several: the switcher shows ‹ Version/Versions › and
		// goes to PrevID or NextID (0: none).
		Version, Versions int
		PrevID, NextID    int64
	}
	streamView struct {
		ID    string
		Meter meterView // sent out of band with a new placeholder, to show the prompt's size
		// A page rendered while the answer streams shows the text so far: each part's finished blocks
		// and its open one, rendered (livePart).
		Thinking, ThinkingOpen, Answer, AnswerOpen template.HTML
		Answering                                  bool // the answer has started (the reasoning is folded)
	}
	settingsView struct {
		Think       bool
		Temperature string // "" = the default, for the chip beside the toggle
		System      string
		Fields      []fieldView
		Presets     []string
		// Open shows the panel, with Status (what was just done) in it.
		Open   bool
		Status string
		OOB    bool
		// NoReasoning hides the thinking toggle: the loaded model's template has no reasoning mode.
		NoReasoning bool
		// ThinkDefault is the saved defaults' thinking in new chats: "on", "off", or "" (the switch).
		ThinkDefault string
	}
	fieldView struct {
		Name, Label, Value string
		Unset, Range       string // the default (placeholder) and the range (tooltip)
		Integer            bool
	}
	statusView struct {
		Ready, Failed bool
		Percent       int
		Message       string
		Model, Quant  string
		Backend       string
		Device        string
		Context       int
		OOB           bool
	}
	meterView struct {
		Used, Size int
		Low, High  int
		OOB        bool
	}
	actionsView struct {
		ConvID string
		OOB    bool
	}
	noticeView struct {
		Kind, Message string
	}
	errorPage struct {
		CSRF, Title, Message string
		Status               int
	}
)

func (s *Server) templateFuncs() map[string]any {
	return map[string]any{
		"asset":     s.assetURL,
		"thousands": thousands,
		"compact":   compact,
	}
}

// thousands writes n with thousands separators: 8,192.
func thousands(n int) string {
	str := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, r := range str {
		if i > 0 && (len(str)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// compact writes n briefly: 950, 1.2k, 8.2k, 64k.
func compact(n int) string {
	switch {
	case n < 1000:
		return strconv.Itoa(n)
	case n < 10000:
		return strconv.FormatFloat(float64(n)/1000, 'f', 1, 64) + "k"
	}
	return strconv.Itoa((n+500)/1000) + "k"
}

// render executes a template into a string, for fragments sent as events.
func (s *Server) render(name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := s.views.Render(&buf, name, data); err != nil {
		return "", fmt.Errorf("rendering %s: %w", name, err)
	}
	return buf.String(), nil
}

// renderNotice answers an htmx request with a notice appended to the conversation, and a plain page load
// with an error page.
func (s *Server) renderNotice(c *fiber.Ctx, kind, msg string) error {
	if c.Get("HX-Request") == "" {
		status := c.Response().StatusCode()
		return c.Render("error", errorPage{CSRF: csrfToken(c), Title: "Error", Status: status, Message: msg}, "layouts/main")
	}
	c.Set("HX-Retarget", "#messages")
	c.Set("HX-Reswap", "beforeend")
	return c.Render("partials/notice", noticeView{Kind: kind, Message: msg})
}

func (s *Server) statusView() statusView {
	if m := s.ready(); m != nil {
		i := m.info()
		return statusView{Ready: true, Model: modelID(i), Quant: i.Quant, Backend: strings.ToUpper(i.Backend),
			Device: i.Device, Context: i.Context}
	}
	st := s.load.Load()
	v := statusView{Percent: int(st.frac * 100), Message: st.msg}
	if st.err != nil {
		v.Failed, v.Message = true, st.err.Error()
	}
	return v
}

// noReasoning reports that the loaded model has no reasoning mode to toggle (false while it loads).
func (s *Server) noReasoning() bool {
	m := s.ready()
	return m != nil && !m.info().Reasoning
}

// newMeter is the context meter. It shows at most a full window: the engine drops the oldest turns of a
// longer conversation.
func newMeter(used, size int) meterView {
	return meterView{Used: min(used, size), Size: size, Low: size / 2, High: size * 9 / 10}
}

// meter measures a conversation against the context window; zero while the model loads.
func (s *Server) meter(msgs []engine.Message, think bool) meterView {
	m := s.ready()
	if m == nil {
		return meterView{}
	}
	used := 0
	if len(msgs) > 0 {
		if n, err := m.gen.CountChatTokens(msgs, &think); err == nil {
			used = n
		}
	}
	return newMeter(used, m.info().Context)
}

// promptMeter is the context meter of an answer about to stream, sent along with its placeholder.
func (s *Server) promptMeter(st *uiStream) meterView {
	v := s.meter(st.req.Messages, *st.req.Think)
	v.OOB = true
	return v
}

func (s *Server) messageView(m store.Message) messageView {
	v := messageView{ConvID: m.ConversationID, ID: m.ID, User: m.Role == "user"}
	if i := slices.Index(m.Versions, m.ID); len(m.Versions) > 1 && i >= 0 {
		v.Version, v.Versions = i+1, len(m.Versions)
		if i > 0 {
			v.PrevID = m.Versions[i-1]
		}
		if i+1 < len(m.Versions) {
			v.NextID = m.Versions[i+1]
		}
	}
	if v.User {
		v.Text = m.Content
		return v
	}
	v.HTML = s.md.Render(m.Content)
	if strings.TrimSpace(m.Thinking) != "" {
		v.Thinking = s.md.Render(m.Thinking)
	}
	v.Stats = statsText(m)
	switch m.FinishReason {
	case engine.FinishCancelled:
		v.Note = "Stopped."
	case engine.FinishLength:
		v.Note = "Cut off: the context window is full. Start a new chat to go on."
		if s.contextFull(m) {
			break
		}
		v.Note = "Cut off at the limit of answer tokens (Settings)."
		v.Continue = m.ID != 0
	}
	return v
}

// contextFull reports whether an answer cut for length filled the context window, rather than reaching
// its token limit. It is true while the model loads, when the size is not known. The counts leave out
// tokens a template or a reasoning budget writes between the prompt and the answer, so a window with
// fewer than fullSlack positions left counts as full: a continuation would have no room anyway.
func (s *Server) contextFull(m store.Message) bool {
	const fullSlack = 16
	l := s.ready()
	return l == nil || m.PromptTokens+m.Tokens+fullSlack >= l.info().Context
}

// statsText is the line under an answer: tokens, speed and time to first token. A single token has
// no speed (it is measured from the first token on), so the line leaves it out rather than show 0.
func statsText(m store.Message) string {
	if m.Tokens == 0 {
		return ""
	}
	ttft := fmt.Sprintf("%d ms", m.TTFT.Milliseconds())
	if m.TTFT >= time.Second {
		ttft = fmt.Sprintf("%.2f s", m.TTFT.Seconds())
	}
	unit := "tokens"
	if m.Tokens == 1 {
		unit = "token"
	}
	if m.TokensPerSec <= 0 {
		return fmt.Sprintf("%d %s · %s to first token", m.Tokens, unit, ttft)
	}
	return fmt.Sprintf("%d %s · %.1f tok/s · %s to first token", m.Tokens, unit, m.TokensPerSec, ttft)
}

func formatTemp(t *float64) string {
	if t == nil {
		return ""
	}
	return strconv.FormatFloat(*t, 'f', -1, 64)
}

// defaultThink is this browser's thinking toggle for new chats: on unless turned off.
func defaultThink(c *fiber.Ctx) bool { return c.Cookies(thinkCookie) != "0" }

func rememberThink(c *fiber.Ctx, on bool) {
	v := "0"
	if on {
		v = "1"
	}
	c.Cookie(&fiber.Cookie{Name: thinkCookie, Value: v, Path: "/", MaxAge: 365 * 24 * 3600, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteStrictMode})
}

func (s *Server) handleIndex(c *fiber.Ctx) error { return s.renderPage(c, nil) }

func (s *Server) handleConversation(c *fiber.Ctx) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	return s.renderPage(c, &conv)
}

func (s *Server) renderPage(c *fiber.Ctx, conv *store.Conversation) error {
	ctx := c.UserContext()
	list, err := s.store.Conversations(ctx, sidebarLimit)
	if err != nil {
		return err
	}
	p := page{CSRF: csrfToken(c), Status: s.statusView(), SignOut: s.cfg.APIKey != ""}
	settings, err := s.pageSettings(c, conv)
	if err != nil {
		return err
	}
	p.Settings = s.settingsView(ctx, settings)
	if conv != nil {
		p.Title, p.ConvID = conv.Title, conv.ID
		msgs, err := s.store.Messages(ctx, conv.ID)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			p.Messages = append(p.Messages, s.messageView(m))
		}
		p.Meter = s.meter(chatMessages(conv.Settings.System, msgs), conv.Think)
		// An answer prepared or streaming (a reload mid-answer) shows as a placeholder with its text so far,
		// in place of the answer a regeneration replaces; one that has ended shows as saved.
		if st := s.streamOf(conv.ID); st != nil && !st.shownIn(msgs) {
			p.Messages = slices.DeleteFunc(p.Messages, func(v messageView) bool { return v.ID == st.replaces })
			v := st.view(meterView{})
			st.expectPage(reloadGrace)
			p.Stream = &v
		}
		p.Messages = append(p.Messages, s.unsavedOf(conv.ID)...)
	} else if m := s.ready(); m != nil {
		p.Meter = newMeter(0, m.info().Context)
	}
	p.Actions = actionsView{ConvID: p.ConvID}
	for _, cv := range list {
		p.Conversations = append(p.Conversations, sidebarItem{ID: cv.ID, Title: cv.Title, Current: cv.ID == p.ConvID})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Render("index", p, "layouts/main")
}

// pageSettings are the settings a page shows: its conversation's, or a new chat's defaults.
func (s *Server) pageSettings(c *fiber.Ctx, conv *store.Conversation) (store.Preset, error) {
	if conv != nil {
		return presetOf(*conv), nil
	}
	return s.newChatDefaults(c)
}

// handleStatus is the model badge, which polls itself while the model loads.
func (s *Server) handleStatus(c *fiber.Ctx) error {
	v := s.statusView()
	if !v.Ready {
		return c.Render("partials/status", v)
	}
	// The model just became ready: show the context meter too,
	var buf bytes.Buffer
	if err := s.views.Render(&buf, "partials/status", v); err != nil {
		return err
	}
	m := newMeter(0, v.Context)
	m.OOB = true
	if err := s.views.Render(&buf, "partials/meter", m); err != nil {
		return err
	}
	// and the composer's settings as a page loaded now would have them: a model without a reasoning
	// mode has no thinking toggle.
	var conv *store.Conversation
	if id := currentConvID(c); id != "" {
		if cv, err := s.loadConversation(c.UserContext(), id); err == nil {
			conv = &cv
		}
	}
	settings, err := s.pageSettings(c, conv)
	if err != nil {
		return err
	}
	st := s.settingsView(c.UserContext(), settings)
	st.OOB = true
	if err := s.views.Render(&buf, "partials/settings", st); err != nil {
		return err
	}
	c.Type("html", "utf-8")
	return c.Send(buf.Bytes())
}

// conversation loads the conversation named by the :id parameter, or answers 404.
func (s *Server) conversation(c *fiber.Ctx) (store.Conversation, error) {
	return s.loadConversation(c.UserContext(), c.Params("id"))
}

// loadConversation loads a conversation, or answers 404.
func (s *Server) loadConversation(ctx context.Context, id string) (store.Conversation, error) {
	conv, err := s.store.Conversation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return conv, errNoConversation
	}
	return conv, err
}

var errNoConversation = fiber.NewError(fiber.StatusNotFound, "This conversation does not exist: it may have been deleted. Start a new chat.")

// message loads the message named by :mid in the conversation named by :id.
func (s *Server) message(c *fiber.Ctx) (store.Conversation, store.Message, error) {
	conv, err := s.conversation(c)
	if err != nil {
		return conv, store.Message{}, err
	}
	mid, err := strconv.ParseInt(c.Params("mid"), 10, 64)
	if err != nil {
		return conv, store.Message{}, fiber.NewError(fiber.StatusBadRequest, "bad message id")
	}
	m, err := s.store.Message(c.UserContext(), conv.ID, mid)
	if errors.Is(err, store.ErrNotFound) {
		return conv, m, fiber.NewError(fiber.StatusNotFound, "This message does not exist any more.")
	}
	return conv, m, err
}

// parseTemperature reads a temperature the user typed: a number from 0 to 2. strconv also reads "NaN",
// which compares false with everything, so the range is checked in a form that NaN fails.
func parseTemperature(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && v >= 0 && v <= 2
}

// userText reads a message the user typed, refusing text that is empty or not UTF-8.
func userText(c *fiber.Ctx) (string, error) {
	text := strings.TrimSpace(c.FormValue("content"))
	if !utf8.ValidString(text) {
		return "", fiber.NewError(fiber.StatusBadRequest, "The message is not valid UTF-8 text.")
	}
	return text, nil
}

// titleOf makes a conversation title from its first message: the first line, shortened.
func titleOf(text string) string {
	line, _, _ := strings.Cut(text, "\n")
	line = strings.Join(strings.Fields(line), " ")
	const max = 60
	if utf8.RuneCountInString(line) > max {
		r := []rune(line)
		line = strings.TrimSpace(string(r[:max])) + "…"
	}
	if line == "" {
		line = "New chat"
	}
	return line
}

func (s *Server) handleSend(c *fiber.Ctx) error {
	ctx := c.UserContext()
	text, err := userText(c)
	if err != nil {
		return err
	}
	settings, err := formSettings(c)
	if err != nil {
		return err
	}
	files, err := formAttachments(c)
	if err != nil {
		return err
	}
	convID := c.FormValue("conversation")
	if name, arg, ok := parseCommand(text); ok && len(files) == 0 {
		return s.runCommand(c, name, arg, convID, settings)
	}
	text = withAttachments(text, files)
	if text == "" {
		return fiber.NewError(fiber.StatusBadRequest, "Type a message first.")
	}
	m := s.ready()
	if m == nil {
		return s.errLoading()
	}
	if err := checkMessageFits(m, text, settings); err != nil {
		return err
	}
	r, err := s.reserveTurn(convID)
	if err != nil {
		return err
	}
	defer r.end()
	var conv store.Conversation
	var msgs []store.Message
	isNew := convID == ""
	if isNew {
		var user store.Message
		conv, user, err = s.store.CreateConversation(ctx, withPreset(store.Conversation{Title: titleOf(text)}, settings),
			store.Message{Role: "user", Content: text})
		if err != nil {
			return errNotSaved(err)
		}
		msgs = []store.Message{user}
	} else {
		if conv, err = s.loadConversation(ctx, convID); err != nil {
			return err
		}
		if msgs, err = s.store.Messages(ctx, conv.ID); err != nil {
			return err
		}
		if err := checkShown(c.FormValue("shown"), msgs, r.flushed); err != nil {
			if errors.Is(err, errStaleTab) {
				return s.renderStale(c, msgs)
			}
			return err
		}
		conv = withPreset(conv, settings)
		user, err := s.store.AddTurn(ctx, conv, store.Message{Role: "user", Content: text})
		if err != nil {
			return errNotSaved(err)
		}
		msgs = append(msgs, user)
	}
	st := r.start(conv, msgs, 0)
	data := struct {
		User    messageView
		Stream  streamView
		New     bool
		ConvID  string
		Item    sidebarItem
		Actions actionsView
	}{User: s.messageView(msgs[len(msgs)-1]), Stream: streamView{ID: st.id, Meter: s.promptMeter(st)}, New: isNew, ConvID: conv.ID,
		Item: sidebarItem{ID: conv.ID, Title: conv.Title, Current: true}, Actions: actionsView{ConvID: conv.ID, OOB: true}}
	if isNew {
		c.Set("HX-Push-Url", "/c/"+conv.ID)
	}
	return c.Render("partials/send", data)
}

// errStaleTab refuses a message sent from a page that does not show the conversation's latest turns.
var errStaleTab = fiber.NewError(fiber.StatusConflict,
	"This chat has changed in another window since this page was loaded: reload the page to see it, then send again (your message is still in the box).")

// staleNote is what a page that sent from a stale view is told, once it shows the chat as it is now.
const staleNote = "This chat had changed in another window: it now shows here as it is. Your message was not sent and is still in the box: send it again to add it after these turns."

// renderStale refuses a message from a stale page (409) by showing the page the conversation as it is
// now (msgs), with a notice: the page reloads the chat before anything can be appended to it.
func (s *Server) renderStale(c *fiber.Ctx, msgs []store.Message) error {
	var b strings.Builder
	for _, m := range msgs {
		html, err := s.render("partials/message", s.messageView(m))
		if err != nil {
			return err
		}
		b.WriteString(html)
	}
	note, err := s.render("partials/notice", noticeView{Kind: "error", Message: staleNote})
	if err != nil {
		return err
	}
	c.Set("HX-Retarget", "#messages")
	c.Set("HX-Reswap", "innerHTML")
	c.Status(fiber.StatusConflict).Type("html", "utf-8")
	return c.SendString(b.String() + note)
}

// checkShown refuses a message from a stale page: shown is the ID of the last message the page shows
// ("0": none; "": the client did not say, as API clients of /chat do not), msgs the branch the
// conversation shows as stored. The message would be appended after turns the user has not seen if the
// branch goes on after the one shown, or no longer holds it (another window showed another version).
// The answers just written from memory (flushed) are on the page already, though not under their IDs.
func checkShown(shown string, msgs []store.Message, flushed []int64) error {
	if shown == "" {
		return nil
	}
	id, err := strconv.ParseInt(shown, 10, 64)
	if err != nil || id < 0 {
		return fiber.NewError(fiber.StatusBadRequest, "bad shown message id")
	}
	after := 0 // where the turns the page does not show begin
	if id != 0 {
		i := slices.IndexFunc(msgs, func(m store.Message) bool { return m.ID == id })
		if i < 0 {
			return errStaleTab
		}
		after = i + 1
	}
	for _, m := range msgs[after:] {
		if !slices.Contains(flushed, m.ID) {
			return errStaleTab
		}
	}
	return nil
}

// checkMessageFits refuses a message that cannot fit the context window, after the system prompt and with
// room for its answer, before it is stored: the engine drops older turns to make room, but not the
// message itself.
func checkMessageFits(m *loaded, text string, p store.Preset) error {
	msgs := chatMessages(p.System, []store.Message{{Role: "user", Content: text}})
	n, limit, err := fitLastTurn(m.gen, m.info().Context, msgs, &p.Think, genParams(p))
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "The message cannot be read: "+err.Error())
	}
	if n > limit {
		return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf(
			"This message (with the system prompt) is %s tokens; with room kept for the answer, the context window holds %s. Shorten it or the system prompt, or start smolchat with a larger --ctx.",
			thousands(n), thousands(limit)))
	}
	return nil
}

// turn is the reservation of a new answer: its place in the queue and, for an existing conversation, the
// conversation (lockConversation). It is taken before anything is stored, so that a change is either
// refused whole or accepted together with its answer: never a question stored, then refused as busy.
type turn struct {
	s      *Server
	ticket *ticket
	unlock func()
	used   bool
	// flushed are the IDs of the conversation's unsaved answers, written when the turn was taken: the
	// page shows them, though not under these IDs.
	flushed []int64
}

// reserveTurn takes a turn for conversation convID ("" for a new one).
func (s *Server) reserveTurn(convID string) (*turn, error) {
	t, err := s.queue.reserve()
	if err != nil {
		return nil, errBusy()
	}
	r := &turn{s: s, ticket: t, unlock: func() {}}
	if convID == "" {
		return r, nil
	}
	if r.unlock, err = s.lockConversation(convID); err != nil {
		t.release()
		return nil, err
	}
	// An answer that could not be saved goes in before anything that follows it.
	if r.flushed, err = s.saveUnsavedOf(convID); err != nil {
		r.end()
		return nil, errNotSaved(err)
	}
	return r, nil
}

// reserveAnswer takes a turn for a new answer in a conversation, once the model is ready, and reads the
// branch the conversation shows; the caller ends the turn.
func (s *Server) reserveAnswer(ctx context.Context, convID string) (*turn, []store.Message, error) {
	if s.ready() == nil {
		return nil, nil, s.errLoading()
	}
	r, err := s.reserveTurn(convID)
	if err != nil {
		return nil, nil, err
	}
	msgs, err := s.store.Messages(ctx, convID)
	if err != nil {
		r.end()
		return nil, nil, err
	}
	return r, msgs, nil
}

// start prepares the answer, which takes over the queue place.
func (r *turn) start(conv store.Conversation, msgs []store.Message, replaces int64) *uiStream {
	r.used = true
	return r.s.startStream(conv, msgs, r.ticket, replaces, nil)
}

// startContinue prepares the continuation of cont, the last of msgs.
func (r *turn) startContinue(conv store.Conversation, msgs []store.Message, cont store.Message) *uiStream {
	r.used = true
	return r.s.startStream(conv, msgs, r.ticket, 0, &cont)
}

// end releases the conversation, and the queue place unless an answer took it.
func (r *turn) end() {
	if !r.used {
		r.ticket.release()
	}
	r.unlock()
}

// errStillAnswering refuses a change to a conversation while its answer streams.
var errStillAnswering = fiber.NewError(fiber.StatusConflict, "The model is still answering in this chat: wait for it or press Stop.")

func (s *Server) handleRegenerate(c *fiber.Ctx) error {
	ctx := c.UserContext()
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	r, msgs, err := s.reserveAnswer(ctx, conv.ID)
	if err != nil {
		return err
	}
	defer r.end()
	// The answer being replaced stays until the new one is saved (finishStream).
	var replaces int64
	if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
		replaces, msgs = msgs[n-1].ID, msgs[:n-1]
	}
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != "user" {
		return fiber.NewError(fiber.StatusBadRequest, "There is no question to answer again.")
	}
	st := r.start(conv, msgs, replaces)
	return c.Render("partials/stream", streamView{ID: st.id, Meter: s.promptMeter(st)})
}

func (s *Server) handleMessage(c *fiber.Ctx) error {
	_, m, err := s.message(c)
	if err != nil {
		return err
	}
	return c.Render("partials/message", s.messageView(s.withVersions(m)))
}

func (s *Server) handleEditForm(c *fiber.Ctx) error {
	_, m, err := s.message(c)
	if err != nil {
		return err
	}
	if m.Role != "user" {
		return fiber.NewError(fiber.StatusBadRequest, "Only your own messages can be edited.")
	}
	return c.Render("partials/edit", s.messageView(m))
}

func (s *Server) handleEdit(c *fiber.Ctx) error {
	ctx := c.UserContext()
	conv, m, err := s.message(c)
	if err != nil {
		return err
	}
	if m.Role != "user" {
		return fiber.NewError(fiber.StatusBadRequest, "Only your own messages can be edited.")
	}
	text, err := userText(c)
	if err != nil {
		return err
	}
	if text == "" {
		return fiber.NewError(fiber.StatusBadRequest, "The edited message is empty.")
	}
	l := s.ready()
	if l == nil {
		return s.errLoading()
	}
	if err := checkMessageFits(l, text, presetOf(conv)); err != nil {
		return err
	}
	r, err := s.reserveTurn(conv.ID)
	if err != nil {
		return err
	}
	defer r.end()
	// The old message and the turns after it stay in the history as earlier versions.
	if _, err := s.store.EditMessage(ctx, conv.ID, m.ID, text); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fiber.NewError(fiber.StatusNotFound, "This message does not exist any more.")
		}
		return errNotSaved(err)
	}
	// The title follows an edit of the first message until the user renames the chat.
	var retitled *sidebarItem
	if m.ParentID == 0 && !conv.Renamed && titleOf(text) != conv.Title {
		conv.Title = titleOf(text)
		if err := s.store.UpdateSettings(ctx, conv); err != nil {
			return errNotSaved(err)
		}
		retitled = &sidebarItem{ID: conv.ID, Title: conv.Title, Current: true, OOB: true}
	}
	msgs, err := s.store.Messages(ctx, conv.ID)
	if err != nil {
		return err
	}
	st := r.start(conv, msgs, 0)
	data := struct {
		Messages []messageView
		Stream   streamView
		Retitled *sidebarItem
	}{Stream: streamView{ID: st.id, Meter: s.promptMeter(st)}, Retitled: retitled}
	for _, m := range msgs {
		data.Messages = append(data.Messages, s.messageView(m))
	}
	return c.Render("partials/messages", data)
}

// handleContinue goes on with the conversation's last answer, cut by its token limit.
func (s *Server) handleContinue(c *fiber.Ctx) error {
	conv, m, err := s.message(c)
	if err != nil {
		return err
	}
	if m.Role != "assistant" || m.FinishReason != engine.FinishLength {
		return fiber.NewError(fiber.StatusBadRequest, "Only an answer cut off by its token limit can be continued.")
	}
	r, msgs, err := s.reserveAnswer(c.UserContext(), conv.ID)
	if err != nil {
		return err
	}
	defer r.end()
	if n := len(msgs); n == 0 || msgs[n-1].ID != m.ID {
		return fiber.NewError(fiber.StatusConflict, "Only the last answer of the chat can be continued: reload the page to see where it stands.")
	}
	st := r.startContinue(conv, msgs, m)
	return c.Render("partials/stream", st.view(s.promptMeter(st)))
}

// handleShowVersion switches a message to another of its versions: the page shows the branch through it.
func (s *Server) handleShowVersion(c *fiber.Ctx) error {
	ctx := c.UserContext()
	conv, m, err := s.message(c)
	if err != nil {
		return err
	}
	unlock, err := s.lockConversation(conv.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.saveUnsavedOf(conv.ID); err != nil {
		return errNotSaved(err)
	}
	if err := s.store.ShowVersion(ctx, conv.ID, m.ID); err != nil {
		return errNotSaved(err)
	}
	// An answer that just ended belongs to the branch shown before: a reload must not bring it back.
	s.forgetEnded(conv.ID)
	msgs, err := s.store.Messages(ctx, conv.ID)
	if err != nil {
		return err
	}
	data := struct {
		Messages []messageView
		Meter    meterView
	}{Meter: s.meter(chatMessages(conv.Settings.System, msgs), conv.Think)}
	data.Meter.OOB = true
	for _, m := range msgs {
		data.Messages = append(data.Messages, s.messageView(m))
	}
	return c.Render("partials/branch", data)
}

func (s *Server) handleDelete(c *fiber.Ctx) error {
	id := c.Params("id")
	s.stopStreams(id)
	if err := s.store.DeleteConversation(c.UserContext(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fiber.NewError(fiber.StatusNotFound, "This conversation was already deleted.")
		}
		return err
	}
	if strings.HasSuffix(c.Get("HX-Current-URL"), "/c/"+id) {
		c.Set("HX-Redirect", "/")
	}
	return c.SendString("")
}
