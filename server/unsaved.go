package server

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"smolchat/server/store"
)

// An answer that could not be written to the history (a full disk, a read-only data directory) is not
// dropped: it stays in memory, keyed by its stream, and the page shows it with a "not saved" note and a
// Retry button, which tries the write again (handleSaveRetry). It is lost only if the server stops first.

// maxUnsaved bounds the answers kept in memory; beyond it the oldest is dropped, with an error logged.
const maxUnsaved = 64

type unsavedAnswer struct {
	msg      store.Message
	replaces int64 // a regenerated answer: the answer it replaces once saved
	err      error // why the last write failed
}

type unsavedAnswers struct {
	mu    sync.Mutex
	byID  map[string]unsavedAnswer
	order []string // stream IDs, oldest first
}

func (s *Server) keepUnsaved(sid string, a unsavedAnswer) {
	u := &s.unsaved
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byID == nil {
		u.byID = map[string]unsavedAnswer{}
	}
	if _, ok := u.byID[sid]; !ok {
		u.order = append(u.order, sid)
	}
	u.byID[sid] = a
	for len(u.order) > maxUnsaved {
		old := u.order[0]
		u.order = u.order[1:]
		s.log.Error("dropping an answer that could not be saved: too many unsaved answers", "conversation", u.byID[old].msg.ConversationID)
		delete(u.byID, old)
	}
}

// takeUnsaved removes and returns the unsaved answer of a stream.
func (s *Server) takeUnsaved(sid string) (unsavedAnswer, bool) {
	u := &s.unsaved
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.byID[sid]
	if ok {
		delete(u.byID, sid)
		u.order = slices.DeleteFunc(u.order, func(x string) bool { return x == sid })
	}
	return a, ok
}

// unsavedOf shows a conversation's unsaved answers, oldest first.
func (s *Server) unsavedOf(convID string) []messageView {
	u := &s.unsaved
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []messageView
	for _, sid := range u.order {
		if a := u.byID[sid]; a.msg.ConversationID == convID {
			out = append(out, s.unsavedView(sid, a.msg, a.err))
		}
	}
	return out
}

// unsavedView shows an answer that could not be saved, with why and a Retry button.
func (s *Server) unsavedView(sid string, msg store.Message, err error) messageView {
	v := s.messageView(msg)
	v.ID, v.ConvID = 0, "" // not in the history: no regenerate, no anchor
	v.Note = "Not saved: " + saveError(err) + ". The answer is only on this page: free some space in the data directory, then retry."
	v.NoteErr, v.RetrySave = true, sid
	return v
}

// saveError is why a write to the history failed, without the store's prefix.
func saveError(err error) string {
	return strings.TrimPrefix(err.Error(), "store: ")
}

// errNotSaved answers a request whose change could not be written to the history. The write was one
// transaction, so nothing was changed.
func errNotSaved(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoConversation
	}
	return fiber.NewError(fiber.StatusInsufficientStorage,
		"Not saved: "+saveError(err)+". Nothing was changed: free some space in the data directory, then try again.")
}

// saveUnsavedOf writes a conversation's unsaved answers before anything is added after them, so that
// the history keeps its order, and returns the IDs they were stored under; it fails, changing nothing
// more, while the disk is still full.
func (s *Server) saveUnsavedOf(convID string) ([]int64, error) {
	u := &s.unsaved
	u.mu.Lock()
	var sids []string
	for _, sid := range u.order {
		if u.byID[sid].msg.ConversationID == convID {
			sids = append(sids, sid)
		}
	}
	u.mu.Unlock()
	var saved []int64
	for _, sid := range sids {
		a, ok := s.takeUnsaved(sid)
		if !ok {
			continue // a retry saved it meanwhile
		}
		m, err := s.saveAnswer(a.msg, a.replaces)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			a.err = err
			s.keepUnsaved(sid, a)
			return saved, err
		default:
			saved = append(saved, m.ID)
		}
	}
	return saved, nil
}

// handleSaveRetry writes an unsaved answer again, and answers with the message as the page should now
// show it: saved, or still not saved with the new reason.
func (s *Server) handleSaveRetry(c *fiber.Ctx) error {
	sid := c.Params("sid")
	a, ok := s.takeUnsaved(sid)
	if !ok {
		return fiber.NewError(fiber.StatusNotFound, "There is nothing to save: this answer was saved already, or the server restarted.")
	}
	saved, err := s.saveAnswer(a.msg, a.replaces)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fiber.NewError(fiber.StatusNotFound, "This conversation was deleted: the answer has nowhere to go.")
	case err != nil:
		s.log.Error("saving an answer again", "conversation", a.msg.ConversationID, "err", err)
		a.err = err
		s.keepUnsaved(sid, a)
		return c.Render("partials/message", s.unsavedView(sid, a.msg, err))
	}
	return c.Render("partials/message", s.messageView(saved))
}
