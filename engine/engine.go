package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"smolchat/engine/constrain"
	"smolchat/model"
	"smolchat/model/chat"
	"smolchat/model/tokenizer"
)

// prefillChunk bounds the tokens evaluated per Forward call during prefill, so that a cancelled request
// stops quickly and activations stay small.
const prefillChunk = 256

// Engine generates text with one model on one backend. On a backend with sequences (SeqBackend) its
// scheduler runs up to Parallel generations together and keeps finished conversations' KV blocks
// (scheduler.go); on others it runs one generation at a time (callers queue on its lock) and keeps the
// backend's cache between calls. Either way a prompt extending an earlier one (the next turn of a chat)
// only evaluates its new tokens.
type Engine struct {
	mu      sync.Mutex // held by a generation on the one-sequence path; guards backend and cached
	model   *model.Model
	tok     *tokenizer.Tokenizer
	tmpl    chat.Renderer
	backend Backend              // replaced, under mu, after a lost GPU: readers outside a generation use info
	info    atomic.Pointer[Info] // Info's answer, replaced with the backend (readable during a generation)
	cached  []int32              // the tokens whose keys and values the backend holds, in order
	// reload makes a new backend after the current one is lost (nil: the engine cannot recover).
	reload func() (Backend, error)
	// Date pins the date SmolLM3's template writes into the prompt; zero means today.
	Date time.Time
	// Parallel is how many sequences generate together on a backend with sequences (SeqBackend); 0
	// means DefaultParallel. It is read when the first generation starts.
	Parallel int

	schedOnce sync.Once
	sched     *scheduler // nil until the first generation, and on backends without sequences
	hooks     schedHooks // tests' hooks into the scheduler, set before it starts
	// disk keeps the conversation cache's sequences in files (LoadOptions.KVDisk; nil: off); openDisk
	// opens the disk cache for a backend (nil: off), for the backend that replaces a lost one.
	disk     *kvDisk
	openDisk func(Backend) *kvDisk
	logger   *slog.Logger // nil: slog.Default()

	vocabOnce sync.Once
	vocab     *constrain.Vocab // the tokenizer arranged for constrained decoding (vocabulary())
}

// New makes an engine from its parts; Load is the usual way to get one.
func New(m *model.Model, tok *tokenizer.Tokenizer, tmpl chat.Renderer, b Backend) *Engine {
	e := &Engine{model: m, tok: tok, tmpl: tmpl, backend: b}
	e.setInfo()
	return e
}

// Info describes the model and the backend.
//
// It reflects the backend in use: after a lost GPU is replaced, the new device (or the CPU). It does not
// wait for a generation in progress.
func (e *Engine) Info() Info { return *e.info.Load() }

// setInfo records Info for the current backend; the engine's lock is held, or the engine is new.
func (e *Engine) setInfo() {
	if e.model == nil || e.backend == nil { // an engine for templates and tokens alone
		e.info.Store(&Info{})
		return
	}
	e.info.Store(&Info{Model: e.model.Name(), Arch: e.model.Config.Arch, Quant: model.FileTypeName(e.model.File),
		Backend: e.backend.Name(), Device: e.backend.Device(), Context: e.backend.MaxContext(), Vocab: e.tok.VocabSize(),
		Params: e.model.ParamCount(), Reasoning: e.tmpl.Reasoning(), Tools: hasTools(e.tmpl), Parallel: e.parallel()})
}

// parallel is how many generations run together on the current backend.
func (e *Engine) parallel() int {
	if _, ok := e.backend.(SeqBackend); !ok {
		return 1
	}
	if e.Parallel > 0 {
		return e.Parallel
	}
	return DefaultParallel
}

