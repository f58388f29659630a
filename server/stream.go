package server

import (
	"context"
	"errors"
	"html"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
	"smolchat/server/store"
)

// A browser answer is prepared by the request that posts the message (startStream), which has already
// taken the answer's place in the queue, so that an accepted message is never refused later for a full
// queue. It runs when a page opens its EventSource on /stream/{id} (handleStream), inside that response,
// so that a closed tab stops the generation: a failed write cancels it once no page is listening.
//
// Several pages may follow one answer: a reloaded page, or a second tab on the same conversation. Each
// is a sink; a page that connects late first gets the text it does not show yet. A page rendered while
// the answer streams (a reload) is expected to connect: until it does, for up to reloadGrace, the
// generation goes on even if the old page is already gone.

// streamConnectTimeout is how long a prepared answer waits for its EventSource before it is dropped.
const streamConnectTimeout = 30 * time.Second

// reloadGrace is how long an answer waits for a page rendered while it streamed to connect.
const reloadGrace = 10 * time.Second

// endedKeep is how long an ended answer stays known, so that a page reloaded while it ended still gets
// its last event (the saved or stopped answer) rather than a "no longer streaming" notice.
const endedKeep = time.Minute

// Causes of a cancelled browser generation.
var (
	errStopped   = errors.New("stopped by the user")
	errAbandoned = errors.New("the page never opened the answer's stream")
)

// startStream prepares the answer to msgs, the conversation as it is stored now; t is its place in the
// queue, released by the stream from now on. The caller holds the conversation (lockConversation).
//
// A continuation (cont not nil) goes on from cont, an answer cut by its token limit and the last of
// msgs; it is saved as a new version of cont, holding cont's text and what follows.
func (s *Server) startStream(conv store.Conversation, msgs []store.Message, t *ticket, replaces int64, cont *store.Message) *uiStream {
	p := genParams(presetOf(conv))
	p.Seed = randomSeed()
	think := conv.Think
	st := &uiStream{id: newID(""), convID: conv.ID, ticket: t, replaces: replaces, done: make(chan struct{}),
		req: engine.ChatRequest{Messages: chatMessages(conv.Settings.System, msgs), Think: &think, Params: p}}
	var thinking, answer string
	if cont != nil {
		st.replaces, st.continues = cont.ID, cont
		st.req.Messages = st.req.Messages[:len(st.req.Messages)-1]
		st.req.Continue = &engine.Partial{Thinking: cont.Thinking, Answer: cont.Content}
		thinking, answer = cont.Thinking, cont.Content
	}
	st.thinking.init("thinking", "t", s.md, thinking)
	st.answer.init("answer", "a", s.md, answer)
	st.ctx, st.cancel = context.WithCancelCause(s.base)
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	s.streamSeq++
	st.seq = s.streamSeq
	s.streams[st.id] = st
	st.expire = time.AfterFunc(streamConnectTimeout, func() { s.abandonStream(st, errAbandoned) })
	return st
}

// abandonStream drops an answer no page has connected to, giving its place in the queue to the next.
// It reports whether the answer was dropped (false: it has started, and its own run ends it).
func (s *Server) abandonStream(st *uiStream, cause error) bool {
	if !st.started.CompareAndSwap(false, true) {
		return false
	}
	st.cancel(cause)
	st.ticket.release()
	// A page that connects meanwhile gets a last event: "Stopped.", or for an answer no page opened in
	// time, that it is no longer streaming.
	last := s.noteEvent("done", "Stopped.")
	if cause != errStopped {
		last = s.noteEvent("failed", noLongerStreaming)
	}
	s.endStream(st, last, 0)
	return true
}

// endStream sends an answer's last event (st.end) and forgets the stream endedKeep later.
func (s *Server) endStream(st *uiStream, last streamEvent, saved int64) {
	st.end(last, saved)
	time.AfterFunc(endedKeep, func() { s.dropStream(st) })
}

// lockConversation reserves a conversation while a change to it is accepted (a message stored, an answer
// prepared), so that two sends at once cannot both be stored: the second gets 409. It also fails while
// an answer is prepared or streaming. unlock must be called once the change is done or abandoned.
func (s *Server) lockConversation(id string) (unlock func(), err error) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.changing[id] || s.answeringLocked(id) {
		return nil, errStillAnswering
	}
	s.changing[id] = true
	return func() {
		s.streamsMu.Lock()
		delete(s.changing, id)
		s.streamsMu.Unlock()
	}, nil
}

