package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownWithSilentConnections: connections that never sent a request (a browser's preconnect, a
// spare connection of Go's HTTP client) and idle keep-alive connections must not hold Shutdown. It
// used to wait for its deadline, because fasthttp counts a fresh connection as busy while it waits for
// the first request.
func TestShutdownWithSilentConnections(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)}, newFake())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	// An idle keep-alive connection, after one request.
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// Silent connections.
	var silent []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// The server has accepted them (the keep-alive one and the three silent ones) before it shuts down.
	for deadline := time.Now().Add(10 * time.Second); s.conns.count() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server tracks %d connections after 10 s, want 4", s.conns.count())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v after %v", err, time.Since(start))
	}
	took := time.Since(start)
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	if took > time.Second {
		t.Errorf("shutdown took %v with silent connections open", took)
	}
	// The silent connections were closed by the server.
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
			t.Errorf("silent connection %d still open after shutdown", i)
		}
	}
	t.Logf("shutdown with 3 silent connections and an idle keep-alive one took %v", took.Round(time.Millisecond))
}
