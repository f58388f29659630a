package server

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestWatchClose covers the close watch of non-streamed requests on an in-memory connection: a read
// deadline left by fasthttp does not pass for a disconnect, pipelined bytes end the watch and reach the
// next Read, a closed peer cancels the context with errClientGone, and stop ends a quiet watch.
func TestWatchClose(t *testing.T) {
	pipe := func() (*trackedConn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &trackedConn{Conn: a, t: &connTracker{}}, b
	}
	gone := func(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errClientGone) }

	t.Run("deadline", func(t *testing.T) {
		tc, _ := pipe()
		tc.SetReadDeadline(time.Now().Add(10 * time.Millisecond)) // as fasthttp's ReadTimeout does
		ctx, stop := watchClose(context.Background(), tc)
		time.Sleep(60 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatalf("cancelled (%v) with the client still there", context.Cause(ctx))
		}
		stop()
		if gone(ctx) {
			t.Fatal("stop reported the client gone")
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		tc, peer := pipe()
		ctx, stop := watchClose(context.Background(), tc)
		// A pipe's Write returns once a Read took its bytes: here the watch's, before stop.
		wrote := make(chan error, 1)
		go func() { _, err := peer.Write([]byte("GET / HTTP/1.1\r\n")); wrote <- err }()
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		stop()
		if gone(ctx) {
			t.Fatal("pipelined bytes taken for a disconnect")
		}
		buf := make([]byte, 64)
		n, err := tc.Read(buf)
		if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
			t.Fatalf("next Read = %q, %v; want the pipelined bytes", buf[:n], err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		tc, peer := pipe()
		ctx, stop := watchClose(context.Background(), tc)
		defer stop()
		peer.Close()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			t.Fatal("not cancelled a second after the client closed")
		}
		if !gone(ctx) {
			t.Fatalf("cause %v, want errClientGone", context.Cause(ctx))
		}
	})
	t.Run("untracked", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, stop := watchClose(context.Background(), a)
		stop()
		if ctx != context.Background() {
			t.Fatal("a connection the server does not track got a watch")
		}
	})
}

// count is the number of open connections the tracker holds.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