// answeringLocked reports whether a conversation has an answer prepared or streaming. streamsMu is held.
func (s *Server) answeringLocked(convID string) bool {
	for _, st := range s.streams {
		if st.convID == convID && !st.ended() {
			return true
		}
	}
	return false
}

// streamOf is a conversation's latest answer (prepared, streaming or just ended), or nil. Only the latest
// counts: an earlier one's answer may have been replaced since (a regeneration, an edit).
func (s *Server) streamOf(convID string) *uiStream {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	var last *uiStream
	for _, st := range s.streams {
		if st.convID == convID && (last == nil || st.seq > last.seq) {
			last = st
		}
	}
	return last
}

func (s *Server) dropStream(st *uiStream) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
	}
}

// forgetEnded forgets a conversation's ended answers (kept for a page reloaded as they ended) once the
// conversation shows another branch.
func (s *Server) forgetEnded(convID string) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for id, st := range s.streams {
		if st.convID == convID && st.ended() {
			delete(s.streams, id)
		}
	}
}

// stopStreams stops the answers of a conversation (before it is deleted).
func (s *Server) stopStreams(convID string) {
	s.streamsMu.Lock()
	var mine []*uiStream
	for _, st := range s.streams {
		if st.convID == convID {
			mine = append(mine, st)
		}
	}
	s.streamsMu.Unlock()
	for _, st := range mine {
		s.stop(st)
	}
}

// stop ends an answer at the user's request, whether or not a page has connected to it.
func (s *Server) stop(st *uiStream) {
	if !s.abandonStream(st, errStopped) {
		st.cancel(errStopped)
	}
}

func (s *Server) handleCancel(c *fiber.Ctx) error {
	s.streamsMu.Lock()
	st := s.streams[c.Params("sid")]
	s.streamsMu.Unlock()
	if st != nil {
		s.stop(st)
	}
	// An unknown stream has already finished: stopping it is done either way.
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) handleStream(c *fiber.Ctx) error {
	s.streamsMu.Lock()
	st := s.streams[c.Params("sid")]
	s.streamsMu.Unlock()
	return s.startSSE(c, func(sse sseWriter) {
		if st == nil {
			// A reconnect long after the answer ended, or a stale page: replace the placeholder, which
			// also stops the browser from reconnecting.
			ev := s.noteEvent("failed", noLongerStreaming)
			sse.event(ev.name, ev.data)
			return
		}
		k, first := st.attach(sse)
		switch {
		case k == nil: // it had ended: its last event was sent
		case first:
			s.runStream(st)
		default:
			<-k.gone // closed after its last write
		}
	})
}

const noLongerStreaming = "This answer is no longer streaming: reload the page to see the saved conversation."

// noteEvent is a last event whose message is only a note.
func (s *Server) noteEvent(kind, note string) streamEvent {
	final, err := s.render("partials/message", messageView{Note: note})
	if err != nil {
		final = `<p class="note">` + html.EscapeString(note) + `</p>`
	}
	return streamEvent{kind, final}
}

// runStream generates one browser answer into its event streams and stores it, even when stopped part way.
func (s *Server) runStream(st *uiStream) {
	defer st.cancel(nil)
	queued := false
	res, err := s.generate(st.ctx, st.ticket,
		func(pos int) error {
			queued = true
			frag, err := s.render("partials/queue", pos)
			if err != nil {
				return err
			}
			st.queued(frag)
			return context.Cause(st.ctx)
		},
		func(ctx context.Context, g Generator) (engine.Result, error) {
			if queued {
				st.queued(`<span class="queue-pos"></span>`)
			}
			return g.Chat(ctx, st.req, func(d engine.Delta) error {
				st.generated(d)
				return context.Cause(ctx)
			})
		})
	if res.Thinking == "" && res.Answer == "" {
		// The engine returned no text (an error part way): keep what was streamed.
		res.Thinking, res.Answer = st.text()
	}
	if c := st.continues; c != nil && (res.Thinking != "" || res.Answer != "") {
		// The continued answer is the cut one and what followed it, its tokens counted from its start.
		res.Thinking, res.Answer = c.Thinking+res.Thinking, c.Content+res.Answer
		res.Timings.PromptTokens, res.Timings.TimeToFirstToken = c.PromptTokens, c.TTFT
		res.Timings.GeneratedTokens += c.Tokens
	}
	s.finishStream(st, res, err)
}

