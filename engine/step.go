package engine

import (
	"context"
	"math"
	"time"
)

// stepper evaluates tokens and picks the next one. When the sampling rule only needs the best token
// (greedy) or the k best (a top-k filter, k ≤ MaxDeviceTopK) and no penalty can reorder the logits, it
// lets a backend that can do so select them on the device; otherwise it reads back the whole row of
// logits and samples on the CPU. Both ways pick the same token for the same seed.
type stepper struct {
	e       *Engine
	sampler *sampler
	argmax  Argmaxer
	topk    TopKer
	k       int
	sparse  []float32 // vocabulary-sized logits: -Inf but for the device's candidates

	// With logprobs, last is the log probability of the token next returned, with top alternatives.
	logprobs bool
	top      int
	temp     float32
	last     *TokenLogprob

	guide     *guide        // constrained decoding, nil without
	guideTime time.Duration // spent in the guide
}

// newStepper makes the stepper of a generation; dev, when not nil, is the backend it evaluates tokens on
// (next), which may select tokens on the device. The scheduler evaluates tokens itself and hands the
// logits to pick.
func newStepper(e *Engine, dev Backend, g GenParams) *stepper {
	p := g.SamplerParams
	s := &stepper{e: e, sampler: newSampler(p), logprobs: g.Logprobs, top: g.TopLogprobs, temp: p.Temperature}
	neutral := (p.RepeatPenalty == 0 || p.RepeatPenalty == 1) && p.PresencePenalty == 0 && p.FrequencyPenalty == 0 &&
		len(p.LogitBias) == 0
	if !neutral || g.Logprobs || g.Grammar != nil { // log probabilities and masks need the whole row
		return s
	}
	if a, ok := dev.(Argmaxer); ok && p.Temperature <= 0 {
		s.argmax = a
	} else if t, ok := dev.(TopKer); ok && p.Temperature > 0 && p.TopK > 0 && p.TopK <= MaxDeviceTopK {
		s.topk, s.k = t, p.TopK
	}
	return s
}

// next evaluates tokens (appending them to the cache) and returns the token to follow them.
func (s *stepper) next(ctx context.Context, tokens []int32, history []int32) (int32, error) {
	switch {
	case s.argmax != nil:
		id, err := s.argmax.ForwardArgmax(ctx, tokens)
		s.e.track(tokens, err)
		return id, err
	case s.topk != nil:
		ids, logits, err := s.topk.ForwardTopK(ctx, tokens, s.k)
		s.e.track(tokens, err)
		if err != nil {
			return 0, err
		}
		if s.sparse == nil {
			s.sparse = make([]float32, s.e.tok.VocabSize())
		}
		inf := float32(math.Inf(-1))
		for i := range s.sparse {
			s.sparse[i] = inf
		}
		for i, id := range ids {
			s.sparse[id] = logits[i]
		}
		return s.sampler.Sample(s.sparse, history), nil
	}
	logits, err := s.e.forward(ctx, tokens)
	if err != nil {
		return 0, err
	}
	return s.pick(logits, history)
}

// pick chooses the token that follows history from its logits (a row the caller may not reuse): the
// guide's mask, the sampler, the guide's advance, and the token's log probabilities when asked for.
func (s *stepper) pick(logits []float32, history []int32) (int32, error) {
	if s.guide != nil {
		start := time.Now()
		logits = s.guide.mask(logits)
		s.guideTime += time.Since(start)
	}
	id := s.sampler.Sample(logits, history)
	if s.guide != nil {
		start := time.Now()
		err := s.guide.accept(id)
		s.guideTime += time.Since(start)
		if err != nil {
			return 0, err
		}
	}
	if s.logprobs {
		lp := logprobsOf(s.sampler.penalize(logits, history), id, s.temp, s.top, s.e.tok.Piece)
		s.last = &lp
	}
	return id, nil
}
