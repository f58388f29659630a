package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
)

// Responses of the OpenAI-compatible API. Reasoning is returned apart from the answer, as
// reasoning_content (delta.reasoning_content in streams), the way llama.cpp and DeepSeek do.

// completion is the envelope of chat and text completions and of their stream chunks.
type completion[C any] struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []C      `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
	Timings *timings `json:"timings,omitempty"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      *chatOutMsg   `json:"message,omitempty"`
	Delta        *chatOutMsg   `json:"delta,omitempty"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// chatLogprobs is chat's logprobs: one entry per generated token, the reasoning's included (tokens do
// not split cleanly at </think>), so that joining the tokens gives the whole output.
type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
}

type tokenLogprob struct {
	Token       string         `json:"token"`
	Logprob     float64        `json:"logprob"`
	Bytes       []int          `json:"bytes"`
	TopLogprobs []tokenLogprob `json:"top_logprobs,omitempty"`
}

// logprobValue is a log probability as JSON can carry it: -Inf (a token the constraint forbade) is
// -9999, as OpenAI's API reports tokens of no probability.
func logprobValue(x float32) float64 {
	if math.IsInf(float64(x), -1) {
		return -9999
	}
	return float64(x)
}

func tokenLogprobOf(token []byte, lp float32) tokenLogprob {
	b := make([]int, len(token))
	for i, c := range token {
		b[i] = int(c)
	}
	return tokenLogprob{Token: string(token), Logprob: logprobValue(lp), Bytes: b}
}

// chatLogprobsOf converts the engine's log probabilities; nil (JSON null) when there are none.
func chatLogprobsOf(lps ...engine.TokenLogprob) *chatLogprobs {
	if len(lps) == 0 {
		return nil
	}
	out := &chatLogprobs{Content: make([]tokenLogprob, 0, len(lps))}
	for _, lp := range lps {
		t := tokenLogprobOf(lp.Bytes, lp.Logprob)
		t.TopLogprobs = []tokenLogprob{} // present, even when empty, as OpenAI's API sends it
		for _, a := range lp.Top {
			t.TopLogprobs = append(t.TopLogprobs, tokenLogprobOf(a.Bytes, a.Logprob))
		}
		out.Content = append(out.Content, t)
	}
	return out
}

// textLogprobs is the legacy completions logprobs: parallel arrays, the alternatives keyed by text.
type textLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// textLogprobsOf converts the engine's log probabilities, the first token at offset bytes into the
// text; nil (JSON null) when there are none.
func textLogprobsOf(offset int, lps ...engine.TokenLogprob) *textLogprobs {
	if len(lps) == 0 {
		return nil
	}
	out := &textLogprobs{}
	for _, lp := range lps {
		out.Tokens = append(out.Tokens, string(lp.Bytes))
		out.TokenLogprobs = append(out.TokenLogprobs, logprobValue(lp.Logprob))
		top := map[string]float64{}
		for _, a := range lp.Top {
			if _, dup := top[string(a.Bytes)]; !dup { // two tokens of the same text: the likelier one
				top[string(a.Bytes)] = logprobValue(a.Logprob)
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(lp.Bytes)
	}
	return out
}

type chatOutMsg struct {
	Role             string        `json:"role,omitempty"`
	Content          *string       `json:"content,omitempty"`
	ReasoningContent string        `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
}

