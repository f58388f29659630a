package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smolchat/engine"
)

// loadRequest is one request of the load test. Greedy decoding makes its answer a function of the
// request alone, whatever runs before or beside it.
type loadRequest struct {
	chat      bool // /v1/chat/completions, else /v1/completions
	prompt    string
	maxTokens int
}

func (r loadRequest) body(stream bool) string {
	p, _ := json.Marshal(r.prompt)
	s := fmt.Sprintf(`"stream":%v,"stream_options":{"include_usage":true},"temperature":0,"max_tokens":%d,"seed":%d`,
		stream, r.maxTokens, len(r.prompt))
	if !stream {
		s = fmt.Sprintf(`"temperature":0,"max_tokens":%d`, r.maxTokens)
	}
	if r.chat {
		return `{` + s + `,"messages":[{"role":"user","content":` + string(p) + `}]}`
	}
	return `{` + s + `,"prompt":` + string(p) + `}`
}

func (r loadRequest) url(base string) string {
	if r.chat {
		return base + "/v1/chat/completions"
	}
	return base + "/v1/completions"
}

// loadAnswer is what a client got: the text, the finish reason and the completion tokens.
type loadAnswer struct {
	text   string
	finish string
	tokens int
}

// decodeAnswer reads a non-streamed answer.
func decodeAnswer(b []byte) (loadAnswer, error) {
	var out struct {
		Choices []struct {
			Text    string
			Message struct{ Content string }
			Finish  string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return loadAnswer{}, err
	}
	if len(out.Choices) != 1 {
		return loadAnswer{}, fmt.Errorf("%d choices in %s", len(out.Choices), b)
	}
	c := out.Choices[0]
	return loadAnswer{text: c.Text + c.Message.Content, finish: c.Finish, tokens: out.Usage.CompletionTokens}, nil
}

// readStream reads a streamed answer; stopAfter > 0 closes it after that many chunks (a client that
// leaves), and the answer is then incomplete.
func readStream(r io.Reader, stopAfter int) (loadAnswer, bool, error) {
	var a loadAnswer
	sc := bufio.NewScanner(r)
	chunks := 0
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return a, true, nil
		}
		var c struct {
			Choices []struct {
				Text   string
				Delta  struct{ Content string }
				Finish *string `json:"finish_reason"`
			}
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			}
			Error *apiError
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return a, false, err
		}
		if c.Error != nil {
			return a, false, fmt.Errorf("error chunk: %s", c.Error.Message)
		}
		for _, ch := range c.Choices {
			a.text += ch.Text + ch.Delta.Content
			if ch.Finish != nil {
				a.finish = *ch.Finish
			}
		}
		if c.Usage != nil {
			a.tokens = c.Usage.CompletionTokens
		}
		if chunks++; stopAfter > 0 && chunks >= stopAfter {
			return a, false, nil
		}
	}
	return a, false, sc.Err()
}

