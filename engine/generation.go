package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"smolchat/model/tokenizer"
)

// generation is one request from its prompt to its Result: the sampling (stepper, with its guide), the
// stop strings, the split of reasoning from answer, the text and the timings. Both ways of running a
// request drive it alike: Engine.generateAlone's loop on a one-sequence backend, and the scheduler, which
// evaluates many generations' tokens in one batch. Each evaluates the prompt, hands every picked token to
// push until push says the generation is over, then calls finish.
type generation struct {
	e       *Engine
	ctx     context.Context
	p       GenParams
	step    *stepper
	history []int32 // the prompt, then every token generated
	maxCtx  int
	emit    func(Delta) error

	dec                    *tokenizer.StreamDecoder
	split                  *thinkSplitter
	stops                  *stopMatcher
	text, thinking, answer strings.Builder

	res             Result
	start, genStart time.Time
}

// newGeneration checks a request and prepares its state. dev is the backend whose device-side selection
// (Argmaxer, TopKer) the stepper may use, nil for none.
func (e *Engine) newGeneration(ctx context.Context, prompt []int32, p GenParams, startInThink bool, maxCtx int, dev Backend,
	emit func(Delta) error) (*generation, error) {
	if err := p.SamplerParams.Validate(); err != nil {
		return nil, err
	}
	if p.MaxTokens < 0 {
		return nil, fmt.Errorf("max tokens must not be negative, got %d", p.MaxTokens)
	}
	if p.TopLogprobs < 0 || p.TopLogprobs > MaxTopLogprobs {
		return nil, fmt.Errorf("top logprobs = %d: want 0 to %d", p.TopLogprobs, MaxTopLogprobs)
	}
	if len(prompt) == 0 {
		return nil, errors.New("empty prompt")
	}
	vocab := e.tok.VocabSize()
	for i, id := range prompt {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf("prompt token %d at index %d is outside the vocabulary of %d", id, i, vocab)
		}
	}
	if len(prompt) >= maxCtx {
		return nil, fmt.Errorf("%w: the prompt has %d tokens and the context holds %d", ErrContextFull, len(prompt), maxCtx)
	}
	gd, err := e.newGuide(p, p.reasoning && !startInThink)
	if err != nil {
		return nil, err
	}
	if gd != nil && startInThink {
		gd.phase = guideReasoning
	}
	g := &generation{e: e, ctx: ctx, p: p, step: newStepper(e, dev, p), history: append([]int32(nil), prompt...),
		maxCtx: maxCtx, emit: emit, dec: e.tok.NewStreamDecoder(), split: newThinkSplitter(startInThink),
		stops: newStopMatcher(p.Stop), res: Result{PromptTokens: prompt, FinishReason: FinishStop}}
	g.step.guide = gd
	g.res.Timings.PromptTokens = len(prompt)
	return g, nil
}

// begin records that the generation got the model at start, with cached of its prompt's tokens
// already in the KV cache (start is before the search for them, which may read the disk cache).
func (g *generation) begin(cached int, start time.Time) {
	g.start = start
	g.res.Timings.CachedTokens = cached
}

// prefilled records the end of the prompt's evaluation.
func (g *generation) prefilled() {
	t := &g.res.Timings
	t.PromptDuration = time.Since(g.start)
	if uncached := t.PromptTokens - t.CachedTokens; t.PromptDuration > 0 {
		t.PromptTPS = float64(uncached) / t.PromptDuration.Seconds()
	}
}

// push takes the token picked after the cached positions (cached of them, the last being the token
// before id) and reports whether the generation is over: an end-of-generation token, a stop string, a
// complete grammar, the token limit, a full context, a cancelled ctx or an error from emit. Otherwise
// id is to be evaluated next.
func (g *generation) push(id int32, cached int) (done bool) {
	res, p := &g.res, g.p
	if res.Tokens == nil && g.genStart.IsZero() {
		res.Timings.TimeToFirstToken = time.Since(g.start)
		g.genStart = time.Now()
	}
	if g.e.tok.IsEOG(id) {
		return true
	}
	res.Tokens = append(res.Tokens, id)
	g.history = append(g.history, id)
	lp := g.step.last
	if lp != nil {
		res.Logprobs = append(res.Logprobs, *lp)
	}
	out, hit := g.stops.push(g.dec.Add(id))
	if err := g.emitText(id, lp, out); err != nil {
		res.FinishReason = FinishCancelled
		return true
	}
	if hit {
		return true
	}
	if gd := g.step.guide; gd != nil {
		if g.split.Answering() {
			gd.answering()
		}
		if gd.final() {
			return true // the constraint is complete and nothing may follow: no need to sample the end
		}
	}
	switch {
	case p.MaxTokens > 0 && len(res.Tokens) >= p.MaxTokens:
		res.FinishReason = FinishLength
		return true
	case cached+1 >= g.maxCtx:
		res.FinishReason = FinishLength
		return true
	case g.ctx.Err() != nil:
		res.FinishReason = FinishCancelled
		return true
	}
	return false
}

func (g *generation) emitText(id int32, lp *TokenLogprob, s string) error {
	th, an := g.split.Push(s)
	g.text.WriteString(s)
	g.thinking.WriteString(th)
	g.answer.WriteString(an)
	if g.emit == nil || (th == "" && an == "" && id < 0) {
		return nil
	}
	return g.emit(Delta{Token: id, Thinking: th, Answer: an, Logprob: lp})
}

// cancelled ends the generation as cancelled (a cancelled ctx while its prompt or a token was evaluated).
func (g *generation) cancelled() Result {
	g.res.FinishReason = FinishCancelled
	return g.finish()
}

// finish releases the text held back and completes the Result.
func (g *generation) finish() Result {
	res, t := &g.res, &g.res.Timings
	if res.FinishReason != FinishCancelled {
		// Text held back for a possible stop string or an unfinished character is released at the end.
		g.emitText(-1, nil, g.stops.flush())
	}
	th, an := g.split.Flush()
	g.thinking.WriteString(th)
	g.answer.WriteString(an)
	if g.emit != nil && (th != "" || an != "") && res.FinishReason != FinishCancelled {
		g.emit(Delta{Token: -1, Thinking: th, Answer: an})
	}
	res.Text, res.Thinking, res.Answer = g.text.String(), g.thinking.String(), g.answer.String()
	t.GeneratedTokens = len(res.Tokens)
	t.ConstrainDuration = g.step.guideTime
	if !g.genStart.IsZero() {
		t.GenDuration = time.Since(g.genStart)
		if n := len(res.Tokens) - 1; n > 0 && t.GenDuration > 0 {
			t.GenTPS = float64(n) / t.GenDuration.Seconds()
		}
	}
	return *res
}