type textChoice struct {
	Index        int           `json:"index"`
	Text         string        `json:"text"`
	Logprobs     *textLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// timings is llama.cpp's per-request timing extension.
type timings struct {
	CacheN             int     `json:"cache_n"`
	PromptN            int     `json:"prompt_n"`
	PromptMS           float64 `json:"prompt_ms"`
	PromptPerSecond    float64 `json:"prompt_per_second"`
	PredictedN         int     `json:"predicted_n"`
	PredictedMS        float64 `json:"predicted_ms"`
	PredictedPerSecond float64 `json:"predicted_per_second"`
	TimeToFirstTokenMS float64 `json:"time_to_first_token_ms"`
}

func usageOf(t engine.Timings) *usage {
	u := &usage{PromptTokens: t.PromptTokens, CompletionTokens: t.GeneratedTokens, TotalTokens: t.PromptTokens + t.GeneratedTokens}
	u.PromptTokensDetails.CachedTokens = t.CachedTokens
	return u
}

// usageOfChoices is the usage of a request's choices: the prompt once, every choice's tokens.
func usageOfChoices(results []engine.Result) *usage {
	u := usageOf(results[0].Timings)
	for _, r := range results[1:] {
		u.CompletionTokens += r.Timings.GeneratedTokens
		u.TotalTokens += r.Timings.GeneratedTokens
	}
	return u
}

// takeTickets takes the queue places of a request's choices (n), all or none.
func (s *Server) takeTickets(p *sampling) ([]*ticket, *apiError) {
	n := p.choices()
	if c := s.queue.capacity(); n > c {
		return nil, badRequest("n", "n = %d: the server runs and queues at most %d generations (--parallel and --max-queue)", n, c)
	}
	tickets, err := s.queue.enqueueN(n)
	if err != nil {
		return nil, errBusy()
	}
	return tickets, nil
}

func timingsOf(t engine.Timings) *timings {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &timings{CacheN: t.CachedTokens, PromptN: t.PromptTokens - t.CachedTokens, PromptMS: ms(t.PromptDuration),
		PromptPerSecond: t.PromptTPS, PredictedN: t.GeneratedTokens, PredictedMS: ms(t.GenDuration),
		PredictedPerSecond: t.GenTPS, TimeToFirstTokenMS: ms(t.TimeToFirstToken)}
}

// finishReason is the engine's finish reason as the API reports it.
func finishReason(r string) *string {
	if r != engine.FinishLength {
		r = "stop"
	}
	return &r
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// modelID is the model's name in the API: its file name without the extension.
func modelID(info engine.Info) string { return strings.TrimSuffix(info.Model, ".gguf") }

func (s *Server) handleModels(c *fiber.Ctx) error {
	m := s.ready()
	if m == nil {
		return s.errLoading()
	}
	i := m.info()
	return c.JSON(fiber.Map{"object": "list", "data": []fiber.Map{{
		"id": modelID(i), "object": "model", "created": s.started.Unix(), "owned_by": "smolchat",
		"meta": fiber.Map{"file": i.Model, "arch": i.Arch, "quant": i.Quant, "params": i.Params,
			"context_length": i.Context, "backend": i.Backend, "device": i.Device},
	}}})
}

func (s *Server) handleHealth(c *fiber.Ctx) error {
	if m := s.ready(); m != nil {
		i := m.info()
		return c.JSON(fiber.Map{"status": "ok", "model": modelID(i), "backend": i.Backend, "device": i.Device, "parallel": i.Parallel})
	}
	st := s.load.Load()
	body := fiber.Map{"status": "loading", "progress": st.frac, "message": st.msg}
	if st.err != nil {
		body["status"], body["error"] = "error", st.err.Error()
	} else {
		c.Set(fiber.HeaderRetryAfter, retryAfter)
	}
	return c.Status(fiber.StatusServiceUnavailable).JSON(body)
}

// generationError is the API answer for a failed generation.
func generationError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, engine.ErrContextFull):
		return badRequest("messages", "%v", err).withCode("context_length_exceeded")
	case errors.Is(err, errQueueFull):
		return errBusy()
	case errors.Is(err, engine.ErrKVFull):
		e := apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "%v", err).withCode("kv_memory_full")
		e.RetryAfter = retryAfter
		return e
	case errors.Is(err, errShutdown):
		return apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "%v", errShutdown)
	case errors.Is(err, errClientGone):
		// Nobody reads this answer; 499 (nginx's "client closed request") keeps it out of the 5xx counts.
		return apiErr(499, "client_closed", "", "%v", errClientGone)
	case errors.Is(err, engine.ErrBackendLost):
		// The engine replaces a lost backend before it returns, so a retry normally succeeds.
		e := apiErr(fiber.StatusServiceUnavailable, "unavailable_error", "", "the model's device failed during this request; retry it: %v", err).
			withCode("backend_lost")
		e.RetryAfter = "1"
		return e
	}
	return apiErr(fiber.StatusInternalServerError, "server_error", "", "generation failed: %v", err)
}

