package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"smolchat/engine"
	"smolchat/engine/constrain"
)

// Requests of the OpenAI-compatible API, decoded strictly: a field of the wrong type is a 400 naming the
// field. The rule is that every field accepted is honoured: a field that would change the answer and
// that this server cannot honour is refused with a 400 naming it unless it is absent, null or holds its
// default, rather than silently dropped. docs/API.md lists every field and what becomes of it; in short:
//
//   - Honoured: model (there is one; any name is accepted), messages (tool_calls included), prompt,
//     max_tokens, max_completion_tokens, temperature, top_p, presence_penalty, frequency_penalty, seed,
//     stop, stream, stream_options.include_usage, logit_bias, logprobs and top_logprobs,
//     response_format, tools, tool_choice, parallel_tool_calls (with tool_choice "required"),
//     reasoning_effort ("none" turns thinking off, any other effort on), and the llama.cpp extensions
//     top_k, min_p, repeat_penalty, repeat_last_n, json_schema, grammar (GBNF),
//     chat_template_kwargs.enable_thinking.
//   - Refused unless default: n (1), functions and function_call (deprecated), modalities (["text"]),
//     audio, web_search_options, verbosity ("medium"), for completions echo (false), suffix ("") and
//     best_of (1), and the llama.cpp extensions in llamaExtensions.
//   - Ignored, since they do not change the answer: user, metadata, store, service_tier,
//     safety_identifier, prompt_cache_key, prediction (it only speeds up an answer the client can
//     predict), and the llama.cpp fields in llamaInert.
//
// Other fields are ignored too: clients send many, and a field no server knows changes no answer.

type chatRequest struct {
	Model    string       `json:"model"`
	Messages []apiMessage `json:"messages"`
	sampling
	Stream             bool            `json:"stream"`
	StreamOptions      *streamOptions  `json:"stream_options"`
	ChatTemplateKwargs *templateKwargs `json:"chat_template_kwargs"`
	ReasoningEffort    *string         `json:"reasoning_effort"`
	Tools              json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	ResponseFormat     *responseFormat `json:"response_format"`
	// Fields refused unless default (unsupported).
	Functions        json.RawMessage `json:"functions"`
	FunctionCall     json.RawMessage `json:"function_call"`
	Logprobs         *bool           `json:"logprobs"`
	TopLogprobs      *int            `json:"top_logprobs"`
	Modalities       json.RawMessage `json:"modalities"`
	Audio            json.RawMessage `json:"audio"`
	WebSearchOptions json.RawMessage `json:"web_search_options"`
	Verbosity        json.RawMessage `json:"verbosity"`
}

