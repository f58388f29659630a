package server

import (
	"context"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smolchat/engine"
	"smolchat/server/markdown"
	"smolchat/server/store"
)

// A browser answer and the pages that follow it. Each page's event stream is a sink; the generation
// writes every event to all of them. A page that connects late (a reload, a second tab) first gets the
// text it does not show yet, then the same events as the others.
//
// Two locks, so that a page that stops reading never blocks anything but the answer's own writes:
// writeMu orders the writes to the sinks (held across network writes, up to --stream-write-timeout),
// textMu guards what was generated so far (never held across a write). A page render or a Stop takes
// textMu or nothing; writeMu is taken before textMu.

type uiStream struct {
	id       string
	seq      uint64 // its place among the server's streams: later ones are newer
	convID   string
	req      engine.ChatRequest
	ticket   *ticket // the answer's place in the queue
	replaces int64   // a regenerated answer: the answer it replaces once saved; 0 otherwise
	// continues, for a continuation, is the answer cut by its token limit that this one goes on from
	// (and replaces): its text starts the stream's text.
	continues *store.Message
	ctx       context.Context
	cancel    context.CancelCauseFunc
	expire    *time.Timer

	started atomic.Bool  // a page connected and the generation runs, or the answer was dropped unstarted
	awaited atomic.Int32 // grace periods running for pages rendered while it streamed (expectPage)
	done    chan struct{}

	writeMu sync.Mutex
	sinks   []*sink // guarded by writeMu
	// The live speed under the answer while it streams (guarded by writeMu): tokens so far, when the
	// first came, when the line was last sent.
	tokens          int
	first, lastLive time.Time

	textMu   sync.Mutex // guards the fields below and the parts' text
	thinking livePart   // the text generated so far, rendered as it grows
	answer   livePart
	queue    string       // the last queue note, for pages that connect late
	final    *streamEvent // the last event, once the answer ended
	saved    int64        // the stored answer's ID, once saved
}

// sink is one page's event stream. gone is closed after its last write: when a write to it failed or
// the answer ended.
type sink struct {
	sse  sseWriter
	gone chan struct{}
}

type streamEvent struct{ name, data string }

// livePart is one part of a streaming answer, its reasoning or its answer, rendered from Markdown as
// it grows, with the renderer of the finished message (markdown.Live), so that the page does not change
// when the answer ends. Its events, for a part named P whose elements on the page are X-ID (the part)
// and X-open-ID (its open block, the part's last child):
//
//	P-blocks  blocks just finished, inserted before the open block
//	P-open    the open block, rendered again (see add)
//	P-all     the whole part, for a page that connects late
type livePart struct {
	name, elem string
	text       strings.Builder // guarded by textMu
	md         *markdown.Live  // guarded by textMu
	held       int             // pieces added since the open block was last sent (writeMu)
}

// An open block is sent again with every piece while its text is short. A long one (a long code
// block) is re-rendered whole each time, so it is sent when a piece ends a line, or after heldMax
// pieces; the answer's last event has all of it. (Counted, not timed, so that what a page is sent
// depends only on the pieces.)
const (
	liveOpenShort = 4096
	liveHeldMax   = 16
)

// init sets a part up in place (it holds a strings.Builder, which must not be copied), with the text
// it starts with (a continued answer's).
func (p *livePart) init(name, elem string, md *markdown.Renderer, text string) {
	p.name, p.elem, p.md = name, elem, md.Live()
	p.text.WriteString(text)
	p.md.Add(text)
}

// openDiv is the element of a part's open block, holding html.
func (p *livePart) openDiv(streamID, html string) string {
	return `<div class="md-open" id="` + p.elem + `-open-` + streamID + `">` + html + `</div>`
}

// add records a piece of a part and sends what it changed on the page. writeMu is held.
func (st *uiStream) add(p *livePart, piece string) {
	if piece == "" {
		return
	}
	st.textMu.Lock()
	p.text.WriteString(piece)
	blocks := p.md.Add(piece)
	p.held++
	due := blocks != "" || p.md.OpenLen() < liveOpenShort || strings.Contains(piece, "\n") || p.held >= liveHeldMax
	var open string
	if due {
		open, p.held = p.md.Open(), 0
	}
	st.textMu.Unlock()
	if blocks != "" {
		st.write(p.name+"-blocks", blocks)
	}
	if due {
		st.write(p.name+"-open", open)
	}
}

