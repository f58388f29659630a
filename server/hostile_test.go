package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"smolchat/engine"
)

// TestHostileRequests sends what a careless or malicious client might, and wants a clear 4xx with a
// message for each: never a 500, a panic, or a server that stops answering.
func TestHostileRequests(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	user := `{"role":"user","content":"hi"}`
	manyMessages := "[" + strings.Repeat(user+",", 4999) + user + "]"
	hugeBody := `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		param  string // expected error.param, if any
		inMsg  string // expected in error.message
	}{
		{"empty body", "/v1/chat/completions", ``, 400, "", "empty"},
		{"malformed JSON", "/v1/chat/completions", `{"messages": [`, 400, "", "not valid JSON"},
		{"trailing garbage", "/v1/chat/completions", `{"messages":[` + user + `]} xyz`, 400, "", "JSON"},
		{"array body", "/v1/chat/completions", `[1,2]`, 400, "", "JSON object"},
		{"null body", "/v1/chat/completions", `null`, 400, "messages", "at least one"},
		{"messages not an array", "/v1/chat/completions", `{"messages":"hi"}`, 400, "messages", "messages"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages", "at least one"},
		{"temperature as string", "/v1/chat/completions", `{"messages":[` + user + `],"temperature":"hot"}`, 400, "temperature", "temperature"},
		{"temperature out of range", "/v1/chat/completions", `{"messages":[` + user + `],"temperature":7}`, 400, "temperature", "out of range"},
		{"top_p out of range", "/v1/chat/completions", `{"messages":[` + user + `],"top_p":1.5}`, 400, "top_p", "out of range"},
		{"negative top_k", "/v1/chat/completions", `{"messages":[` + user + `],"top_k":-1}`, 400, "top_k", "negative"},
		{"negative max_tokens", "/v1/chat/completions", `{"messages":[` + user + `],"max_tokens":-5}`, 400, "max_tokens", "at least 1"},
		{"huge max_tokens", "/v1/chat/completions", `{"messages":[` + user + `],"max_tokens":100000000}`, 400, "max_tokens", "context window"},
		{"max_tokens beyond int", "/v1/chat/completions", `{"messages":[` + user + `],"max_tokens":1e30}`, 400, "max_tokens", "max_tokens"},
		{"fractional max_tokens", "/v1/chat/completions", `{"messages":[` + user + `],"max_completion_tokens":2.5}`, 400, "max_completion_tokens", ""},
		{"thousands of messages", "/v1/chat/completions", `{"messages":` + manyMessages + `}`, 400, "messages", "at most 1024"},
		{"unknown role", "/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", "wizard"},
		{"missing role", "/v1/chat/completions", `{"messages":[{"content":"x"}]}`, 400, "messages[0].role", "no role"},
		{"late system message", "/v1/chat/completions", `{"messages":[` + user + `,{"role":"system","content":"x"}]}`, 400, "messages[1].role", "first message"},
		{"content as number", "/v1/chat/completions", `{"messages":[{"role":"user","content":42}]}`, 400, "", "content"},
		{"image content part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "", "image_url"},
		{"too many choices", "/v1/chat/completions", `{"messages":[` + user + `],"n":17}`, 400, "n", "1 to 16"},
		{"no choices streamed", "/v1/chat/completions", `{"messages":[` + user + `],"n":0,"stream":true}`, 400, "n", "1 to 16"},
		{"tools without a tools section", "/v1/chat/completions", `{"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "tools", "no tools section"},
		{"unknown response format", "/v1/chat/completions", `{"messages":[` + user + `],"response_format":{"type":"xml"}}`, 400, "response_format.type", "xml"},
		{"json_schema without schema", "/v1/chat/completions", `{"messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, 400, "response_format.json_schema.schema", "needs"},
		{"unsupported schema keyword", "/v1/chat/completions", `{"messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"d":{"type":"string","format":"hostname"}}}}}}`, 400, "response_format.json_schema.schema", `"format"`},
		{"stop not strings", "/v1/chat/completions", `{"messages":[` + user + `],"stop":[1,2]}`, 400, "", "stop"},
		{"too many stops", "/v1/chat/completions", `{"messages":[` + user + `],"stop":[` + strings.Repeat(`"x",`, 40) + `"x"]}`, 400, "", "at most 16"},
		{"deep nesting", "/v1/chat/completions", `{"messages":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, 400, "", ""},
		{"invalid UTF-8", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, "", "UTF-8"},
		{"huge body", "/v1/chat/completions", hugeBody, 413, "", "limit"},
		{"top_logprobs above 20", "/v1/chat/completions", `{"messages":[` + user + `],"logprobs":true,"top_logprobs":21}`, 400, "top_logprobs", "out of range"},
		{"logprobs not a boolean", "/v1/chat/completions", `{"messages":[` + user + `],"logprobs":3}`, 400, "logprobs", "true or false"},
		{"top_logprobs without logprobs", "/v1/chat/completions", `{"messages":[` + user + `],"top_logprobs":3}`, 400, "top_logprobs", "top_logprobs"},
		{"top_logprobs zero", "/v1/chat/completions", `{"messages":[` + user + `],"logprobs":false,"top_logprobs":0}`, 400, "top_logprobs", "top_logprobs"},
		{"logit_bias out of range", "/v1/chat/completions", `{"messages":[` + user + `],"logit_bias":{"50256":-101}}`, 400, "logit_bias", "out of range"},
		{"logit_bias not an object", "/v1/chat/completions", `{"messages":[` + user + `],"logit_bias":[1]}`, 400, "logit_bias", "object"},
		{"bad grammar", "/v1/chat/completions", `{"messages":[` + user + `],"grammar":"root ::= \"a"}`, 400, "grammar", "unclosed string"},
		{"grammar not a string", "/v1/completions", `{"prompt":"x","grammar":["a"]}`, 400, "grammar", "GBNF"},
		{"grammar and json_schema", "/v1/completions", `{"prompt":"x","grammar":"root ::= \"a\"","json_schema":{}}`, 400, "grammar", "not both"},
		{"grammar_lazy", "/v1/completions", `{"prompt":"x","grammar_lazy":true}`, 400, "grammar_lazy", "lazy"},
		{"json_schema extension with multipleOf", "/v1/completions", `{"prompt":"x","json_schema":{"type":"integer","multipleOf":2}}`, 400, "json_schema", `"multipleOf"`},
		{"typical_p", "/v1/chat/completions", `{"messages":[` + user + `],"typical_p":0.5}`, 400, "typical_p", "typical"},
		{"mirostat", "/v1/chat/completions", `{"messages":[` + user + `],"mirostat":2}`, 400, "mirostat", "mirostat"},
		{"dry", "/v1/chat/completions", `{"messages":[` + user + `],"dry_multiplier":0.8}`, 400, "dry_multiplier", "DRY"},
		{"ignore_eos", "/v1/chat/completions", `{"messages":[` + user + `],"ignore_eos":true}`, 400, "ignore_eos", "end-of-generation"},
		{"n_probs", "/v1/completions", `{"prompt":"x","n_probs":5}`, 400, "n_probs", "logprobs"},
		{"samplers", "/v1/completions", `{"prompt":"x","samplers":["top_k"]}`, 400, "samplers", "fixed"},
		{"repeat_last_n below -1", "/v1/chat/completions", `{"messages":[` + user + `],"repeat_last_n":-2}`, 400, "repeat_last_n", "-1"},
		{"functions", "/v1/chat/completions", `{"messages":[` + user + `],"functions":[{"name":"f"}]}`, 400, "functions", "not supported"},
		{"tool_choice required without tools", "/v1/chat/completions", `{"messages":[` + user + `],"tool_choice":"required"}`, 400, "tool_choice", "needs tools"},
		{"tool_choice unknown", "/v1/chat/completions", `{"messages":[` + user + `],"tool_choice":"always"}`, 400, "tool_choice", "always"},
		{"named function_call", "/v1/chat/completions", `{"messages":[` + user + `],"function_call":{"name":"f"}}`, 400, "function_call", "tool_choice"},
		{"tool_calls on a user message", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, 400, "messages[0].tool_calls", "assistant"},
		{"audio modality", "/v1/chat/completions", `{"messages":[` + user + `],"modalities":["text","audio"]}`, 400, "modalities", "text only"},
		{"audio", "/v1/chat/completions", `{"messages":[` + user + `],"audio":{"voice":"alloy","format":"wav"}}`, 400, "audio", "text only"},
		{"web search", "/v1/chat/completions", `{"messages":[` + user + `],"web_search_options":{}}`, 400, "web_search_options", "not supported"},
		{"verbosity", "/v1/chat/completions", `{"messages":[` + user + `],"verbosity":"low"}`, 400, "verbosity", "not supported"},
		{"suffix", "/v1/completions", `{"prompt":"x","suffix":"end"}`, 400, "suffix", "not supported"},
		{"best_of", "/v1/completions", `{"prompt":"x","best_of":3}`, 400, "best_of", "one completion"},
		{"completion logprobs negative", "/v1/completions", `{"prompt":"x","logprobs":-1}`, 400, "logprobs", "out of range"},
		{"completion logit_bias key", "/v1/completions", `{"prompt":"x","logit_bias":{"x":5}}`, 400, "logit_bias", "token id"},
		{"token prompt", "/v1/completions", `{"prompt":[1,2,3]}`, 400, "", "prompt"},
		{"no prompt", "/v1/completions", `{}`, 400, "prompt", "empty"},
		{"echo", "/v1/completions", `{"prompt":"x","echo":true}`, 400, "echo", "not supported"},
		{"unknown endpoint", "/v1/embeddings", `{}`, 404, "", "unknown endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postJSON(t, base+tt.path, tt.body)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			var out struct{ Error *apiError }
			if err := json.Unmarshal(b, &out); err != nil || out.Error == nil {
				t.Fatalf("not an OpenAI error body: %s (%v)", b, err)
			}
			e := out.Error
			if e.Message == "" || e.Type == "" {
				t.Fatalf("error lacks message or type: %s", b)
			}
			if tt.param != "" && (e.Param == nil || *e.Param != tt.param) {
				t.Errorf("param = %v, want %q (%s)", e.Param, tt.param, e.Message)
			}
			if !strings.Contains(e.Message, tt.inMsg) {
				t.Errorf("message %q lacks %q", e.Message, tt.inMsg)
			}
		})
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d hostile requests reached the model", n)
	}
	// The server still works.
	var out chatResponse
	decodeBody(t, postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"<script>alert(1)</script>"}]}`), &out)
	if len(out.Choices) != 1 || !strings.Contains(out.Choices[0].Message.Content, "<script>alert(1)</script>") {
		t.Fatalf("a normal request after the hostile ones: %+v", out)
	}
}

// unhonouredDefaults are bodies that give every field the server does not honour its default, and the
// fields it ignores a value: all must be accepted.
var unhonouredDefaults = []struct{ path, body string }{
	{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"logit_bias":{},"logprobs":false,"top_logprobs":null,` +
		`"tools":[],"functions":[],"tool_choice":"none","function_call":"auto","modalities":["text"],"audio":null,` +
		`"web_search_options":null,"verbosity":"medium","parallel_tool_calls":false,"prediction":{"type":"content","content":"x"},` +
		`"user":"u","metadata":{"k":"v"},"store":false,"service_tier":"auto"}`},
	{"/v1/completions", `{"prompt":"hi","echo":false,"suffix":"","best_of":1,"logprobs":null,"logit_bias":{ },"user":"u"}`},
	// What llama.cpp's own web UI sends: its defaults.
	{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"typical_p":1,"mirostat":0,"tfs_z":1.0,` +
		`"xtc_probability":0,"dry_multiplier":0,"dynatemp_range":0,"top_n_sigma":-1,"n_probs":0,"ignore_eos":false,` +
		`"n_predict":-1,"grammar":"","samplers":null,"reasoning_format":"deepseek","add_generation_prompt":true}`},
}

// TestLlamaInertFieldsIgnored checks that the llama.cpp fields that change nothing pass with any value.
func TestLlamaInertFieldsIgnored(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	for _, name := range llamaInert {
		body := `{"messages":[{"role":"user","content":"hi"}],"` + name + `":{"any":[1,"x"]}}`
		if out := callAPI(t, base+"/v1/chat/completions", body); out.status != 200 || out.err != nil {
			t.Errorf("%s: status %d, error %v", name, out.status, out.err)
		}
	}
}

// TestLogitBiasReachesEngine checks that logit_bias and repeat_last_n arrive in the engine's parameters.
func TestLogitBiasReachesEngine(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	body := `{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"7":-100,"12":3.5},"repeat_last_n":-1}`
	if out := callAPI(t, base+"/v1/chat/completions", body); out.status != 200 || out.err != nil {
		t.Fatalf("status %d, error %v", out.status, out.err)
	}
	p := f.lastRequest().Params
	if len(p.LogitBias) != 2 || p.LogitBias[7] != -100 || p.LogitBias[12] != 3.5 || p.RepeatLastN != -1 {
		t.Errorf("engine got logit_bias %v, repeat_last_n %d", p.LogitBias, p.RepeatLastN)
	}
	var s sampling
	s.LogitBias = logitBias{50000: 1}
	if _, err := s.params(4096, 49152); err == nil || err.Param == nil || *err.Param != "logit_bias" {
		t.Errorf("a token beyond the vocabulary: error %v, want a 400 naming logit_bias", err)
	}
}

// TestUnhonouredFieldDefaults checks that fields the server cannot honour pass when they hold their
// defaults, which change nothing, and that fields which do not change the answer are ignored.
func TestUnhonouredFieldDefaults(t *testing.T) {
	_, base := startServer(t, newFake(), Config{})
	for _, r := range unhonouredDefaults {
		if out := callAPI(t, base+r.path, r.body); out.status != 200 || out.err != nil {
			t.Errorf("%s: status %d, error %v", r.path, out.status, out.err)
		}
	}
}

// TestSamplingRefusesNonFinite checks every float sampling field against NaN and the infinities, which
// JSON cannot carry but a caller of params could.
func TestSamplingRefusesNonFinite(t *testing.T) {
	fields := []struct {
		name string
		set  func(p *sampling, v *float64)
	}{
		{"temperature", func(p *sampling, v *float64) { p.Temperature = v }},
		{"top_p", func(p *sampling, v *float64) { p.TopP = v }},
		{"min_p", func(p *sampling, v *float64) { p.MinP = v }},
		{"repeat_penalty", func(p *sampling, v *float64) { p.RepeatPenalty = v }},
		{"presence_penalty", func(p *sampling, v *float64) { p.PresencePenalty = v }},
		{"frequency_penalty", func(p *sampling, v *float64) { p.FrequencyPenalty = v }},
	}
	for _, f := range fields {
		for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			var p sampling
			f.set(&p, &v)
			_, err := p.params(4096, 0)
			if err == nil || err.Param == nil || *err.Param != f.name {
				t.Errorf("%s = %v: error %v, want a 400 naming %s", f.name, v, err, f.name)
			}
		}
	}
}

// TestHostilePage sends the page's endpoints bad input.
func TestHostilePage(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	b := newBrowser(t, base)
	conv, sid, _ := b.send("", "hi", true)
	b.stream(sid, nil)
	tests := []struct {
		name, method, path string
		form               url.Values
		status             int
	}{
		{"empty message", "POST", "/chat", url.Values{"content": {"   "}}, 400},
		{"invalid UTF-8", "POST", "/chat", url.Values{"content": {"\xff\xfe"}}, 400},
		{"bad temperature", "POST", "/chat", url.Values{"content": {"x"}, "temperature": {"hot"}}, 400},
		{"NaN temperature", "POST", "/chat", url.Values{"content": {"x"}, "temperature": {"NaN"}}, 400},
		{"infinite temperature", "POST", "/chat", url.Values{"content": {"x"}, "temperature": {"+Inf"}}, 400},
		{"NaN temperature setting", "POST", "/settings", url.Values{"conversation": {conv}, "temperature": {"nan"}}, 400},
		{"/temp NaN", "POST", "/chat", url.Values{"content": {"/temp NaN"}, "conversation": {conv}}, 400},
		{"/temp -Inf", "POST", "/chat", url.Values{"content": {"/temp -Inf"}, "conversation": {conv}}, 400},
		{"missing conversation", "POST", "/chat", url.Values{"content": {"x"}, "conversation": {"nope"}}, 404},
		{"regenerate missing", "POST", "/c/nope/regenerate", nil, 404},
		{"edit bad id", "POST", "/c/" + conv + "/m/abc", url.Values{"content": {"x"}}, 400},
		{"edit missing message", "POST", "/c/" + conv + "/m/999999", url.Values{"content": {"x"}}, 404},
		{"edit empty", "POST", "/c/" + conv + "/m/1", url.Values{"content": {""}}, 400},
		{"delete missing", "DELETE", "/c/nope", nil, 404},
		{"export bad format", "GET", "/c/" + conv + "/export/exe", nil, 404},
		{"export missing", "GET", "/c/nope/export/md", nil, 404},
		{"huge form", "POST", "/chat", url.Values{"content": {strings.Repeat("x", 2<<20)}}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.do(tt.method, tt.path, tt.form)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, `class="notice error"`) {
				t.Fatalf("no error notice: %s", body)
			}
		})
	}

	// Markup in a message is shown, never run: escaped in the page, the stream and the final answer.
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	_, sid, body := b.send(conv, evil, false)
	evs := b.stream(sid, nil)
	page := b.get("/c/" + conv)
	for name, text := range map[string]string{"send response": body, "stream": streamed(evs, "answer") + lastEvent(t, evs).Data, "page": page} {
		if strings.Contains(text, "<script>alert") || strings.Contains(text, "<img src=x") {
			t.Errorf("%s carries live markup", name)
		}
		if !strings.Contains(text, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s lacks the escaped text", name)
		}
	}
}

// TestPanicIsolated makes the model panic: that request fails with a 500, and the server lives on.
func TestPanicIsolated(t *testing.T) {
	_, base := startServer(t, panicGen{newFake()}, Config{})
	resp := postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"boom"}]}`)
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("panicking handler: status %d, want 500", resp.StatusCode)
	}
	// A panic inside a stream ends that stream only.
	resp = postJSON(t, base+"/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"boom"}]}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var out chatResponse
	decodeBody(t, postJSON(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"fine"}]}`), &out)
	if len(out.Choices) != 1 {
		t.Fatalf("server broken after panics: %+v", out)
	}
	if resp := get(t, base+"/health"); resp.StatusCode != http.StatusOK {
		t.Fatalf("health after panics: %d", resp.StatusCode)
	}
}

// panicGen panics on messages saying "boom".
type panicGen struct{ *fakeGen }

func (p panicGen) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	if req.Messages[len(req.Messages)-1].Content == "boom" {
		panic(fmt.Sprintf("boom %d", len(req.Messages)))
	}
	return p.fakeGen.Chat(ctx, req, emit)
}