type completionRequest struct {
	Model  string      `json:"model"`
	Prompt promptField `json:"prompt"`
	sampling
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	// Fields refused unless default (unsupported).
	Echo   json.RawMessage `json:"echo"`
	Suffix json.RawMessage `json:"suffix"`
	BestOf json.RawMessage `json:"best_of"`
	// Logprobs is the legacy field: how many alternatives to list per token (null: no logprobs).
	Logprobs *int `json:"logprobs"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type templateKwargs struct {
	EnableThinking *bool `json:"enable_thinking"`
}

// sampling holds the generation fields chat and completion requests share.
type sampling struct {
	MaxTokens           *int        `json:"max_tokens"`
	MaxCompletionTokens *int        `json:"max_completion_tokens"`
	Temperature         *float64    `json:"temperature"`
	TopP                *float64    `json:"top_p"`
	TopK                *int        `json:"top_k"`
	MinP                *float64    `json:"min_p"`
	RepeatPenalty       *float64    `json:"repeat_penalty"`
	PresencePenalty     *float64    `json:"presence_penalty"`
	FrequencyPenalty    *float64    `json:"frequency_penalty"`
	RepeatLastN         *int        `json:"repeat_last_n"`
	Seed                *int64      `json:"seed"`
	Stop                stopStrings `json:"stop"`
	N                   *int        `json:"n"`
	LogitBias           logitBias   `json:"logit_bias"`

	// raw is the whole request by field, for the llama.cpp extensions this server refuses.
	raw map[string]json.RawMessage
}

// keepRaw records the request's fields by name; decodeJSON calls it after a successful decode.
func (p *sampling) keepRaw(body []byte) {
	p.raw = nil
	json.Unmarshal(body, &p.raw) // body is a JSON object: it decoded into a struct just now
}

// fieldError is a decoding error that names its field, so that the 400 names it too.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.msg }

// logitBias is OpenAI's logit_bias: token ids (as decimal strings) to biases in [-100, 100].
type logitBias map[int32]float32

const maxLogitBias = 1024 // OpenAI's limit is lower (300); this bounds the work per token

func (l *logitBias) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return &fieldError{"logit_bias", "logit_bias must be an object mapping token ids to numbers"}
	}
	if len(m) > maxLogitBias {
		return &fieldError{"logit_bias", fmt.Sprintf("logit_bias names %d tokens; at most %d are allowed", len(m), maxLogitBias)}
	}
	out := logitBias{}
	for k, v := range m {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 {
			return &fieldError{"logit_bias", fmt.Sprintf("logit_bias key %q is not a token id (a decimal integer ≥ 0)", k)}
		}
		if !(v >= -100 && v <= 100) {
			return &fieldError{"logit_bias", fmt.Sprintf("logit_bias[%q] = %v is out of range [-100, 100]", k, v)}
		}
		out[int32(id)] = float32(v)
	}
	*l = out
	return nil
}

type apiMessage struct {
	Role       string         `json:"role"`
	Content    messageContent `json:"content"`
	ToolCalls  []apiToolCall  `json:"tool_calls"`
	ToolCallID string         `json:"tool_call_id"` // SmolLM3's template shows a tool's result as a user turn, without it
}

// messageContent is a message's text: a string, null, or an array of text parts.
type messageContent string

func (m *messageContent) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*m = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*m = messageContent(s)
		return nil
	case len(b) > 0 && b[0] == '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return errors.New("content parts must be objects with a type and a text")
		}
		var texts []string
		for _, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return fmt.Errorf("content part of type %q is not supported: this model reads text only", p.Type)
			}
			texts = append(texts, *p.Text)
		}
		*m = messageContent(strings.Join(texts, "\n"))
		return nil
	}
	return errors.New("content must be a string or an array of text parts")
}

// stopStrings is "stop": a string or an array of strings.
type stopStrings []string

const maxStopStrings = 16

func (s *stopStrings) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopStrings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	if len(many) > maxStopStrings {
		return fmt.Errorf("stop has %d strings; at most %d are allowed", len(many), maxStopStrings)
	}
	*s = many
	return nil
}

// promptField is a completion prompt: a string, or an array holding one string.
type promptField string

func (p *promptField) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = promptField(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("prompt must be a string (token arrays are not supported)")
	}
	if len(many) != 1 {
		return fmt.Errorf("prompt holds %d strings; this server completes one prompt per request", len(many))
	}
	*p = promptField(many[0])
	return nil
}

// decodeJSON decodes a request body into v, answering a clear 400 for anything malformed.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "request body is empty: send a JSON object")
	}
	if !utf8.Valid(body) {
		return badRequest("", "request body is not valid UTF-8")
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		if k, ok := v.(interface{ keepRaw([]byte) }); ok {
			k.keepRaw(body)
		}
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var field *fieldError
	switch {
	case errors.As(err, &field):
		return badRequest(field.field, "%s", field.msg)
	case errors.As(err, &syntax):
		return badRequest("", "request body is not valid JSON (at byte %d): %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("", "request body must be a JSON object, not %s", typ.Value)
		}
		// The path names the embedded struct of shared fields; clients know only the JSON names.
		field := strings.TrimPrefix(typ.Field, "sampling.")
		return badRequest(field, "%s: expected %s, got JSON %s", field, jsonKind(typ.Type), typ.Value)
	}
	return badRequest("", "invalid request: %v", err)
}

// jsonKind names what JSON a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// messages validates the conversation and converts it for the engine.
func (r *chatRequest) messages(maxMessages int) ([]engine.Message, *apiError) {
	if len(r.Messages) == 0 {
		return nil, badRequest("messages", "messages must hold at least one message")
	}
	if len(r.Messages) > maxMessages {
		return nil, badRequest("messages", "messages holds %d messages; at most %d are allowed", len(r.Messages), maxMessages)
	}
	out := make([]engine.Message, len(r.Messages))
	for i, m := range r.Messages {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant", "tool":
		case "":
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
		default:
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i),
				"messages[%d].role %q is not one of system, developer, user, assistant, tool", i, m.Role)
		}
		if role == "system" && i > 0 {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "only the first message may be a system message")
		}
		content := string(m.Content)
		if len(m.ToolCalls) > 0 {
			if role != "assistant" {
				return nil, badRequest(fmt.Sprintf("messages[%d].tool_calls", i), "messages[%d]: only assistant messages carry tool_calls", i)
			}
			var err error
			if content, err = renderToolCalls(content, m.ToolCalls); err != nil {
				return nil, badRequest(fmt.Sprintf("messages[%d].tool_calls", i), "messages[%d].%v", i, err)
			}
		}
		out[i] = engine.Message{Role: role, Content: content}
	}
	return out, nil
}

// think is the thinking switch the request asks for: chat_template_kwargs.enable_thinking, else
// reasoning_effort ("none" turns it off, any other effort on), else nil for the template's default. A
// /think or /no_think in the system prompt wins over both (the template sees to that).
func (r *chatRequest) think() *bool {
	if r.ChatTemplateKwargs != nil && r.ChatTemplateKwargs.EnableThinking != nil {
		return r.ChatTemplateKwargs.EnableThinking
	}
	if r.ReasoningEffort != nil {
		on := *r.ReasoningEffort != "none"
		return &on
	}
	return nil
}

// unhonoured is a request field this server cannot honour. It passes when absent, null, or one of its
// defaults (compact JSON), none of which changes the answer; anything else is refused with refusal.
type unhonoured struct {
	name     string
	value    json.RawMessage
	defaults []string
	refusal  string
}

// refuseUnhonoured refuses the first field that holds more than its default.
func refuseUnhonoured(fields ...unhonoured) *apiError {
	for _, f := range fields {
		if len(f.value) == 0 {
			continue
		}
		var b bytes.Buffer
		if json.Compact(&b, f.value) == nil && (b.String() == "null" || slices.Contains(f.defaults, b.String())) {
			continue
		}
		return badRequest(f.name, "%s", f.refusal)
	}
	return nil
}

// withLogprobs sets the log probabilities a request asks for: on, with top alternatives (0 to
// engine.MaxTopLogprobs) at field top.
func withLogprobs(g *engine.GenParams, field string, top int) *apiError {
	if top < 0 || top > engine.MaxTopLogprobs {
		return badRequest(field, "%s = %d is out of range [0, %d]", field, top, engine.MaxTopLogprobs)
	}
	g.Logprobs, g.TopLogprobs = true, top
	return nil
}

// logprobs sets chat's logprobs and top_logprobs; top_logprobs needs logprobs: true, as in OpenAI's API.
func (r *chatRequest) logprobs(g *engine.GenParams) *apiError {
	on := r.Logprobs != nil && *r.Logprobs
	switch {
	case r.TopLogprobs != nil && !on:
		return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
	case !on:
		return nil
	case r.TopLogprobs == nil:
		return withLogprobs(g, "top_logprobs", 0)
	}
	return withLogprobs(g, "top_logprobs", *r.TopLogprobs)
}

// logprobs sets a completion's logprobs: the number of alternatives per token, or null for none.
func (r *completionRequest) logprobs(g *engine.GenParams) *apiError {
	if r.Logprobs == nil {
		return nil
	}
	return withLogprobs(g, "logprobs", *r.Logprobs)
}

// unsupported refuses chat features this server cannot honour.
func (r *chatRequest) unsupported() *apiError {
	if err := refuseUnhonoured(
		unhonoured{"functions", r.Functions, []string{"[]"}, "functions (deprecated) are not supported: use tools"},
		unhonoured{"function_call", r.FunctionCall, []string{`"none"`, `"auto"`}, `function_call (deprecated) is not supported: use tool_choice`},
		unhonoured{"modalities", r.Modalities, []string{`["text"]`}, `modalities other than ["text"] are not supported: this model writes text only`},
		unhonoured{"audio", r.Audio, nil, "audio output is not supported: this model writes text only"},
		unhonoured{"web_search_options", r.WebSearchOptions, nil, "web search is not supported by this server"},
		unhonoured{"verbosity", r.Verbosity, []string{`"medium"`}, "verbosity is not supported by this server: leave it out"},
	); err != nil {
		return err
	}
	return nil
}

// responseFormat is chat's response_format: text, json_object or json_schema.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
}

// grammar compiles what the request constrains its answer to: response_format, or llama.cpp's
// json_schema extension; nil when nothing.
func (r *chatRequest) grammar() (*constrain.Grammar, *apiError) {
	f := r.ResponseFormat
	if f == nil || f.Type == "" || f.Type == "text" {
		return r.sampling.grammar()
	}
	if g, err := r.sampling.grammar(); g != nil || err != nil {
		return nil, badRequest("response_format", "give either response_format or json_schema/grammar, not both")
	}
	switch f.Type {
	case "json_object":
		return constrain.CompileJSONObject(), nil
	case "json_schema":
		if f.JSONSchema == nil || len(f.JSONSchema.Schema) == 0 || string(f.JSONSchema.Schema) == "null" {
			return nil, badRequest("response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
		}
		return compileSchema("response_format.json_schema.schema", f.JSONSchema.Schema)
	}
	return nil, badRequest("response_format.type", "response_format type %q is not one of text, json_object, json_schema", f.Type)
}

// grammar compiles llama.cpp's json_schema or grammar (GBNF) field; nil when neither is given.
func (p *sampling) grammar() (*constrain.Grammar, *apiError) {
	schema, hasSchema := p.raw["json_schema"]
	hasSchema = hasSchema && string(schema) != "null"
	var text string
	if raw, ok := p.raw["grammar"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &text); err != nil {
			return nil, badRequest("grammar", "grammar must be a string of GBNF")
		}
	}
	switch {
	case hasSchema && text != "":
		return nil, badRequest("grammar", "give either grammar or json_schema, not both")
	case hasSchema:
		return compileSchema("json_schema", schema)
	case text != "":
		g, err := constrain.CompileGBNF(text)
		if err != nil {
			return nil, badRequest("grammar", "grammar: %v", err)
		}
		return g, nil
	}
	return nil, nil
}

// compileSchema compiles a JSON schema, refusing what the compiler does not support with a 400 that
// names the keyword and where it is.
func compileSchema(field string, schema json.RawMessage) (*constrain.Grammar, *apiError) {
	g, err := constrain.CompileSchema(schema)
	if err != nil {
		var se *constrain.SchemaError
		if errors.As(err, &se) && se.Keyword != "" {
			return nil, badRequest(field, "%s: %v (keyword %q)", field, err, se.Keyword)
		}
		return nil, badRequest(field, "%s: %v", field, err)
	}
	return g, nil
}

// unsupported refuses completion features this server cannot honour.
func (r *completionRequest) unsupported() *apiError {
	return refuseUnhonoured(
		unhonoured{"echo", r.Echo, []string{"false"}, "echo is not supported by this server"},
		unhonoured{"suffix", r.Suffix, []string{`""`}, "suffix is not supported by this server: it completes a prompt at its end only"},
		unhonoured{"best_of", r.BestOf, []string{"1"}, "best_of is not supported: this server generates one completion per request"},
	)
}

// params validates the sampling fields against the context size and the vocabulary (vocab 0: unknown,
// token ids are not checked) and converts them, starting from the model's recommended defaults.
// maxChoices bounds n: every choice is a generation of its own, in the queue like a request.
const maxChoices = 16

// choices is n, the number of choices asked for: 1 unless set.
func (p *sampling) choices() int {
	if p.N == nil {
		return 1
	}
	return *p.N
}

// choiceSeed is the seed of choice i of a request with seed: the choices differ, and the same request
// with the same seed gives the same choices.
func choiceSeed(seed uint64, i int) uint64 { return seed + uint64(i)*0x9E3779B97F4A7C15 }

func (p *sampling) params(contextSize, vocab int) (engine.GenParams, *apiError) {
	g := engine.GenParams{SamplerParams: engine.DefaultSamplerParams()}
	if err := refuseExtensions(p.raw); err != nil {
		return g, err
	}
	inRange := func(name string, v *float64, lo, hi float64, dst *float32) *apiError {
		if v == nil {
			return nil
		}
		if !(*v >= lo && *v <= hi) { // false for NaN too
			return badRequest(name, "%s = %v is out of range [%v, %v]", name, *v, lo, hi)
		}
		*dst = float32(*v)
		return nil
	}
	for _, f := range []struct {
		name   string
		v      *float64
		lo, hi float64
		dst    *float32
	}{
		{"temperature", p.Temperature, 0, 2, &g.Temperature},
		{"top_p", p.TopP, 0, 1, &g.TopP},
		{"min_p", p.MinP, 0, 1, &g.MinP},
		{"repeat_penalty", p.RepeatPenalty, 0, 10, &g.RepeatPenalty},
		{"presence_penalty", p.PresencePenalty, -2, 2, &g.PresencePenalty},
		{"frequency_penalty", p.FrequencyPenalty, -2, 2, &g.FrequencyPenalty},
	} {
		if err := inRange(f.name, f.v, f.lo, f.hi, f.dst); err != nil {
			return g, err
		}
	}
	if p.TopK != nil {
		if *p.TopK < 0 {
			return g, badRequest("top_k", "top_k = %d must not be negative (0 turns it off)", *p.TopK)
		}
		g.TopK = *p.TopK
	}
	if p.RepeatLastN != nil {
		if *p.RepeatLastN < -1 {
			return g, badRequest("repeat_last_n", "repeat_last_n = %d must be ≥ -1 (0 = no penalty window, -1 = the whole context)", *p.RepeatLastN)
		}
		g.RepeatLastN = *p.RepeatLastN
	}
	for id := range p.LogitBias {
		if vocab > 0 && int(id) >= vocab {
			return g, badRequest("logit_bias", "logit_bias names token %d; the vocabulary has %d tokens (0 to %d)", id, vocab, vocab-1)
		}
	}
	if len(p.LogitBias) > 0 {
		g.LogitBias = p.LogitBias
	}
	if p.N != nil && (*p.N < 1 || *p.N > maxChoices) {
		return g, badRequest("n", "n = %d: want 1 to %d choices", *p.N, maxChoices)
	}
	name, limit := "max_tokens", p.MaxTokens
	if p.MaxCompletionTokens != nil {
		name, limit = "max_completion_tokens", p.MaxCompletionTokens
	}
	if limit != nil {
		switch {
		case *limit < 1:
			return g, badRequest(name, "%s = %d must be at least 1", name, *limit)
		case *limit > contextSize:
			return g, badRequest(name, "%s = %d is larger than the context window of %d tokens", name, *limit, contextSize)
		}
		g.MaxTokens = *limit
	}
	g.Seed = randomSeed()
	if p.Seed != nil && *p.Seed >= 0 {
		g.Seed = uint64(*p.Seed)
	}
	g.Stop = p.Stop
	return g, nil
}

// llamaExtension is a field of llama.cpp's server that this server does not implement: refused unless
// null or one of its defaults (compact JSON), which change nothing.
type llamaExtension struct {
	name     string
	defaults []string
	remedy   string
}

// llamaExtensions are the llama.cpp request fields that would change the answer. Fields that only
// tune another one (mirostat_tau with mirostat, dry_base with dry_multiplier, ...) are in llamaInert:
// they change nothing while their switch is off, and a switch that is on is refused here.
var llamaExtensions = []llamaExtension{
	{"typical_p", []string{"1", "1.0"}, "locally typical sampling is not implemented; use top_p or min_p"},
	{"mirostat", []string{"0"}, "mirostat sampling is not implemented; use top_p or min_p"},
	{"tfs_z", []string{"1", "1.0"}, "tail-free sampling is not implemented; use top_p or min_p"},
	{"xtc_probability", []string{"0", "0.0"}, "XTC sampling is not implemented"},
	{"dry_multiplier", []string{"0", "0.0"}, "DRY repetition penalty is not implemented; use repeat_penalty or frequency_penalty"},
	{"dynatemp_range", []string{"0", "0.0"}, "dynamic temperature is not implemented; use temperature"},
	{"top_n_sigma", []string{"-1", "-1.0"}, "top-n-sigma sampling is not implemented"},
	{"min_keep", []string{"0"}, "min_keep is not implemented"},
	{"samplers", nil, "the sampler order is fixed: penalties, logit_bias, top_k, temperature, top_p, min_p"},
	{"n_probs", []string{"0"}, "use logprobs (and top_logprobs in chat)"},
	{"post_sampling_probs", []string{"false"}, "post-sampling probabilities are not implemented"},
	{"ignore_eos", []string{"false"}, "generation always stops at the end-of-generation token"},
	{"n_predict", []string{"-1"}, "use max_tokens"},
	{"n_keep", []string{"0"}, "this server drops whole old turns when a chat outgrows the context"},
	{"n_indent", []string{"0"}, "n_indent is not implemented"},
	{"t_max_predict_ms", []string{"0"}, "time limits are not implemented; use max_tokens"},
	{"penalty_last_n", []string{"64"}, "use repeat_last_n"},
	{"return_tokens", []string{"false"}, "token ids are not returned"},
	{"response_fields", []string{"[]"}, "the response shape is OpenAI's"},
	{"grammar_lazy", []string{"false"}, "lazy grammars are not implemented; the grammar applies to the whole answer"},
	{"grammar_triggers", []string{"[]"}, "lazy grammars are not implemented; the grammar applies to the whole answer"},
	{"preserved_tokens", []string{"[]"}, "preserved_tokens is not implemented"},
	{"lora", []string{"[]"}, "LoRA adapters are not supported"},
	{"image_data", []string{"[]"}, "this model reads text only"},
	{"multimodal_data", []string{"[]"}, "this model reads text only"},
	{"reasoning_format", []string{`"auto"`, `"deepseek"`}, "reasoning is always returned apart, as reasoning_content"},
	{"thinking_forced_open", []string{"false"}, "use chat_template_kwargs.enable_thinking or reasoning_effort"},
	{"add_generation_prompt", []string{"true"}, "the chat template always ends with the assistant's turn"},
}

// llamaInert are llama.cpp fields that are ignored: tuning knobs of refused switches, and fields that
// do not change the answer. Kept for docs/API.md and the tests.
var llamaInert = []string{"mirostat_tau", "mirostat_eta", "xtc_threshold", "dry_base", "dry_allowed_length",
	"dry_penalty_last_n", "dry_sequence_breakers", "dynatemp_exponent", "cache_prompt", "id_slot",
	"timings_per_token", "parse_tool_calls"}

// refuseExtensions refuses the first llama.cpp extension in raw that holds more than its default.
func refuseExtensions(raw map[string]json.RawMessage) *apiError {
	for _, x := range llamaExtensions {
		v, ok := raw[x.name]
		if !ok {
			continue
		}
		if err := refuseUnhonoured(unhonoured{x.name, v, x.defaults,
			fmt.Sprintf("%s (a llama.cpp extension) is not supported by this server: %s", x.name, x.remedy)}); err != nil {
			return err
		}
	}
	return nil
}