// promptTokenizer is a Generator that can count a raw prompt's tokens (*engine.Engine can), so that a
// completion prompt too long for the context is refused with a 400 before its stream starts.
type promptTokenizer interface {
	Tokenize(text string, parseSpecial bool) []int32
}

// lastTurn is the shortest conversation the engine may cut msgs down to when they do not fit: the system
// message, if any, and everything from the last user message on.
func lastTurn(msgs []engine.Message) []engine.Message {
	var out []engine.Message
	if msgs[0].Role == "system" {
		out = append(out, msgs[0])
	}
	last := len(msgs) - 1
	for last > 0 && msgs[last].Role != "user" {
		last--
	}
	if last == 0 && msgs[0].Role == "system" {
		return msgs
	}
	return append(out, msgs[last:]...)
}

// fitLastTurn measures what the engine cannot drop to fit a conversation into the context window: n is
// the tokens of its last turn (lastTurn) with the tools offered, limit the most the window holds with
// room kept for the answer.
func fitLastTurn(g Generator, size int, msgs []engine.Message, think *bool, p engine.GenParams, tools ...json.RawMessage) (n, limit int, err error) {
	n, err = g.CountChatTokens(lastTurn(msgs), think, tools...)
	return n, size - engine.AnswerReserve(p, size), err
}

func (s *Server) handleChatCompletions(c *fiber.Ctx) error {
	job, err := s.chatJob(c)
	if err != nil {
		return err
	}
	if !job.stream {
		return s.chatResponse(c, job)
	}
	return s.chatStream(c, job)
}

// chatCompletion is a validated chat completion request that holds its queue places: what the answer
// and the stream share.
type chatCompletion struct {
	creq         engine.ChatRequest
	parseCalls   bool // the answer's <tool_call> blocks become tool_calls
	stream       bool
	includeUsage bool // stream_options.include_usage
	tickets      []*ticket
	out          completion[chatChoice] // the response (or each chunk) before its choices
}

// chatJob decodes and checks a chat completion request, refuses what cannot fit the context window
// while a status can still be sent, and takes the queue places of its choices.
func (s *Server) chatJob(c *fiber.Ctx) (*chatCompletion, error) {
	var req chatRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return nil, err
	}
	msgs, aerr := req.messages(s.cfg.MaxMessages)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := req.unsupported(); aerr != nil {
		return nil, aerr
	}
	m := s.ready()
	if m == nil {
		return nil, s.errLoading()
	}
	info := m.info() // one view of the model for the whole request
	params, aerr := req.params(info.Context, info.Vocab)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := req.logprobs(&params); aerr != nil {
		return nil, aerr
	}
	if params.Grammar, aerr = req.grammar(); aerr != nil {
		return nil, aerr
	}
	plan, aerr := req.tools(info, &params)
	if aerr != nil {
		return nil, aerr
	}
	think := req.think()
	// The engine drops old turns to fit the context; refuse here, while a status can still be sent, what
	// cannot fit even then.
	// The engine also keeps room for the answer; once a stream has started, its refusal could no longer
	// be a 400.
	var tools []json.RawMessage
	if plan != nil {
		tools = plan.tools
	}
	n, limit, err := fitLastTurn(m.gen, info.Context, msgs, think, params, tools...)
	if err != nil {
		return nil, badRequest("messages", "cannot render the conversation: %v", err)
	}
	if n >= info.Context {
		return nil, badRequest("messages", "the last turn alone is %d tokens; the context window holds %d", n, info.Context).
			withCode("context_length_exceeded")
	}
	if n > limit {
		return nil, badRequest("messages", "the last turn alone is %d tokens; with %d kept for the answer, the context window of %d holds at most %d",
			n, info.Context-limit, info.Context, limit).withCode("context_length_exceeded")
	}
	tickets, aerr := s.takeTickets(&req.sampling)
	if aerr != nil {
		return nil, aerr
	}
	return &chatCompletion{
		creq:         engine.ChatRequest{Messages: msgs, Think: think, Params: params, Tools: tools},
		parseCalls:   plan != nil && plan.parse,
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		tickets:      tickets,
		out:          completion[chatChoice]{ID: newID("chatcmpl-"), Object: "chat.completion", Created: time.Now().Unix(), Model: modelID(info)},
	}, nil
}

