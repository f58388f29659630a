package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentStreams runs 16 streaming clients at once against a queue of 8: each is either served
// its own answer, complete and in order, or refused cleanly with 503; the model never runs two
// generations at once.
func TestConcurrentStreams(t *testing.T) {
	const clients = 16
	f := newFake()
	f.delay = 3 * time.Millisecond
	f.answerWords = 20
	_, base := startServer(t, f, Config{MaxQueue: 8})

	type outcome struct {
		status  int
		content string
		err     error
	}
	results := make([]outcome, clients)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tag := fmt.Sprintf("client-%02d", i)
			body := `{"stream":true,"reasoning_effort":"none","messages":[{"role":"user","content":"` + tag + `"}]}`
			req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			results[i].status = resp.StatusCode
			if resp.StatusCode != 200 {
				if resp.Header.Get("Retry-After") == "" {
					results[i].err = fmt.Errorf("status %d without Retry-After", resp.StatusCode)
				}
				io.Copy(io.Discard, resp.Body)
				return
			}
			var content strings.Builder
			readSSE(t, resp.Body, func(ev sseEvent) bool {
				if ev.Data == "[DONE]" {
					return false
				}
				var c chatResponse
				if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
					results[i].err = err
					return false
				}
				if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil {
					content.WriteString(*c.Choices[0].Delta.Content)
				}
				return true
			})
			results[i].content = content.String()
		}()
	}
	close(start)
	wg.Wait()

	served, refused := 0, 0
	for i, r := range results {
		tag := fmt.Sprintf("client-%02d", i)
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", tag, r.err)
		case r.status == 503:
			refused++
		case r.status == 200:
			served++
			if want := f.expectedAnswer(tag); r.content != want {
				t.Errorf("%s: got %q, want %q (lost or interleaved tokens)", tag, r.content, want)
			}
		default:
			t.Errorf("%s: status %d", tag, r.status)
		}
	}
	if served < 9 || served+refused != clients {
		t.Errorf("served %d, refused %d of %d; want at least 1 running + 8 queued served", served, refused, clients)
	}
	if m := f.maxActive.Load(); m != 1 {
		t.Errorf("the model ran %d generations at once", m)
	}
	t.Logf("served %d, refused %d", served, refused)
}

// TestDisconnectFreesModel drops a streaming client mid-answer: the generation must stop within a
// second, and a client waiting in the queue behind it gets the model.
func TestDisconnectFreesModel(t *testing.T) {
	f := newFake()
	f.delay = 10 * time.Millisecond
	f.answerWords = 10000
	_, base := startServer(t, f, Config{})
	addr := strings.TrimPrefix(base, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"stream":true,"messages":[{"role":"user","content":"endless"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(body), body)
	r := bufio.NewReader(conn)
	// Read until the answer is flowing.
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"endless#`) {
			break
		}
	}
	if f.active.Load() != 1 {
		t.Fatal("no generation running")
	}
	conn.Close()
	took, ok := f.waitIdle(time.Second)
	if !ok {
		t.Fatal("the generation ran on for more than a second after its client left")
	}
	t.Logf("generation stopped %v after the disconnect", took)

	// A queued client that leaves gives up its place: the queue empties within a heartbeat or so.
	s2, base2 := startServer(t, f, Config{})
	hold := postJSON(t, base2+"/v1/chat/completions", body)
	defer hold.Body.Close()
	addr2 := strings.TrimPrefix(base2, "http://")
	conn2, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn2, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr2, len(body), body)
	deadline := time.Now().Add(time.Second)
	for s2.queue.waitingCount() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s2.queue.waitingCount() != 1 {
		t.Fatal("the second client never queued")
	}
	conn2.Close()
	deadline = time.Now().Add(3 * heartbeat)
	for s2.queue.waitingCount() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s2.queue.waitingCount(); n != 0 {
		t.Fatalf("a gone client still waits in the queue (%d waiting)", n)
	}
}

func (q *queue) waitingCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// TestDisconnectFreesModelNonStreaming drops clients of the JSON (non-streaming) endpoints mid-answer:
// the generation must stop within a second, although nothing is written to them until it ends. A
// keep-alive client that stays sends two requests on one connection, both answered in full: watching
// the connection between request and response takes nothing from it.
func TestDisconnectFreesModelNonStreaming(t *testing.T) {
	f := newFake()
	f.delay = 10 * time.Millisecond
	_, base := startServer(t, f, Config{})
	addr := strings.TrimPrefix(base, "http://")
	send := func(conn net.Conn, path, body string) {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			path, addr, len(body), body); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"endless"}]}`},
		{"/v1/completions", `{"prompt":"endless"}`},
	} {
		f.answerWords = 10000
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		send(conn, c.path, c.body)
		deadline := time.Now().Add(5 * time.Second)
		for f.active.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no generation started", c.path)
			}
			time.Sleep(2 * time.Millisecond)
		}
		conn.Close() // mid-answer: the generation runs
		took, ok := f.waitIdle(time.Second)
		if !ok {
			t.Fatalf("%s: the generation ran on for more than a second after its client left", c.path)
		}
		t.Logf("%s: generation stopped %v after the disconnect", c.path, took)
	}

	f.answerWords = 3
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i, msg := range []string{"first", "second"} {
		send(conn, "/v1/chat/completions", `{"messages":[{"role":"user","content":"`+msg+`"}]}`)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i+1, err)
		}
		var out struct {
			Choices []struct{ Message struct{ Content string } }
		}
		decodeBody(t, resp, &out)
		if resp.StatusCode != 200 || len(out.Choices) != 1 || out.Choices[0].Message.Content != f.expectedAnswer(msg) {
			t.Fatalf("request %d: status %d, %+v; want %q", i+1, resp.StatusCode, out, f.expectedAnswer(msg))
		}
	}
}
