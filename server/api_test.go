package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"smolchat/engine"
)

type sseEvent struct{ Name, Data string }

// readSSE reads events until the stream ends or fn returns false.
func readSSE(t testing.TB, r io.Reader, fn func(sseEvent) bool) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				if !fn(ev) {
					return
				}
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			ev.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			t.Errorf("unexpected SSE line %q", line)
		}
	}
}

func postJSON(t testing.TB, url, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func decodeBody(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

func get(t testing.TB, url string) *http.Response {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestHealthWhileLoading(t *testing.T) {
	s, base := startServer(t, nil, Config{})
	var body map[string]any
	resp := get(t, base+"/health")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("loading: status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	decodeBody(t, resp, &body)
	if body["status"] != "loading" {
		t.Fatalf("loading: body %v", body)
	}

	s.SetLoadProgress(0.42, "uploading weights")
	resp = get(t, base+"/health")
	decodeBody(t, resp, &body)
	if body["progress"] != 0.42 || body["message"] != "uploading weights" {
		t.Fatalf("progress: body %v", body)
	}
	resp = postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
	var e struct{ Error apiError }
	if resp.StatusCode != 503 {
		t.Fatalf("chat while loading: status %d, want 503", resp.StatusCode)
	}
	decodeBody(t, resp, &e)
	if e.Error.Code == nil || *e.Error.Code != "model_loading" {
		t.Fatalf("chat while loading: error %+v", e.Error)
	}

	s.SetGenerator(newFake())
	resp = get(t, base+"/health")
	decodeBody(t, resp, &body)
	if resp.StatusCode != 200 || body["status"] != "ok" {
		t.Fatalf("ready: status %d, body %v", resp.StatusCode, body)
	}
}

func TestHealthAfterLoadError(t *testing.T) {
	s, base := startServer(t, nil, Config{})
	s.SetLoadError(io.ErrUnexpectedEOF)
	var body map[string]any
	resp := get(t, base+"/health")
	decodeBody(t, resp, &body)
	if resp.StatusCode != 503 || body["status"] != "error" || !strings.Contains(body["error"].(string), "unexpected EOF") {
		t.Fatalf("status %d, body %v", resp.StatusCode, body)
	}
}

func TestModels(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	var out struct {
		Object string
		Data   []struct {
			ID, Object string
			OwnedBy    string `json:"owned_by"`
			Meta       map[string]any
		}
	}
	decodeBody(t, get(t, base+"/v1/models"), &out)
	if out.Object != "list" || len(out.Data) != 1 {
		t.Fatalf("models = %+v", out)
	}
	m := out.Data[0]
	if m.ID != "SmolLM3-3B-Q4_K_M" || m.Meta["context_length"] != 4096.0 || m.Meta["backend"] != "gpu" {
		t.Fatalf("model = %+v", m)
	}
}

type chatResponse struct {
	ID      string
	Object  string
	Model   string
	Choices []struct {
		Message struct {
			Role             string
			Content          string
			ReasoningContent string `json:"reasoning_content"`
		}
		Delta struct {
			Role             string
			Content          *string
			ReasoningContent string `json:"reasoning_content"`
		}
		Text         string
		FinishReason *string `json:"finish_reason"`
	}
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	Error *apiError
}

func TestChatCompletion(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	resp := postJSON(t, base+"/v1/chat/completions",
		`{"model":"anything","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hello there"}],"temperature":0.2,"seed":7,"stop":"END"}`)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out chatResponse
	decodeBody(t, resp, &out)
	if out.Object != "chat.completion" || !strings.HasPrefix(out.ID, "chatcmpl-") || len(out.Choices) != 1 {
		t.Fatalf("response = %+v", out)
	}
	c := out.Choices[0]
	if c.Message.Role != "assistant" || c.Message.Content != f.expectedAnswer("hello there") {
		t.Fatalf("message = %+v", c.Message)
	}
	if !strings.HasPrefix(c.Message.ReasoningContent, "Thinking step 0.") {
		t.Fatalf("reasoning_content = %q", c.Message.ReasoningContent)
	}
	if *c.FinishReason != "stop" || out.Usage == nil || out.Usage.CompletionTokens != f.thinkWords+f.answerWords+1 ||
		out.Usage.TotalTokens != out.Usage.PromptTokens+out.Usage.CompletionTokens {
		t.Fatalf("finish %v, usage %+v", *c.FinishReason, out.Usage)
	}
	req := f.lastRequest()
	if req.Params.Temperature != 0.2 || req.Params.Seed != 7 || len(req.Params.Stop) != 1 || req.Params.Stop[0] != "END" ||
		req.Params.TopP != engine.DefaultSamplerParams().TopP {
		t.Fatalf("params reaching the engine = %+v", req.Params)
	}
}

func TestThinkingControls(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	on, off := true, false
	tests := []struct {
		name  string
		extra string
		want  *bool
	}{
		{"template default", ``, nil},
		{"enable_thinking false", `,"chat_template_kwargs":{"enable_thinking":false}`, &off},
		{"enable_thinking true", `,"chat_template_kwargs":{"enable_thinking":true}`, &on},
		{"reasoning_effort none", `,"reasoning_effort":"none"`, &off},
		{"reasoning_effort high", `,"reasoning_effort":"high"`, &on},
		{"kwargs win over effort", `,"reasoning_effort":"none","chat_template_kwargs":{"enable_thinking":true}`, &on},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"q"}]`+tt.extra+`}`)
			var out chatResponse
			decodeBody(t, resp, &out)
			got := f.lastRequest().Think
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("Think = %v, want %v", ptrStr(got), ptrStr(tt.want))
			}
			hasReasoning := out.Choices[0].Message.ReasoningContent != ""
			if wantReasoning := tt.want == nil || *tt.want; hasReasoning != wantReasoning {
				t.Fatalf("reasoning_content present = %v, want %v", hasReasoning, wantReasoning)
			}
		})
	}
	// A /no_think flag in the system prompt reaches the engine untouched (the template honours it).
	resp := postJSON(t, base+"/v1/chat/completions",
		`{"messages":[{"role":"system","content":"Be brief. /no_think"},{"role":"user","content":"q"}]}`)
	var out chatResponse
	decodeBody(t, resp, &out)
	if out.Choices[0].Message.ReasoningContent != "" {
		t.Fatalf("system /no_think: reasoning %q", out.Choices[0].Message.ReasoningContent)
	}
}

func ptrStr(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}

// streamChunks posts a streaming request and returns its data chunks (without [DONE]) and whether
// [DONE] ended the stream.
func streamChunks(t testing.TB, url, body string, header ...string) ([]chatResponse, bool) {
	t.Helper()
	resp := postJSON(t, url, body, header...)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	var chunks []chatResponse
	done := false
	readSSE(t, resp.Body, func(ev sseEvent) bool {
		if ev.Data == "[DONE]" {
			done = true
			return false
		}
		var c chatResponse
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			t.Fatalf("chunk %q: %v", ev.Data, err)
		}
		chunks = append(chunks, c)
		return true
	})
	return chunks, done
}

func TestChatCompletionStream(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	chunks, done := streamChunks(t, base+"/v1/chat/completions",
		`{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me"}]}`)
	if !done {
		t.Fatal("stream did not end with [DONE]")
	}
	if len(chunks) < 3 || chunks[0].Choices[0].Delta.Role != "assistant" {
		t.Fatalf("first chunk should carry the role: %+v", chunks)
	}
	var content, reasoning strings.Builder
	var finish string
	for _, c := range chunks[:len(chunks)-1] {
		if c.Object != "chat.completion.chunk" || len(c.Choices) != 1 {
			t.Fatalf("chunk %+v", c)
		}
		d := c.Choices[0].Delta
		if d.Content != nil {
			content.WriteString(*d.Content)
		}
		reasoning.WriteString(d.ReasoningContent)
		if fr := c.Choices[0].FinishReason; fr != nil {
			finish = *fr
		}
	}
	if content.String() != f.expectedAnswer("stream me") {
		t.Fatalf("content = %q", content.String())
	}
	if !strings.HasPrefix(reasoning.String(), "Thinking step 0. Thinking step 1.") {
		t.Fatalf("reasoning = %q", reasoning.String())
	}
	if finish != "stop" {
		t.Fatalf("finish_reason = %q", finish)
	}
	last := chunks[len(chunks)-1]
	if len(last.Choices) != 0 || last.Usage == nil || last.Usage.CompletionTokens != f.thinkWords+f.answerWords+1 {
		t.Fatalf("usage chunk = %+v", last)
	}
}

func TestMaxTokens(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	for _, field := range []string{"max_tokens", "max_completion_tokens"} {
		var out chatResponse
		decodeBody(t, postJSON(t, base+"/v1/chat/completions",
			`{"`+field+`":3,"messages":[{"role":"user","content":"q"}],"reasoning_effort":"none"}`), &out)
		if *out.Choices[0].FinishReason != "length" || out.Usage.CompletionTokens != 3 {
			t.Fatalf("%s: finish %q, usage %+v", field, *out.Choices[0].FinishReason, out.Usage)
		}
	}
}

func TestCompletions(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	var out chatResponse
	decodeBody(t, postJSON(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":50}`), &out)
	if out.Object != "text_completion" || out.Choices[0].Text != f.expectedAnswer("Once upon a time") {
		t.Fatalf("completion = %+v", out)
	}
	chunks, done := streamChunks(t, base+"/v1/completions", `{"prompt":["Once upon a time"],"stream":true}`)
	var text strings.Builder
	for _, c := range chunks {
		text.WriteString(c.Choices[0].Text)
	}
	if !done || text.String() != f.expectedAnswer("Once upon a time") {
		t.Fatalf("streamed completion = %q (done %v)", text.String(), done)
	}
}

func TestAPIKey(t *testing.T) {
	_, base := startServer(t, newFake(), Config{APIKey: "s3cret"})
	body := `{"messages":[{"role":"user","content":"q"}]}`
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"missing", nil, 401},
		{"wrong", []string{"Authorization", "Bearer nope"}, 401},
		{"not bearer", []string{"Authorization", "s3cret"}, 401},
		{"right", []string{"Authorization", "Bearer s3cret"}, 200},
	}
	for _, tt := range tests {
		resp := postJSON(t, base+"/v1/chat/completions", body, tt.header...)
		var out chatResponse
		decodeBody(t, resp, &out)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
		if tt.want == 401 && (out.Error == nil || out.Error.Code == nil || *out.Error.Code != "invalid_api_key") {
			t.Errorf("%s: error body %+v", tt.name, out.Error)
		}
	}
	// The key guards /v1 only: health checks and the page stay reachable.
	if resp := get(t, base+"/health"); resp.StatusCode != 200 {
		t.Errorf("/health with an API key set: status %d", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	_, plain := startServer(t, newFake(), Config{})
	req, _ := http.NewRequest("GET", plain+"/v1/models", nil)
	req.Header.Set("Origin", "http://example.com")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Access-Control-Allow-Origin"); h != "" {
		t.Fatalf("CORS header without --cors-origin: %q", h)
	}

	_, withCORS := startServer(t, newFake(), Config{CORSOrigin: "http://example.com", APIKey: "k"})
	req, _ = http.NewRequest("OPTIONS", withCORS+"/v1/chat/completions", nil)
	req.Header.Set("Origin", "http://example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err = httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != "http://example.com" {
		t.Fatalf("preflight: status %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestMetrics(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	var out chatResponse
	decodeBody(t, postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"q"}]}`), &out)
	resp := postJSON(t, base+"/v1/chat/completions", `{`)
	resp.Body.Close()
	resp = get(t, base+"/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`smolchat_requests_total{endpoint="/v1/chat/completions",status="200"} 1`,
		`smolchat_requests_total{endpoint="/v1/chat/completions",status="400"} 1`,
		`smolchat_time_to_first_token_seconds_count 1`,
		`smolchat_generation_tokens_per_second`,
		`smolchat_prompt_tokens_per_second`,
		`smolchat_queue_depth 0`,
		`smolchat_generated_tokens_total 13`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	resp := get(t, base+"/")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	t.Logf("Content-Security-Policy: %s", csp)
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Fatalf("CSP = %q", csp)
	}
	// No inline script and no inline event handler anywhere in the page.
	page := string(body)
	if strings.Contains(page, "<script>") || strings.Contains(page, " onclick=") || strings.Contains(page, " onload=") ||
		strings.Contains(page, "style=") {
		t.Fatal("page has inline script, handler or style")
	}
	for _, asset := range []string{"/assets/app.js", "/assets/style.css", "/assets/highlight.css", "/assets/vendor/htmx.min.js", "/assets/vendor/htmx-ext-sse.min.js",
		"/assets/vendor/katex/katex.min.js", "/assets/vendor/katex/katex.min.css", "/assets/vendor/katex/fonts/KaTeX_Main-Regular.woff2"} {
		resp := get(t, base+asset)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: status %d, ETag %q", asset, resp.StatusCode, resp.Header.Get("ETag"))
		}
	}
}

func TestQueueFullRefused(t *testing.T) {
	f := newFake()
	f.delay = 20 * time.Millisecond
	f.answerWords = 100
	_, base := startServer(t, f, Config{MaxQueue: 1})
	body := `{"stream":true,"messages":[{"role":"user","content":"slow"}]}`
	// One request runs, one waits; the third is refused.
	var open []*http.Response
	for range 2 {
		resp := postJSON(t, base+"/v1/chat/completions", body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		open = append(open, resp) // its queue place was taken before the 200
	}
	resp := postJSON(t, base+"/v1/chat/completions", body)
	var out chatResponse
	decodeBody(t, resp, &out)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || out.Error == nil || *out.Error.Code != "queue_full" {
		t.Fatalf("third request: status %d, Retry-After %q, error %+v", resp.StatusCode, resp.Header.Get("Retry-After"), out.Error)
	}
	for _, r := range open {
		r.Body.Close()
	}
}