// rssKiB is the process's resident memory, where the OS tells it simply (Linux); 0 elsewhere.
func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// liveGoroutines counts goroutines, leaving out fasthttp's idle workers: the server keeps a pool of
// them for a while after a burst (they exit after ten idle seconds) and they hold nothing.
func liveGoroutines() (all, live int) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		all++
		if !strings.Contains(g, "fasthttp.(*workerPool).workerFunc") || !strings.Contains(g, "[chan receive") {
			live++
		}
	}
	return all, live
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestLoadRealModel puts 32 clients × 20 requests through the server running stories260K on the CPU:
// chat and completion, streamed and not, greedy, 8 to 16 tokens each, some clients leaving mid-answer,
// against a queue of 16 so that some are refused. Every request must either be refused with a 503 or
// get exactly the answer the same request gets alone (so no stream saw another's tokens), with the
// finish reason and token count that go with it. Afterwards the goroutines are back to their number
// before the run and the heap has not grown.
func TestLoadRealModel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the load test in -short mode")
	}
	const (
		clients   = 32
		perClient = 20
		maxQueue  = 16
	)
	e := storiesOnCPU(t, 256)
	s, base := startServer(t, e, Config{MaxQueue: maxQueue})
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	defer transport.CloseIdleConnections()

	openings := []string{"Once upon a time", "Lily had a red ball", "The cat sat", "Tom went to the park",
		"One day, a little bird", "The sun was hot", "Mom said", "There was a big dog", "Sue and Ben",
		"The little fish swam", "A boy named Tim", "In the forest", "The old tree", "Anna liked to sing",
		"It was raining", "The car was fast"}
	var reqs []loadRequest
	for i, o := range openings {
		reqs = append(reqs, loadRequest{chat: true, prompt: o, maxTokens: 8 + i%3*4},
			loadRequest{chat: false, prompt: o, maxTokens: 16 - i%3*4})
	}

	// Solo answers, one request at a time.
	solo := make([]loadAnswer, len(reqs))
	for i, r := range reqs {
		resp, err := client.Post(r.url(base), "application/json", strings.NewReader(r.body(false)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("solo %d: status %d: %s", i, resp.StatusCode, b)
		}
		if solo[i], err = decodeAnswer(b); err != nil {
			t.Fatal(err)
		}
		a := solo[i]
		if (a.finish == "length" && a.tokens != r.maxTokens) || (a.finish == "stop" && a.tokens >= r.maxTokens) ||
			(a.finish != "length" && a.finish != "stop") {
			t.Fatalf("solo %d (%+v): finish %q after %d tokens", i, r, a.finish, a.tokens)
		}
	}
	transport.CloseIdleConnections()
	// The baseline once the server has closed the solo requests' connections too.
	for deadline := time.Now().Add(10 * time.Second); s.conns.count() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server still tracks %d connections 10 s after the client closed them", s.conns.count())
		}
	}
	goBefore, liveBefore := liveGoroutines()
	heapBefore, rssBefore := heapInUse(), rssKiB()

	var served, refused, left, streamed atomic.Int32
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for n := range perClient {
				i := rng.IntN(len(reqs))
				r := reqs[i]
				stream := rng.IntN(2) == 0
				leave := 0
				if stream && rng.IntN(8) == 0 {
					leave = 1 + rng.IntN(4) // leaves after a few chunks
				}
				resp, err := client.Post(r.url(base), "application/json", strings.NewReader(r.body(stream)))
				if err != nil {
					fail("client %d request %d: %v", c, n, err)
					continue
				}
				switch {
				case resp.StatusCode == 503:
					if resp.Header.Get("Retry-After") == "" {
						fail("client %d: 503 without Retry-After", c)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					refused.Add(1)
					time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond) // backs off, as Retry-After asks
					continue
				case resp.StatusCode != 200:
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					fail("client %d: status %d: %s", c, resp.StatusCode, b)
					continue
				}
				var got loadAnswer
				if stream {
					var done bool
					got, done, err = readStream(resp.Body, leave)
					resp.Body.Close()
					if leave > 0 && !done {
						left.Add(1)
						if !strings.HasPrefix(solo[i].text, got.text) {
							fail("client %d left with %q, not a prefix of %q", c, got.text, solo[i].text)
						}
						continue
					}
					if err == nil && !done {
						err = fmt.Errorf("stream ended without [DONE]")
					}
					streamed.Add(1)
				} else {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil {
						got, err = decodeAnswer(b)
					}
				}
				if err != nil {
					fail("client %d request %d (%+v, stream %v): %v", c, n, r, stream, err)
					continue
				}
				served.Add(1)
				if got != solo[i] {
					fail("client %d request %d (%+v, stream %v): got %+v, alone it gets %+v", c, n, r, stream, got, solo[i])
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	transport.CloseIdleConnections()

	// The server's goroutines wind down once the last connections close.
	var goAfter, liveAfter int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		goAfter, liveAfter = liveGoroutines()
		if liveAfter <= liveBefore+3 || time.Now().After(deadline) {
			break
		}
	}
	heapAfter, rssAfter := heapInUse(), rssKiB()
	for _, f := range failures {
		t.Error(f)
	}
	total := int(served.Load() + refused.Load() + left.Load())
	t.Logf("%d requests in %v: %d served (%d streamed), %d refused with 503, %d clients left mid-stream; %d failures",
		total, took.Round(time.Millisecond), served.Load(), streamed.Load(), refused.Load(), left.Load(), len(failures))
	t.Logf("goroutines: %d before, %d after (%d and %d without idle fasthttp workers)", goBefore, goAfter, liveBefore, liveAfter)
	t.Logf("heap in use after GC: %.1f MiB before, %.1f MiB after; RSS %d KiB before, %d KiB after",
		float64(heapBefore)/(1<<20), float64(heapAfter)/(1<<20), rssBefore, rssAfter)
	if total+len(failures) < clients*perClient {
		t.Errorf("only %d of %d requests accounted for", total, clients*perClient)
	}
	if served.Load() < clients || refused.Load() == 0 {
		t.Errorf("served %d, refused %d: the test should both serve and refuse many", served.Load(), refused.Load())
	}
	if liveAfter > liveBefore+3 {
		var buf [1 << 20]byte
		t.Errorf("goroutines: %d live before, %d after the run\n%s", liveBefore, liveAfter, buf[:runtime.Stack(buf[:], true)])
	}
	if heapAfter > heapBefore+16<<20 {
		t.Errorf("heap in use grew from %d to %d bytes", heapBefore, heapAfter)
	}
}

