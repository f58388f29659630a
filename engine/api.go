package engine

import (
	"encoding/json"
	"time"

	"smolchat/engine/constrain"
)

// Message is one chat turn, as in the OpenAI API: role is "system", "user", "assistant" or "tool".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// GenParams controls one generation.
type GenParams struct {
	SamplerParams
	// MaxTokens caps the generated tokens; 0 means "until the context is full".
	MaxTokens int
	// Stop ends generation when the text produced so far ends with one of these strings; the stop string
	// itself is not returned.
	Stop []string
	// Logprobs asks for each generated token's TokenLogprob, with the TopLogprobs (0 to MaxTopLogprobs)
	// most likely alternatives.
	Logprobs    bool
	TopLogprobs int
	// Grammar, when set, constrains the answer (after the reasoning, if any) to its language; the
	// generation ends when the grammar is complete and nothing may follow.
	Grammar *constrain.Grammar
	// Trigger, when set, makes Grammar lazy: the answer is free until the model writes this token
	// (SmolLM3's <tool_call>), then Grammar applies until it is complete, and the answer is free again.
	Trigger string
	// Ban lists tokens (by text) the answer may not hold (tool_choice "none" bans <tool_call>).
	Ban []string

	reasoning bool // set by Chat: the prompt leaves the model to reason before answering
}

// ChatRequest is a conversation to continue with the model's chat template.
type ChatRequest struct {
	Messages []Message
	// Think enables SmolLM3's reasoning mode (/think) or disables it (/no_think); nil keeps the template's
	// default, and a /think or /no_think flag in the system prompt wins over it.
	Think  *bool
	Params GenParams
	// Tools are the functions the model may call, rendered by the template's tools section (OpenAI's
	// tools array, one JSON value each); templates without one refuse them.
	Tools []json.RawMessage
	// Continue, when set, is the start of the assistant's answer, written after the generation prompt
	// for the model to go on from (an answer cut by its token limit): the result holds only what follows.
	Continue *Partial
}

// Partial is an answer begun: its reasoning (without the <think> tags) and its answer text. With an
// empty Answer and some Thinking, the reasoning itself goes on.
type Partial struct {
	Thinking, Answer string
}

// Delta is the text one generated token added, split into reasoning and answer. Text is valid UTF-8:
// bytes of a character split across tokens are held back until the character is complete.
type Delta struct {
	Token    int32
	Thinking string
	Answer   string
	// Logprob is Token's log probability when GenParams.Logprobs is set (nil for the text released at
	// the end, whose Token is -1).
	Logprob *TokenLogprob
}

// Timings measures one generation.
type Timings struct {
	PromptTokens     int // tokens in the prompt
	CachedTokens     int // of those, reused from the KV cache
	GeneratedTokens  int
	TimeToFirstToken time.Duration // from the call to the first generated token
	PromptDuration   time.Duration // prefill of the uncached prompt tokens
	GenDuration      time.Duration // decoding after the first token
	PromptTPS        float64       // uncached prompt tokens per second
	GenTPS           float64       // generated tokens per second after the first
	// ConstrainDuration is the time spent masking logits and advancing the grammar (constrained
	// decoding), within the durations above.
	ConstrainDuration time.Duration
}

// Finish reasons, as in the OpenAI API.
const (
	FinishStop      = "stop"      // an end-of-generation token or a stop string
	FinishLength    = "length"    // MaxTokens reached or the context is full
	FinishCancelled = "cancelled" // the context was cancelled or emit returned an error
)

// Result is a finished generation.
type Result struct {
	PromptTokens []int32
	Tokens       []int32
	Text         string // everything generated, reasoning included
	Thinking     string // the reasoning, without the <think> tags
	Answer       string // the text after the reasoning
	FinishReason string
	Timings      Timings
	// Logprobs holds one entry per token of Tokens when GenParams.Logprobs is set.
	Logprobs []TokenLogprob
}

// Info describes the loaded model and where it runs.
type Info struct {
	Model   string // file base name
	Arch    string // general.architecture
	Quant   string // file type, e.g. "Q4_K_M"
	Backend string // "cpu" or "gpu"
	Device  string // adapter name or CPU description
	Context int    // context window in tokens
	Vocab   int    // tokens in the vocabulary
	Params  int64  // parameter count
	// Reasoning is true when the chat template has a reasoning mode to switch (SmolLM3's /think and
	// /no_think); Think in a ChatRequest is ignored otherwise.
	Reasoning bool
	// Tools is true when the chat template has a tools section (ChatRequest.Tools).
	Tools bool
	// Parallel is how many generations run together: Engine.Parallel on a backend with sequences, 1 on
	// others.
	Parallel int
}