// choiceRequest is the engine request of choice i: the request with the choice's seed.
func (j *chatCompletion) choiceRequest(i int) engine.ChatRequest {
	r := j.creq
	r.Params.Seed = choiceSeed(j.creq.Params.Seed, i)
	return r
}

// callsFinish is the finish reason: "tool_calls" when the answer made calls and ended by itself.
func callsFinish(res engine.Result, calls int) *string {
	if calls > 0 && res.FinishReason == engine.FinishStop {
		r := "tool_calls"
		return &r
	}
	return finishReason(res.FinishReason)
}

// chatResponse generates the choices and answers with them in one JSON response.
func (s *Server) chatResponse(c *fiber.Ctx, j *chatCompletion) error {
	results, err := s.generateChoices(c, j.tickets, func(ctx context.Context, g Generator, i int) (engine.Result, error) {
		return g.Chat(ctx, j.choiceRequest(i), nil)
	})
	if err != nil {
		return generationError(err)
	}
	out := j.out
	for i, res := range results {
		msg := &chatOutMsg{Role: "assistant", Content: &res.Answer, ReasoningContent: res.Thinking}
		if j.parseCalls {
			content, calls := splitCalls(res.Answer)
			msg.Content, msg.ToolCalls = &content, calls
			if content == "" && len(calls) > 0 {
				msg.Content = nil
			}
		}
		out.Choices = append(out.Choices, chatChoice{Index: i, Message: msg, Logprobs: chatLogprobsOf(res.Logprobs...),
			FinishReason: callsFinish(res, len(msg.ToolCalls))})
	}
	out.Usage, out.Timings = usageOfChoices(results), timingsOf(results[0].Timings)
	return c.JSON(out)
}

// chatStream streams the choices as chat.completion.chunk events, then the usage when asked for.
func (s *Server) chatStream(c *fiber.Ctx, j *chatCompletion) error {
	out := j.out
	out.Object = "chat.completion.chunk"
	return s.startSSE(c, func(sse sseWriter) {
		// Chunks are written one at a time (streamAPI serializes the choices' writes), so they share out.
		choice := func(i int) streamChoice { return j.streamChoice(sse, &out, i) }
		s.streamAPI(sse, j.tickets, choice, func(results []engine.Result) error {
			if !j.includeUsage {
				return nil
			}
			out.Choices, out.Usage, out.Timings = []chatChoice{}, usageOfChoices(results), timingsOf(results[0].Timings)
			return sendJSON(sse, out)
		})
	})
}

