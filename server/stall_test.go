package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"smolchat/engine"
)

// floodGen answers the message "flood" with large deltas, as fast as they are taken, until an emit
// fails or its context ends, so that a client that does not read fills the socket's buffers at once.
// Other messages get the ordinary fake's answer. How each flood ended is sent on ended.
type floodGen struct {
	*fakeGen
	ended chan floodEnd
	// emitting is when the emit call in progress began (Unix nanoseconds), 0 between calls.
	emitting atomic.Int64
}

type floodEnd struct {
	cause   error         // the generation context's cause when the flood ended
	sent    int           // answer bytes emitted
	blocked time.Duration // how long the last emit call took to fail
}

func newFlood() *floodGen { return &floodGen{fakeGen: newFake(), ended: make(chan floodEnd, 1)} }

func (g *floodGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	if req.Messages[len(req.Messages)-1].Content != "flood" {
		return g.fakeGen.Chat(ctx, req, emit)
	}
	g.active.Add(1)
	defer g.active.Add(-1)
	delta := strings.Repeat("a", 16<<10)
	var answer strings.Builder
	for ctx.Err() == nil {
		start := time.Now()
		g.emitting.Store(start.UnixNano())
		err := emit(engine.Delta{Answer: delta})
		g.emitting.Store(0)
		if err != nil {
			g.ended <- floodEnd{cause: context.Cause(ctx), sent: answer.Len(), blocked: time.Since(start)}
			break
		}
		answer.WriteString(delta)
	}
	return engine.Result{Answer: answer.String(), FinishReason: engine.FinishCancelled}, nil
}

// stalledClient sends raw to the server and never reads the answer; the connection stays open until
// the test ends.
func stalledClient(t *testing.T, base, raw string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
}

// waitFlood waits for the flood to end, which it must do because its client stopped reading. The
// stream's writer runs ahead of the socket, so when the socket stalls the writer is blocked on fasthttp's
// in-memory body pipe: its last emit must have waited about as long as the socket's write (at least half
// the timeout), and then failed because the failed socket write closed the pipe.
func waitFlood(t *testing.T, g *floodGen, timeout time.Duration) floodEnd {
	t.Helper()
	select {
	case end := <-g.ended:
		if !errors.Is(end.cause, errClientGone) {
			t.Fatalf("the flood ended with cause %v, want errClientGone", end.cause)
		}
		if end.blocked < timeout/2 {
			t.Errorf("the last emit failed after %v: the stream writer was not blocked on the stalled connection", end.blocked)
		}
		t.Logf("stalled after %d KiB; the blocked write failed after %v", end.sent>>10, end.blocked.Round(time.Millisecond))
		return end
	case <-time.After(10 * time.Second):
		t.Fatal("the generation still runs 10 s after its client stopped reading")
	}
	return floodEnd{}
}

// TestStalledReaderFreesModel starts a stream whose client never reads, from the page and from the API.
// Once the socket's buffers are full the writes make no progress; after StreamWriteTimeout the
// connection is dropped and the generation cancelled, the model serves the next request, and the page's
// partial answer is stored as cancelled.
func TestStalledReaderFreesModel(t *testing.T) {
	cfg := Config{StreamWriteTimeout: 200 * time.Millisecond}
	t.Run("page", func(t *testing.T) {
		g := newFlood()
		s, base := startServer(t, g, cfg)
		b := newBrowser(t, base)
		conv, sid, _ := b.send("", "flood", false)
		stalledClient(t, base, "GET /stream/"+sid+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		end := waitFlood(t, g, cfg.StreamWriteTimeout)

		_, next, _ := b.send("", "next", false)
		if evs := b.stream(next, nil); lastEvent(t, evs).Name != "done" {
			t.Fatalf("the next answer ended with %+v", lastEvent(t, evs))
		}
		// The flood's answer is saved once its stream has finished: wait for it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			msgs, err := s.store.Messages(context.Background(), conv)
			if err != nil {
				t.Fatal(err)
			}
			if last := msgs[len(msgs)-1]; last.Role == "assistant" {
				if last.FinishReason != engine.FinishCancelled || len(last.Content) < end.sent || strings.Trim(last.Content, "a") != "" {
					t.Fatalf("stored answer: finish %q, %d bytes (%d were streamed)", last.FinishReason, len(last.Content), end.sent)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the partial answer was not stored")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Run("API", func(t *testing.T) {
		g := newFlood()
		_, base := startServer(t, g, cfg)
		body := `{"stream":true,"messages":[{"role":"user","content":"flood"}]}`
		stalledClient(t, base, fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			len(body), body))
		waitFlood(t, g, cfg.StreamWriteTimeout)
		if out := callAPI(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"next"}]}`); out.status != 200 || out.err != nil {
			t.Fatalf("the next request: status %d, error %v", out.status, out.err)
		}
	})
}

// TestStalledPageBlocksNothingElse stalls one page's stream for good (a write timeout of a minute), then
// renders the conversation and presses Stop: neither waits for the stalled write, which holds only the
// answer's own writes.
func TestStalledPageBlocksNothingElse(t *testing.T) {
	g := newFlood()
	_, base := startServer(t, g, Config{StreamWriteTimeout: time.Minute})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "flood", false)
	stalledClient(t, base, "GET /stream/"+sid+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	// The socket's buffers fill in well under a second; then an emit blocks on the stalled write, which
	// a minute's timeout leaves blocked for the rest of the test.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if since := g.emitting.Load(); since != 0 && time.Since(time.Unix(0, since)) > 500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no emit blocked on the stalled stream within 10 s")
		}
	}
	start := time.Now()
	if page := b.get("/c/" + conv); !strings.Contains(page, `sse-connect="/stream/`+sid+`"`) {
		t.Fatal("the page does not show the streaming answer")
	}
	if resp, _ := b.do("POST", "/stream/"+sid+"/cancel", nil); resp.StatusCode != 204 {
		t.Fatalf("stop: status %d", resp.StatusCode)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("rendering the page and stopping took %v: they waited for the stalled write", d)
	}
}