// hasTools reports that a template renders tools: it renders a conversation with one.
func hasTools(r chat.Renderer) bool {
	opt := chat.DefaultOptions()
	opt.Tools = []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"f"}}`)}
	_, err := r.Render([]chat.Message{{Role: "user", Content: "x"}}, opt)
	return err == nil
}

// log is the engine's logger.
func (e *Engine) log() *slog.Logger {
	if e.logger == nil {
		return slog.Default()
	}
	return e.logger
}

// Tokenizer is the model's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// Backend is the backend the engine runs on. A lost GPU's backend is replaced at the end of the
// generation that lost it, so this waits for a running generation of the one-sequence path; callers use
// it between them. (The scheduler owns a SeqBackend's sequences; Forward on it uses a sequence of its
// own.)
func (e *Engine) Backend() Backend {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.backend
}

// Template is the chat template renderer.
func (e *Engine) Template() chat.Renderer { return e.tmpl }

// Close stops the scheduler (generations in progress fail), releases the backend and unmaps the model.
func (e *Engine) Close() error {
	e.schedOnce.Do(func() {}) // no scheduler starts after this
	if e.sched != nil {
		e.sched.close()
		e.sched.disk.close() // the one it spilled to: e.disk or, after a lost backend, its successor's
	}
	e.disk.close()
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.backend.Close()
	if e.model == nil { // an engine made by New from parts, without a model file
		return err
	}
	if cerr := e.model.Close(); err == nil {
		err = cerr
	}
	return err
}

// Tokenize encodes raw text, with BOS and EOS where the model's rules add them (llama.cpp's add_special,
// which its server sets for every prompt).
func (e *Engine) Tokenize(text string, parseSpecial bool) []int32 {
	return e.tok.Encode(text, tokenizer.EncodeOptions{AddBOS: e.tok.AddsBOS(), AddEOS: e.tok.AddsEOS(), ParseSpecial: parseSpecial})
}

// RenderChat renders msgs with the model's chat template and encodes them: template markup with
// special tokens, message content as plain text (a user cannot forge a turn boundary).
//
// tools are the functions the model may call (OpenAI's tools array, one JSON value each), for templates
// with a tools section (Info.Tools).
func (e *Engine) RenderChat(msgs []Message, think *bool, tools ...json.RawMessage) (chat.Prompt, []int32, error) {
	cm := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		cm[i] = chat.Message{Role: m.Role, Content: m.Content}
	}
	opt := chat.DefaultOptions()
	opt.EnableThinking = think
	opt.Date = e.Date
	opt.Tools = tools
	p, err := e.tmpl.Render(cm, opt)
	if err != nil {
		return p, nil, err
	}
	var ids []int32
	if e.tok.AddsBOS() {
		ids = append(ids, e.tok.BOS())
	}
	ids = append(ids, p.Tokens(func(text string, special bool) []int32 {
		return e.tok.Encode(text, tokenizer.EncodeOptions{ParseSpecial: special})
	})...)
	if e.tok.AddsEOS() && e.tok.EOS() >= 0 { // as llama.cpp's server tokenizes a rendered chat: with add_special
		ids = append(ids, e.tok.EOS())
	}
	return p, ids, nil
}

// CountChatTokens is the prompt length of a conversation (with the tools offered, if any), for
// context meters and limits.
func (e *Engine) CountChatTokens(msgs []Message, think *bool, tools ...json.RawMessage) (int, error) {
	_, ids, err := e.RenderChat(msgs, think, tools...)
	return len(ids), err
}

// AnswerReserve is how many positions a chat prompt leaves free for the answer when it is fitted into
// a context of contextSize tokens by dropping old turns: MaxTokens, or 512 when unset, at most a quarter
// of the context. Chat fails with ErrContextFull when even the last user turn leaves fewer.
func AnswerReserve(p GenParams, contextSize int) int {
	r := 512
	if p.MaxTokens > 0 {
		r = p.MaxTokens
	}
	return min(r, contextSize/4)
}

// reserve is AnswerReserve for the backend in use (read through info: callers do not hold the lock).
func (e *Engine) reserve(p GenParams) int { return AnswerReserve(p, e.Info().Context) }

// Chat continues a conversation. When the rendered conversation does not fit in the context (with room
// for the answer), the oldest turns after the system message are dropped, a user turn at a time; if
// even the last user turn does not fit, it fails with ErrContextFull.
func (e *Engine) Chat(ctx context.Context, req ChatRequest, emit func(Delta) error) (Result, error) {
	msgs := req.Messages
	limit := e.Info().Context - e.reserve(req.Params)
	for {
		p, ids, err := e.RenderChat(msgs, req.Think, req.Tools...)
		if err != nil {
			return Result{}, err
		}
		inThink := p.InThink
		if req.Continue != nil {
			var more []int32
			more, inThink = e.continuation(*req.Continue)
			ids = append(ids, more...)
		}
		if len(ids) <= limit {
			params := req.Params
			params.reasoning = p.Thinking
			return e.Generate(ctx, ids, params, inThink, emit)
		}
		next, ok := dropOldestTurn(msgs)
		if !ok {
			return Result{}, fmt.Errorf("%w: the conversation needs %d tokens but the context holds %d (with %d kept for the answer); shorten the last message or raise --ctx",
				ErrContextFull, len(ids), e.Info().Context, e.reserve(req.Params))
		}
		msgs = next
	}
}

// continuation encodes a begun answer as the model wrote it after the generation prompt: the reasoning
// in its <think> block (left open when the answer has not begun: inThink), then the answer. The tags are
// special tokens; the text is encoded as text, so that a "<think>" inside it stays text.
func (e *Engine) continuation(p Partial) (ids []int32, inThink bool) {
	markup := func(s string) { ids = append(ids, e.tok.Encode(s, tokenizer.EncodeOptions{ParseSpecial: true})...) }
	text := func(s string) { ids = append(ids, e.tok.Encode(s, tokenizer.EncodeOptions{})...) }
	if p.Thinking != "" {
		markup(thinkOpen + "\n")
		text(p.Thinking)
		if p.Answer == "" {
			return ids, true
		}
		markup("\n" + thinkClose + "\n")
	}
	text(p.Answer)
	return ids, false
}

// dropOldestTurn removes the first non-system message and everything up to the next user message, so
// that the conversation still starts with the system prompt (if any) followed by a user turn. It fails
// when only the last user turn (and what follows it) is left.
func dropOldestTurn(msgs []Message) ([]Message, bool) {
	start := 0
	if len(msgs) > 0 && msgs[0].Role == "system" {
		start = 1
	}
	lastUser := -1
	for i := len(msgs) - 1; i >= start; i-- {
		if msgs[i].Role == "user" {
			lastUser = i
			break
		}
	}
	end := start + 1
	for end < len(msgs) && msgs[end].Role != "user" {
		end++
	}
	if lastUser <= start || end > lastUser {
		return nil, false
	}
	out := append(append([]Message{}, msgs[:start]...), msgs[end:]...)
	return out, true
}

// Complete continues a raw prompt (no chat template; BOS and EOS per the model's rules, special tokens
// parsed).
func (e *Engine) Complete(ctx context.Context, prompt string, p GenParams, emit func(Delta) error) (Result, error) {
	ids := e.Tokenize(prompt, true)
	if len(ids) == 0 {
		return Result{}, errors.New("empty prompt")
	}
	return e.Generate(ctx, ids, p, false, emit)
}

// Generate evaluates prompt and samples until an end-of-generation token, a stop string, MaxTokens or
// the end of the context. emit gets each token's text as it is produced; an error from emit, like a
// cancelled ctx, ends the generation with FinishCancelled and no error.
//
// On a backend with sequences (SeqBackend) the generation joins the scheduler's batch (scheduler.go);
// on others it waits for the engine's lock and runs alone (generateAlone).
func (e *Engine) Generate(ctx context.Context, prompt []int32, p GenParams, startInThink bool, emit func(Delta) error) (Result, error) {
	if s := e.scheduler(); s != nil {
		return s.generate(ctx, prompt, p, startInThink, emit)
	}
	return e.generateAlone(ctx, prompt, p, startInThink, emit)
}

// scheduler is the engine's scheduler, started on first use, or nil when the backend holds one sequence
// (or was replaced by one that does, after it was lost).
func (e *Engine) scheduler() *scheduler {
	e.schedOnce.Do(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if sb, ok := e.backend.(SeqBackend); ok {
			e.sched = newScheduler(e, sb, e.Parallel)
			go e.sched.run()
		}
	})
	if e.sched == nil || e.sched.gone.Load() {
		return nil
	}
	return e.sched
}

// SchedulerStats reports the scheduler's sequences and KV blocks, and false when the backend runs one
// generation at a time.
func (e *Engine) SchedulerStats() (SchedulerStats, bool) {
	s := e.scheduler()
	if s == nil {
		return SchedulerStats{}, false
	}
	return *s.stats.Load(), true
}

// generateAlone runs one generation on the backend's single sequence, holding the engine's lock, and
// reuses the prefix it shares with the previous generation's tokens.
func (e *Engine) generateAlone(ctx context.Context, prompt []int32, p GenParams, startInThink bool, emit func(Delta) error) (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.newGeneration(ctx, prompt, p, startInThink, e.backend.MaxContext(), e.backend, emit)
	if err != nil {
		return Result{}, err
	}
	// Reuse the cached prefix; at least the last prompt token is evaluated again for its logits.
	keep := commonPrefix(e.cached, prompt)
	if keep == len(prompt) {
		keep--
	}
	e.backend.Truncate(keep)
	e.cached = e.cached[:keep]
	g.begin(keep, time.Now())

	id, err := e.prefill(ctx, g.step, prompt[keep:], g.history)
	g.prefilled()
	if err != nil {
		if ctx.Err() != nil {
			return g.cancelled(), nil
		}
		return g.res, e.recoverFrom(err)
	}
	for !g.push(id, e.backend.Len()) {
		id, err = g.step.next(ctx, []int32{id}, g.history)
		if err != nil {
			if ctx.Err() != nil {
				return g.cancelled(), nil
			}
			return g.res, e.recoverFrom(err)
		}
	}
	return g.finish(), nil
}

// recoverFrom replaces a lost backend so that the next request can run, and returns the request's
// error with what happened to the backend. Other errors are returned as they are.
func (e *Engine) recoverFrom(err error) error {
	if !errors.Is(err, ErrBackendLost) {
		return err
	}
	if e.reload == nil {
		return err
	}
	old := e.backend.Name()
	e.backend.Close()
	b, rerr := e.reload()
	if rerr != nil {
		e.backend = lostBackend{name: old, err: fmt.Errorf("%w; re-creating it failed: %v", err, rerr)}
		e.setInfo()
		return fmt.Errorf("%w; re-creating the backend failed: %v", err, rerr)
	}
	e.backend = b
	e.setInfo()
	e.cached = e.cached[:0]
	return fmt.Errorf("%w (the %s backend was replaced: now %s on %s)", err, old, b.Name(), b.Device())
}

// lostBackend stands in for a backend that was lost and could not be re-created: every call fails.
type lostBackend struct {
	name string
	err  error
}

func (l lostBackend) Name() string    { return l.name }
func (l lostBackend) Device() string  { return "unavailable" }
func (l lostBackend) Len() int        { return 0 }
func (l lostBackend) Truncate(int)    {}
func (l lostBackend) MaxContext() int { return DefaultContext }
func (l lostBackend) Close() error    { return nil }
func (l lostBackend) Forward(context.Context, []int32, []int) ([][]float32, error) {
	return nil, l.err
}

// prefill evaluates tokens in chunks and returns the token that follows them.
func (e *Engine) prefill(ctx context.Context, step *stepper, tokens, history []int32) (int32, error) {
	for len(tokens) > prefillChunk {
		if _, err := e.backend.Forward(ctx, tokens[:prefillChunk], nil); err != nil {
			e.track(nil, err)
			return 0, err
		}
		e.track(tokens[:prefillChunk], nil)
		tokens = tokens[prefillChunk:]
	}
	return step.next(ctx, tokens, history)
}

// forward runs the backend on tokens and returns the last row's logits.
func (e *Engine) forward(ctx context.Context, tokens []int32) ([]float32, error) {
	out, err := e.backend.Forward(ctx, tokens, []int{len(tokens) - 1})
	e.track(tokens, err)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// track keeps e.cached in step with the backend's cache after evaluating tokens.
func (e *Engine) track(tokens []int32, err error) {
	if err != nil {
		// The backend leaves its cache as it was before the call.
		e.cached = e.cached[:min(len(e.cached), e.backend.Len())]
		return
	}
	e.cached = append(e.cached, tokens...)
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// stopMatcher holds back generated text that might be the start of a stop string.
type stopMatcher struct {
	stops   []string
	pending string
}

func newStopMatcher(stops []string) *stopMatcher {
	var s []string
	for _, x := range stops {
		if x != "" {
			s = append(s, x)
		}
	}
	return &stopMatcher{stops: s}
}

// push adds text and returns what can be released, and whether a stop string was found (text from the
// stop string on is dropped).
func (m *stopMatcher) push(text string) (string, bool) {
	m.pending += text
	if len(m.stops) == 0 {
		out := m.pending
		m.pending = ""
		return out, false
	}
	cut := -1
	for _, s := range m.stops {
		if i := strings.Index(m.pending, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := m.pending[:cut]
		m.pending = ""
		return out, true
	}
	hold := 0
	for _, s := range m.stops {
		for k := min(len(s)-1, len(m.pending)); k > hold; k-- {
			if strings.HasSuffix(m.pending, s[:k]) {
				hold = k
				break
			}
		}
	}
	out := m.pending[:len(m.pending)-hold]
	m.pending = m.pending[len(m.pending)-hold:]
	return out, false
}

// flush releases held text at the end of a generation that no stop string ended.
func (m *stopMatcher) flush() string {
	out := m.pending
	m.pending = ""
	return out
}