// streamChoice is how choice i streams: its chunks carry its index, each written through out.
func (j *chatCompletion) streamChoice(sse sseWriter, out *completion[chatChoice], i int) streamChoice {
	send := func(delta chatOutMsg, lp *chatLogprobs, finish *string) error {
		out.Choices = []chatChoice{{Index: i, Delta: &delta, Logprobs: lp, FinishReason: finish}}
		return sendJSON(sse, *out)
	}
	empty := ""
	var split callSplitter
	calls := 0
	// answer turns answer text into deltas: content, or with tools, content and tool calls (the call's
	// id and name first, then its arguments in chunks).
	answer := func(text string, outs []chatOutMsg) []chatOutMsg {
		content := func(t string) { outs = append(outs, chatOutMsg{Content: &t}) }
		if !j.parseCalls {
			if text != "" {
				content(text)
			}
			return outs
		}
		split.push(text, content, func(c toolCallOut) {
			index := calls
			calls++
			head := c
			head.Index, head.Function.Arguments = &index, ""
			outs = append(outs, chatOutMsg{ToolCalls: []toolCallOut{head}})
			for _, a := range argumentChunks(c.Function.Arguments, 32) {
				var part toolCallOut
				part.Index, part.Function.Arguments = &index, a
				outs = append(outs, chatOutMsg{ToolCalls: []toolCallOut{part}})
			}
		})
		return outs
	}
	sendAll := func(outs []chatOutMsg, lp *chatLogprobs) error {
		for i, m := range outs {
			var withLP *chatLogprobs
			if i == len(outs)-1 {
				withLP = lp
			}
			if err := send(m, withLP, nil); err != nil {
				return err
			}
		}
		return nil
	}
	r := j.choiceRequest(i)
	return streamChoice{
		start: func() error { return send(chatOutMsg{Role: "assistant", Content: &empty}, nil, nil) },
		run: func(ctx context.Context, g Generator, emit func(engine.Delta) error) (engine.Result, error) {
			return g.Chat(ctx, r, emit)
		},
		emit: func(d engine.Delta) error {
			var outs []chatOutMsg
			if d.Thinking != "" {
				outs = append(outs, chatOutMsg{ReasoningContent: d.Thinking})
			}
			outs = answer(d.Answer, outs)
			// A token's log probability rides on the last chunk its text makes, or on a chunk of its own
			// when the token's text is held back.
			var lp *chatLogprobs
			if d.Logprob != nil {
				lp = chatLogprobsOf(*d.Logprob)
				if len(outs) == 0 {
					outs = append(outs, chatOutMsg{})
				}
			}
			return sendAll(outs, lp)
		},
		finish: func(res engine.Result) error {
			if j.parseCalls {
				var outs []chatOutMsg
				split.flush(func(t string) { outs = append(outs, chatOutMsg{Content: &t}) })
				if err := sendAll(outs, nil); err != nil {
					return err
				}
			}
			return send(chatOutMsg{}, nil, callsFinish(res, calls))
		},
	}
}

func (s *Server) handleCompletions(c *fiber.Ctx) error {
	var req completionRequest
	if err := decodeJSON(c.Body(), &req); err != nil {
		return err
	}
	if req.Prompt == "" {
		return badRequest("prompt", "prompt must not be empty")
	}
	if aerr := req.unsupported(); aerr != nil {
		return aerr
	}
	m := s.ready()
	if m == nil {
		return s.errLoading()
	}
	info := m.info() // one view of the model for the whole request
	params, aerr := req.params(info.Context, info.Vocab)
	if aerr != nil {
		return aerr
	}
	if aerr := req.logprobs(&params); aerr != nil {
		return aerr
	}
	if params.Grammar, aerr = req.sampling.grammar(); aerr != nil {
		return aerr
	}
	prompt := string(req.Prompt)
	if tk, ok := m.gen.(promptTokenizer); ok {
		if n := len(tk.Tokenize(prompt, true)); n >= info.Context {
			return badRequest("prompt", "the prompt is %d tokens; the context window holds %d", n, info.Context).
				withCode("context_length_exceeded")
		}
	}
	tickets, aerr := s.takeTickets(&req.sampling)
	if aerr != nil {
		return aerr
	}
	out := completion[textChoice]{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: modelID(info)}
	if !req.Stream {
		results, err := s.generateChoices(c, tickets, func(ctx context.Context, g Generator, i int) (engine.Result, error) {
			p := params
			p.Seed = choiceSeed(params.Seed, i)
			return g.Complete(ctx, prompt, p, nil)
		})
		if err != nil {
			return generationError(err)
		}
		for i, res := range results {
			out.Choices = append(out.Choices, textChoice{Index: i, Text: res.Text, Logprobs: textLogprobsOf(0, res.Logprobs...),
				FinishReason: finishReason(res.FinishReason)})
		}
		out.Usage, out.Timings = usageOfChoices(results), timingsOf(results[0].Timings)
		return c.JSON(out)
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	return s.startSSE(c, func(sse sseWriter) {
		choice := func(i int) streamChoice {
			send := func(text string, lp *textLogprobs, finish *string) error {
				out.Choices = []textChoice{{Index: i, Text: text, Logprobs: lp, FinishReason: finish}}
				return sendJSON(sse, out)
			}
			offset := 0 // of the next token in the generated text, for text_offset
			p := params
			p.Seed = choiceSeed(params.Seed, i)
			return streamChoice{
				run: func(ctx context.Context, g Generator, emit func(engine.Delta) error) (engine.Result, error) {
					return g.Complete(ctx, prompt, p, emit)
				},
				emit: func(d engine.Delta) error {
					var lp *textLogprobs
					if d.Logprob != nil {
						lp = textLogprobsOf(offset, *d.Logprob)
						offset += len(d.Logprob.Bytes)
					}
					if text := d.Thinking + d.Answer; text != "" || lp != nil {
						return send(text, lp, nil)
					}
					return nil
				},
				finish: func(res engine.Result) error { return send("", nil, finishReason(res.FinishReason)) },
			}
		}
		s.streamAPI(sse, tickets, choice, func(results []engine.Result) error {
			if !includeUsage {
				return nil
			}
			out.Choices, out.Usage, out.Timings = []textChoice{}, usageOfChoices(results), timingsOf(results[0].Timings)
			return sendJSON(sse, out)
		})
	})
}

func sendJSON(sse sseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a stream chunk: %w", err)
	}
	return sse.data(string(b))
}

