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

// A browser answer is prepared by the request that posts the message (startStream) and runs when the
// page opens its EventSource on /stream/{id} (handleStream), inside that response, so that a closed tab
// stops the generation: the failed write after each event cancels it.

// streamConnectTimeout is how long a prepared answer waits for its EventSource before it is dropped.
const streamConnectTimeout = 30 * time.Second

// Causes of a cancelled browser generation.
var (
	errStopped   = errors.New("stopped by the user")
	errAbandoned = errors.New("the page never opened the answer's stream")
)

type uiStream struct {
	id      string
	convID  string
	req     engine.ChatRequest
	ctx     context.Context
	cancel  context.CancelCauseFunc
	claimed bool // an EventSource connected; guarded by Server.streamsMu
	expire  *time.Timer
}

// startStream prepares the answer to a conversation as it is stored now.
func (s *Server) startStream(ctx context.Context, conv store.Conversation) (*uiStream, error) {
	msgs, err := s.store.Messages(ctx, conv.ID)
	if err != nil {
		return nil, err
	}
	p := engine.GenParams{SamplerParams: engine.DefaultSamplerParams()}
	if conv.Temperature != nil {
		p.Temperature = float32(*conv.Temperature)
	}
	p.Seed = randomSeed()
	think := conv.Think
	st := &uiStream{id: newID(""), convID: conv.ID,
		req: engine.ChatRequest{Messages: engineMessages(msgs), Think: &think, Params: p}}
	st.ctx, st.cancel = context.WithCancelCause(s.base)
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for _, other := range s.streams {
		if other.convID == conv.ID {
			st.cancel(nil)
			return nil, errStillAnswering
		}
	}
	s.streams[st.id] = st
	st.expire = time.AfterFunc(streamConnectTimeout, func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		if !st.claimed && s.streams[st.id] == st {
			delete(s.streams, st.id)
			st.cancel(errAbandoned)
		}
	})
	return st, nil
}

// pendingStream is the ID of a conversation's answer that no page has connected to yet (a reloaded
// page picks it up), or "".
func (s *Server) pendingStream(convID string) string {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for id, st := range s.streams {
		if st.convID == convID && !st.claimed {
			return id
		}
	}
	return ""
}

// answering reports whether a conversation has an answer prepared or streaming.
func (s *Server) answering(convID string) bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for _, st := range s.streams {
		if st.convID == convID {
			return true
		}
	}
	return false
}

// claimStream hands a prepared answer to the EventSource that asks for it, once.
func (s *Server) claimStream(id string) *uiStream {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	st := s.streams[id]
	if st == nil || st.claimed {
		return nil
	}
	st.claimed = true
	st.expire.Stop()
	return st
}

func (s *Server) dropStream(st *uiStream) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
	}
}

// stopStreams stops the answers of a conversation (before it is deleted).
func (s *Server) stopStreams(convID string) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for _, st := range s.streams {
		if st.convID == convID {
			st.cancel(errStopped)
		}
	}
}

func (s *Server) handleCancel(c *fiber.Ctx) error {
	s.streamsMu.Lock()
	st := s.streams[c.Params("sid")]
	s.streamsMu.Unlock()
	if st != nil {
		st.cancel(errStopped)
	}
	// An unknown stream has already finished: stopping it is done either way.
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) handleStream(c *fiber.Ctx) error {
	st := s.claimStream(c.Params("sid"))
	return s.startSSE(c, func(sse sseWriter) {
		if st == nil {
			// A reconnect after the answer ended, or a stale page: replace the placeholder, which also
			// stops the browser from reconnecting.
			final, err := s.render("partials/message", messageView{Note: "This answer is no longer streaming: reload the page to see the saved conversation."})
			if err == nil {
				sse.event("error", final)
			}
			return
		}
		s.runStream(st, sse)
	})
}

// runStream generates one browser answer into its event stream and stores it, even when stopped part way.
func (s *Server) runStream(st *uiStream, sse sseWriter) {
	defer s.dropStream(st)
	defer st.cancel(nil)
	gone := func(err error) error {
		st.cancel(errClientGone)
		return err
	}
	if err := sse.comment("answer " + st.id); err != nil {
		gone(err)
	}
	var thinking, answer strings.Builder
	queued := false
	var res engine.Result
	t, err := s.queue.enqueue()
	if err == nil {
		res, err = s.generate(st.ctx, t,
			func(pos int) error {
				queued = true
				frag, err := s.render("partials/queue", pos)
				if err != nil {
					return err
				}
				if err := sse.event("queue", frag); err != nil {
					return gone(err)
				}
				return nil
			},
			func(ctx context.Context, g Generator) (engine.Result, error) {
				if queued {
					if err := sse.event("queue", `<span class="queue-pos"></span>`); err != nil {
						gone(err)
					}
				}
				return g.Chat(ctx, st.req, func(d engine.Delta) error {
					thinking.WriteString(d.Thinking)
					answer.WriteString(d.Answer)
					if d.Thinking != "" {
						if err := sse.event("thinking", html.EscapeString(d.Thinking)); err != nil {
							return gone(err)
						}
					}
					if d.Answer != "" {
						if err := sse.event("answer", html.EscapeString(d.Answer)); err != nil {
							return gone(err)
						}
					}
					return nil
				})
			})
	}
	if res.Thinking == "" && res.Answer == "" {
		// The engine returned no text (an error part way): keep what was streamed.
		res.Thinking, res.Answer = thinking.String(), answer.String()
	}
	s.finishStream(st, sse, res, err)
}

// finishStream stores a browser answer, however it ended, and sends the stream's last events.
func (s *Server) finishStream(st *uiStream, sse sseWriter, res engine.Result, err error) {
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
	if msg.Content != "" || msg.Thinking != "" {
		// Saved with a context of its own: the server's may be cancelled by a shutdown, and the answer
		// must still land.
		saved, serr := s.store.AddMessage(context.Background(), msg)
		switch {
		case errors.Is(serr, store.ErrNotFound):
			// The conversation was deleted while it streamed.
		case serr != nil:
			s.log.Error("saving an answer", "conversation", st.convID, "err", serr)
		default:
			msg = saved
		}
	}
	s.dropStream(st)
	if errors.Is(cause, errClientGone) {
		return
	}

	view := s.messageView(msg)
	kind := "done"
	switch {
	case errors.Is(cause, errShutdown):
		kind, view.Note, view.NoteErr = "error", "The server shut down before the answer was finished.", true
	case err != nil && cause == nil:
		kind, view.NoteErr = "error", true
		view.Note = "The answer failed: " + generationError(err).Message
	}
	if msg.Tokens > 0 {
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
			sse.event("stats", stats)
		}
	}
	final, rerr := s.render("partials/message", view)
	if rerr != nil {
		s.log.Error("rendering an answer", "err", rerr)
		final = `<p class="note error">` + html.EscapeString(rerr.Error()) + `</p>`
	}
	sse.event(kind, final)
}
