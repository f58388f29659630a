package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	status int
	close  bool
	body   string
}

// rawExchange sends raw bytes on a new connection and reads responses until the server closes it. A
// connection still open after 5 s fails the test.
func rawExchange(t *testing.T, addr, raw string) []rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	var out []rawResponse
	for {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return out
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("after %d responses: %v (the server did not close the connection)", len(out), err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(out)+1, err)
		}
		out = append(out, rawResponse{status: resp.StatusCode, close: resp.Close, body: string(b)})
	}
}

// TestRequestSmuggling sends requests whose headers frame their body ambiguously, each hiding a
// completion request where one reading of the headers ends the body. Each must get exactly one answer,
// a 400, and a closed connection: the hidden request is never answered and never reaches the model.
func TestRequestSmuggling(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	addr := strings.TrimPrefix(base, "http://")
	const prompt = `{"prompt":"hidden"}`
	hidden := fmt.Sprintf("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(prompt), prompt)
	lastChunk := "0\r\n\r\n" // an empty chunked body
	all := len(lastChunk + hidden)
	tests := []struct {
		name, headers, body string
	}{
		{"Content-Length then chunked", fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", all), lastChunk + hidden},
		{"chunked then Content-Length", fmt.Sprintf("Transfer-Encoding: chunked\r\nContent-Length: %d\r\n", all), lastChunk + hidden},
		{"names in other cases", fmt.Sprintf("content-LENGTH: %d\r\ntransfer-encoding: Chunked\r\n", all), lastChunk + hidden},
		{"conflicting Content-Lengths", fmt.Sprintf("Content-Length: %d\r\nContent-Length: 0\r\n", len(hidden)), hidden},
		{"repeated equal Content-Lengths", "Content-Length: 0\r\nContent-Length: 0\r\n", hidden},
		{"two Transfer-Encodings", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", lastChunk + hidden},
		{"gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", lastChunk + hidden},
		{"identity", "Transfer-Encoding: identity\r\n", hidden},
		{"folded Transfer-Encoding", "Transfer-Encoding:\r\n chunked\r\n", lastChunk + hidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rawExchange(t, addr, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
				tt.headers+"\r\n"+tt.body)
			if len(got) != 1 {
				t.Fatalf("%d responses, want 1 (a 400): %+v", len(got), got)
			}
			var e struct{ Error *apiError }
			if got[0].status != 400 || json.Unmarshal([]byte(got[0].body), &e) != nil || e.Error == nil ||
				e.Error.Code == nil || *e.Error.Code != "ambiguous_framing" {
				t.Fatalf("status %d, body %s; want a 400 ambiguous_framing", got[0].status, got[0].body)
			}
			if !got[0].close {
				t.Error("the 400 does not say Connection: close")
			}
		})
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("the model ran %d hidden requests", n)
	}

	// A chunked body alone is fine, and a request pipelined after it is answered too.
	t.Run("chunked alone", func(t *testing.T) {
		got := rawExchange(t, addr, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n", len(prompt), prompt)+lastChunk+
			"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		if len(got) != 2 || got[0].status != 200 || got[1].status != 200 || !strings.Contains(got[0].body, "hidden#0") {
			t.Fatalf("want two 200s, the first a completion; got %+v", got)
		}
	})
}