func (st *uiStream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

// view is the placeholder of the answer, as a page shows it when rendered: empty for an answer not
// started yet, with the text so far, rendered, for one that is streaming (a reload).
func (st *uiStream) view(meter meterView) streamView {
	st.textMu.Lock()
	defer st.textMu.Unlock()
	return streamView{ID: st.id, Meter: meter,
		Thinking: template.HTML(st.thinking.md.Finished()), ThinkingOpen: template.HTML(st.thinking.md.Open()),
		Answer: template.HTML(st.answer.md.Finished()), AnswerOpen: template.HTML(st.answer.md.Open()),
		Answering: st.answer.text.Len() > 0}
}

// shownIn reports whether a page showing msgs, the stored conversation, shows this answer already: it
// was saved and msgs holds it, or it ended and was saved (a failed or unsaved one shows otherwise: the
// previous answer, or unsavedOf).
func (st *uiStream) shownIn(msgs []store.Message) bool {
	st.textMu.Lock()
	defer st.textMu.Unlock()
	stored := slices.ContainsFunc(msgs, func(m store.Message) bool { return m.ID == st.saved })
	if st.saved != 0 && stored {
		return true // saved, and read back with msgs, though its last event may not be out yet
	}
	if st.final == nil {
		return false
	}
	return st.saved == 0 || stored
}

// markSaved records the stored answer's ID as soon as it is written, before the last event goes out.
func (st *uiStream) markSaved(id int64) {
	st.textMu.Lock()
	st.saved = id
	st.textMu.Unlock()
}

// expectPage holds a streaming answer for a page about to connect: if every page connected so far goes
// away meanwhile (the one being reloaded), the generation goes on for up to grace.
func (st *uiStream) expectPage(grace time.Duration) {
	if !st.started.Load() || st.ended() {
		return
	}
	st.awaited.Add(1)
	time.AfterFunc(grace, func() {
		st.awaited.Add(-1)
		st.writeMu.Lock()
		defer st.writeMu.Unlock()
		st.cancelIfUnwatched()
	})
}

// cancelIfUnwatched cancels the generation when no page follows it and none is expected. writeMu is held.
func (st *uiStream) cancelIfUnwatched() {
	if len(st.sinks) == 0 && st.awaited.Load() <= 0 && !st.ended() {
		st.cancel(errClientGone)
	}
}

// attach adds a page's event stream to the answer, after sending it the text generated so far (P-all:
// the page may show less, if it was rendered a moment ago). It returns nil if the answer has ended (its
// last event was sent instead), and first for the page that starts the generation.
func (st *uiStream) attach(sse sseWriter) (k *sink, first bool) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	first = st.started.CompareAndSwap(false, true)
	if first {
		st.expire.Stop()
	}
	st.textMu.Lock()
	final := st.final
	catchUp := []streamEvent{{"", "answer " + st.id}}
	if st.queue != "" {
		catchUp = append(catchUp, streamEvent{"queue", st.queue})
	}
	for _, p := range []*livePart{&st.thinking, &st.answer} {
		if p.text.Len() > 0 {
			catchUp = append(catchUp, streamEvent{p.name + "-all", p.md.Finished() + p.openDiv(st.id, p.md.Open())})
		}
	}
	st.textMu.Unlock()
	if final != nil {
		sse.event(final.name, final.data)
		return nil, false
	}
	k = &sink{sse: sse, gone: make(chan struct{})}
	for _, ev := range catchUp {
		var err error
		if ev.name == "" {
			err = sse.comment(ev.data)
		} else {
			err = sse.event(ev.name, ev.data)
		}
		if err != nil {
			close(k.gone)
			st.cancelIfUnwatched()
			return k, first
		}
	}
	st.sinks = append(st.sinks, k)
	return k, first
}

// write sends an event to every page following the answer. A page whose write fails is dropped; when
// none is left and none is expected, the generation is cancelled. writeMu is held.
func (st *uiStream) write(name, data string) {
	live := st.sinks[:0]
	for _, k := range st.sinks {
		if err := k.sse.event(name, data); err != nil {
			close(k.gone)
			continue
		}
		live = append(live, k)
	}
	clear(st.sinks[len(live):])
	st.sinks = live
	st.cancelIfUnwatched()
}

// send sends an event that pages connecting later need not see again (the stats line).
func (st *uiStream) send(name, data string) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	st.write(name, data)
}

// generated records a piece of the answer and sends it.
func (st *uiStream) generated(d engine.Delta) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	st.add(&st.thinking, d.Thinking)
	st.add(&st.answer, d.Answer)
	st.liveSpeed(time.Now())
}

// liveStatsEvery is how often the speed line under a streaming answer is updated.
const liveStatsEvery = 500 * time.Millisecond

// liveSpeed counts a token and, at most every liveStatsEvery, sends the speed so far (the stats line the
// finished answer gets replaces it). writeMu is held.
func (st *uiStream) liveSpeed(now time.Time) {
	st.tokens++
	if st.first.IsZero() {
		st.first, st.lastLive = now, now
		return
	}
	if now.Sub(st.lastLive) < liveStatsEvery {
		return
	}
	st.lastLive = now
	rate := float64(st.tokens-1) / now.Sub(st.first).Seconds()
	st.write("stats", fmt.Sprintf("%d tokens · %.1f tok/s", st.tokens, rate))
}

// queued records the queue note and sends it.
func (st *uiStream) queued(note string) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	st.textMu.Lock()
	st.queue = note
	st.textMu.Unlock()
	st.write("queue", note)
}

// text is what was generated so far (for a continuation, after the text it continues).
func (st *uiStream) text() (thinking, answer string) {
	st.textMu.Lock()
	defer st.textMu.Unlock()
	thinking, answer = st.thinking.text.String(), st.answer.text.String()
	if c := st.continues; c != nil {
		thinking, answer = thinking[len(c.Thinking):], answer[len(c.Content):]
	}
	return thinking, answer
}

// end sends the answer's last event to every page, keeps it for pages that connect late, and closes the
// stream. saved is the stored answer's ID (0: not stored as the conversation's current answer).
func (st *uiStream) end(ev streamEvent, saved int64) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	st.textMu.Lock()
	st.final, st.saved = &ev, saved
	st.textMu.Unlock()
	// Ended before the last event goes out: a page that reads it may change the conversation at once.
	close(st.done)
	st.write(ev.name, ev.data)
	for _, k := range st.sinks {
		close(k.gone)
	}
	st.sinks = nil
}