// finishStream stores a browser answer, however it ended, and sends the stream's last events.
//
// A regenerated answer replaces the one before it only when it completed or the user stopped it; one
// that failed (an error, a shutdown, a page that went away) is kept as an earlier version instead, and
// the page shows the previous answer again. An answer that cannot be written (a full disk) stays on the
// page with a "not saved" note and a retry button, and in memory until it is saved.
func (s *Server) finishStream(st *uiStream, res engine.Result, err error) {
	cause := context.Cause(st.ctx)
	tm := res.Timings
	msg := store.Message{ConversationID: st.convID, Role: "assistant", Content: res.Answer, Thinking: res.Thinking,
		FinishReason: res.FinishReason, PromptTokens: tm.PromptTokens, Tokens: tm.GeneratedTokens, TokensPerSec: tm.GenTPS,
		TTFT: tm.TimeToFirstToken}
	switch {
	case cause != nil:
		msg.FinishReason = engine.FinishCancelled
	case err != nil:
		msg.FinishReason = "error"
	}
	failed := (err != nil && cause == nil) || (cause != nil && !errors.Is(cause, errStopped))
	if st.replaces != 0 && failed {
		msg.ReplacedBy = st.replaces
	}
	var serr error
	saved := int64(0)
	if msg.Content != "" || msg.Thinking != "" {
		var m store.Message
		if m, serr = s.saveAnswer(msg, st.replaces); serr == nil && msg.ReplacedBy == 0 {
			msg, saved = m, m.ID
			st.markSaved(saved)
		}
	}
	if errors.Is(serr, store.ErrNotFound) {
		serr = nil // the conversation was deleted while it streamed
	}
	if serr != nil {
		s.log.Error("saving an answer", "conversation", st.convID, "err", serr)
		if msg.ReplacedBy != 0 {
			serr = nil // a failed regeneration, to be kept hidden: the page shows the previous answer
		} else {
			s.keepUnsaved(st.id, unsavedAnswer{msg: msg, replaces: st.replaces, err: serr})
		}
	}

	view := s.messageView(s.withVersions(msg))
	kind := "done"
	switch {
	case errors.Is(cause, errShutdown):
		kind, view.Note, view.NoteErr = "failed", "The server shut down before the answer was finished.", true
	case err != nil && cause == nil:
		kind, view.NoteErr = "failed", true
		view.Note = "The answer failed: " + generationError(err).Message
	}
	switch {
	case serr != nil:
		kind = "failed"
		view = s.unsavedView(st.id, msg, serr)
	case st.replaces != 0 && saved == 0:
		// The new answer did not replace the previous one: show that one again, saying why.
		if prev, perr := s.store.Message(context.Background(), st.convID, st.replaces); perr == nil {
			note := view.Note
			if note == "" {
				note = "Stopped before any text."
			}
			view = s.messageView(s.withVersions(prev))
			view.Note, view.NoteErr = strings.TrimSuffix(note, ".")+". The previous answer is kept.", kind == "failed"
		}
	}
	if msg.Tokens > 0 && (st.replaces == 0 || saved != 0) {
		size := 0
		if l := s.ready(); l != nil {
			size = l.info().Context
		}
		m := newMeter(tm.PromptTokens+tm.GeneratedTokens, size)
		m.OOB = true
		stats, rerr := s.render("partials/stats", struct {
			Stats string
			Meter meterView
		}{view.Stats, m})
		if rerr == nil {
			st.send("stats", stats)
		}
	}
	final, rerr := s.render("partials/message", view)
	if rerr != nil {
		s.log.Error("rendering an answer", "err", rerr)
		final = `<p class="note error">` + html.EscapeString(rerr.Error()) + `</p>`
	}
	s.endStream(st, streamEvent{kind, final}, saved)
}

// withVersions fills in the versions of a stored message that the conversation shows, for its switcher;
// a message not shown (or not stored) comes back as it is.
func (s *Server) withVersions(m store.Message) store.Message {
	if m.ID == 0 {
		return m
	}
	msgs, err := s.store.Messages(context.Background(), m.ConversationID)
	if err != nil {
		return m
	}
	for _, b := range msgs {
		if b.ID == m.ID {
			m.Versions = b.Versions
		}
	}
	return m
}

// saveAnswer stores an answer: as a new version of the answer replaces (0: none) unless it is itself an
// earlier version (msg.ReplacedBy set).
func (s *Server) saveAnswer(msg store.Message, replaces int64) (store.Message, error) {
	// A context of its own: the server's may be cancelled by a shutdown, and the answer must still land.
	ctx := context.Background()
	if replaces != 0 && msg.ReplacedBy == 0 {
		return s.store.ReplaceMessage(ctx, replaces, msg)
	}
	return s.store.AddMessage(ctx, msg)
}