// timedGen records when each generation ends and how, to measure how fast a cancelled one lets go of
// the model. pace, when set, sleeps after each token, as a slower model would take.
type timedGen struct {
	Generator
	pace   time.Duration
	mu     sync.Mutex
	ended  []time.Time
	finish []string
	tok    []time.Time // when each token was emitted, for the current generation
}

func (g *timedGen) wrap(ctx context.Context, emit func(engine.Delta) error) func(engine.Delta) error {
	g.mu.Lock()
	g.tok = nil
	g.mu.Unlock()
	if emit == nil {
		return nil
	}
	return func(d engine.Delta) error {
		g.mu.Lock()
		g.tok = append(g.tok, time.Now())
		g.mu.Unlock()
		if err := emit(d); err != nil {
			return err
		}
		if g.pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(g.pace):
			}
		}
		return nil
	}
}

func (g *timedGen) done(res engine.Result) {
	g.mu.Lock()
	g.ended = append(g.ended, time.Now())
	g.finish = append(g.finish, res.FinishReason)
	g.mu.Unlock()
}

func (g *timedGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	res, err := g.Generator.Chat(ctx, req, g.wrap(ctx, emit))
	g.done(res)
	return res, err
}

func (g *timedGen) Complete(ctx context.Context, prompt string, p engine.GenParams, emit func(engine.Delta) error) (engine.Result, error) {
	res, err := g.Generator.Complete(ctx, prompt, p, g.wrap(ctx, emit))
	g.done(res)
	return res, err
}

// waitEnded waits for the n'th generation to end and returns when it did and why.
func (g *timedGen) waitEnded(t *testing.T, n int) (time.Time, string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		if len(g.ended) >= n {
			end, finish := g.ended[n-1], g.finish[n-1]
			g.mu.Unlock()
			return end, finish
		}
		g.mu.Unlock()
	}
	t.Fatalf("generation %d did not end", n)
	return time.Time{}, ""
}