// errClientGone is the cause of a generation cancelled because its client disconnected.
var errClientGone = errors.New("the client disconnected")

// streamChoice is how a streamed API request writes one of its choices: start (may be nil) its first
// chunk, run its generation, emit each delta, finish its closing chunk.
type streamChoice struct {
	start  func() error
	run    func(ctx context.Context, g Generator, emit func(engine.Delta) error) (engine.Result, error)
	emit   func(engine.Delta) error
	finish func(engine.Result) error
}

// streamAPI runs a streamed API request's choices side by side, choice i on tickets[i] (the engine
// batches them, and they share the prompt's KV blocks): their chunks interleave, each carrying its
// choice's index, as OpenAI's API streams n > 1, and a choice's closing chunk comes when it ends. Then
// done writes what follows them all (the usage) and "data: [DONE]". Writes are serialized; a failed
// write means the client is gone and cancels every choice. When a choice fails, the others are
// cancelled and the error is sent as an {"error": ...} chunk.
func (s *Server) streamAPI(sse sseWriter, tickets []*ticket, choice func(i int) streamChoice, done func([]engine.Result) error) {
	ctx, cancel := context.WithCancelCause(s.base)
	defer cancel(nil)
	var mu sync.Mutex
	write := func(f func() error) error {
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(context.Cause(ctx), errClientGone) {
			return errClientGone
		}
		if err := f(); err != nil {
			cancel(errClientGone)
			return err
		}
		return nil
	}
	results := make([]engine.Result, len(tickets))
	errs := make([]error, len(tickets))
	one := func(i int) {
		c := choice(i)
		if c.start != nil {
			write(c.start)
		}
		results[i], errs[i] = s.generate(ctx, tickets[i],
			func(pos int) error {
				return write(func() error { return sse.comment(fmt.Sprintf("waiting for the model: position %d in the queue", pos)) })
			},
			func(ctx context.Context, g Generator) (engine.Result, error) {
				return c.run(ctx, g, func(d engine.Delta) error { return write(func() error { return c.emit(d) }) })
			})
		switch {
		case errs[i] != nil:
			cancel(errs[i]) // the request fails: the other choices stop
		case results[i].FinishReason != engine.FinishCancelled:
			write(func() error { return c.finish(results[i]) })
		}
	}
	sideBySide(len(tickets), cancel, one)
	if errors.Is(context.Cause(ctx), errClientGone) {
		return
	}
	var err error
	for i, e := range errs {
		if e == nil && results[i].FinishReason == engine.FinishCancelled {
			e = context.Cause(ctx)
		}
		if e != nil {
			err = e
			break
		}
	}
	if err != nil {
		sendJSON(sse, fiber.Map{"error": generationError(err)})
		return
	}
	if done(results) == nil {
		sse.data("[DONE]")
	}
}