// tokenInterval is the median time between the current generation's tokens.
func (g *timedGen) tokenInterval() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var d []time.Duration
	for i := 1; i < len(g.tok); i++ {
		d = append(d, g.tok[i].Sub(g.tok[i-1]))
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// TestCancellationLatency measures, on stories260K on the CPU, the time from a client leaving a stream
// (its connection closed) and from pressing Stop in the page (POST /stream/{id}/cancel) to the engine
// being free: the generation has returned, so the next request can have the model. It runs at the
// model's own speed and paced to 20 ms a token (a 3B model's speed on a GPU). Stop cancels the
// generation's context, which the engine checks between tokens. A disconnect is noticed when a write
// fails: fasthttp copies a stream to the socket from an in-memory pipe, so the failure reaches the
// writer a few tokens (or, with fast tokens, a few milliseconds) after the client left.
func TestCancellationLatency(t *testing.T) {
	e := storiesOnCPU(t, 2048)
	for _, pace := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprintf("pace %v", pace), func(t *testing.T) {
			g := &timedGen{Generator: e, pace: pace}
			_, base := startServer(t, g, Config{})
			addr := strings.TrimPrefix(base, "http://")
			const rounds = 5
			var disconnect, stop []time.Duration
			var interval time.Duration
			n := 0
			for round := range rounds {
				// A streaming API client closes its connection once the answer flows. Penalties keep the
				// story from ending by itself before that.
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				body := `{"stream":true,"max_tokens":2000,"temperature":0,"presence_penalty":2,"prompt":"Once upon a time ` + strconv.Itoa(round) + `"}`
				fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
					addr, len(body), body)
				r := bufio.NewReader(conn)
				for chunks := 0; chunks < 20; {
					line, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(line, "data: {") {
						chunks++
					}
				}
				interval = g.tokenInterval()
				left := time.Now()
				conn.Close()
				n++
				end, finish := g.waitEnded(t, n)
				if finish != engine.FinishCancelled {
					t.Fatalf("round %d: the generation ended with %q, not cancelled", round, finish)
				}
				disconnect = append(disconnect, end.Sub(left))

				// The page's Stop button.
				b := newBrowser(t, base)
				resp, page := b.do("POST", "/chat", url.Values{"content": {"Once upon a time " + strconv.Itoa(round)}, "temperature": {"0"}})
				m := streamAttr.FindStringSubmatch(page)
				if resp.StatusCode != 200 || m == nil {
					t.Fatalf("send: status %d: %s", resp.StatusCode, page)
				}
				sid := m[1]
				events := make(chan sseEvent, 4096)
				go func() {
					b.stream(sid, func(ev sseEvent) { events <- ev })
					close(events)
				}()
				for answers := 0; answers < 20; {
					ev, ok := <-events
					if !ok {
						t.Fatal("the page's stream ended before Stop")
					}
					if strings.HasPrefix(ev.Name, "answer-") {
						answers++
					}
				}
				pressed := time.Now()
				if resp, body := b.do("POST", "/stream/"+sid+"/cancel", nil); resp.StatusCode != 204 {
					t.Fatalf("Stop: status %d: %s", resp.StatusCode, body)
				}
				n++
				end, finish = g.waitEnded(t, n)
				if finish != engine.FinishCancelled {
					t.Fatalf("round %d: the page's generation ended with %q, not stopped", round, finish)
				}
				stop = append(stop, end.Sub(pressed))
				for range events {
				}
			}
			slices.Sort(disconnect)
			slices.Sort(stop)
			t.Logf("time per token %v; client disconnect → engine free: median %v, max %v; Stop → engine free: median %v, max %v (%d rounds)",
				interval, disconnect[rounds/2], disconnect[rounds-1], stop[rounds/2], stop[rounds-1], rounds)
			// A few tokens' time, measured (the race detector, for one, slows tokens well beyond the pace).
			if limit := 500*time.Millisecond + 4*max(pace, interval); disconnect[rounds-1] > limit || stop[rounds-1] > limit {
				t.Errorf("cancellation took too long: disconnect max %v, stop max %v (limit %v)", disconnect[rounds-1], stop[rounds-1], limit)
			}
		})
	}
}
