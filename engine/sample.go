package engine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerParams chooses the next token from logits. The zero value of a filter field turns it off.
type SamplerParams struct {
	Temperature      float32 // <= 0: greedy (argmax)
	TopK             int     // keep the K most likely tokens; 0 = off
	TopP             float32 // nucleus: keep the smallest set with this much probability; 0 or 1 = off
	MinP             float32 // drop tokens below MinP × the top probability; 0 = off
	RepeatPenalty    float32 // divide positive logits (multiply negative) of recent tokens; 0 or 1 = off
	PresencePenalty  float32 // subtract from logits of tokens seen recently
	FrequencyPenalty float32 // subtract count × this from logits of recent tokens
	RepeatLastN      int     // how many recent tokens the penalties look at; 0 = none, -1 = all
	Seed             uint64  // same seed, same stream
	// LogitBias is added to the logits of the tokens it names, after the penalties (OpenAI's logit_bias:
	// -100 all but bans a token, +100 all but forces it).
	LogitBias map[int32]float32
}

// DefaultSamplerParams are SmolLM3's recommended settings (its model card: temperature 0.6, top-p
// 0.95), with every other filter off and the penalties neutral.
func DefaultSamplerParams() SamplerParams {
	return SamplerParams{Temperature: 0.6, TopP: 0.95, RepeatPenalty: 1, RepeatLastN: 64}
}

// Validate reports the first parameter out of range.
func (p SamplerParams) Validate() error {
	bad := func(name string, v float32, want string) error {
		return fmt.Errorf("sampler: %s = %v: want %s", name, v, want)
	}
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(p.Temperature) || p.Temperature < 0:
		return bad("temperature", p.Temperature, "a number ≥ 0 (0 = greedy)")
	case p.TopK < 0:
		return fmt.Errorf("sampler: top_k = %d: want ≥ 0 (0 = off)", p.TopK)
	case !finite(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return bad("top_p", p.TopP, "a number in (0, 1] (0 or 1 = off)")
	case !finite(p.MinP) || p.MinP < 0 || p.MinP > 1:
		return bad("min_p", p.MinP, "a number in [0, 1] (0 = off)")
	case !finite(p.RepeatPenalty) || p.RepeatPenalty < 0:
		return bad("repeat_penalty", p.RepeatPenalty, "a number > 0 (0 or 1 = off)")
	case !finite(p.PresencePenalty):
		return bad("presence_penalty", p.PresencePenalty, "a finite number")
	case !finite(p.FrequencyPenalty):
		return bad("frequency_penalty", p.FrequencyPenalty, "a finite number")
	case p.RepeatLastN < -1:
		return fmt.Errorf("sampler: repeat_last_n = %d: want ≥ -1 (0 = none, -1 = all)", p.RepeatLastN)
	}
	for id, b := range p.LogitBias {
		if id < 0 || !finite(b) {
			return fmt.Errorf("sampler: logit_bias[%d] = %v: want a token id ≥ 0 and a finite bias", id, b)
		}
	}
	return nil
}

// sampler draws tokens from logits. It keeps scratch buffers between calls, so it is not safe for
// concurrent use; give each generation its own.
type sampler struct {
	p   SamplerParams
	rng *rand.Rand

	logits []float32   // penalized copy of the caller's logits
	cands  []candidate // the tokens still in the running
	counts map[int32]int
}

type candidate struct {
	id    int32
	logit float32
	p     float64 // probability, unnormalized until the draw
}

// newSampler returns a sampler with the given parameters. Parameters that fail Validate are used as
// far as they make sense (a negative temperature samples greedily, a TopP above 1 keeps everything);
// check them first where they come from users.
func newSampler(p SamplerParams) *sampler {
	// PCG's second word is a fixed odd constant, so the stream depends on Seed alone.
	return &sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15)), counts: map[int32]int{}}
}

// Sample chooses the next token from one row of logits, given the tokens so far (prompt and
// generated) for the penalties. It does not modify logits or history.
//
// With Temperature ≤ 0 it returns the argmax of the penalized logits (ties: the lowest id). Otherwise
// it applies, in order: the repeat, frequency and presence penalties; top-k; softmax at the
// temperature; top-p; min-p; and draws from what is left. NaN logits count as -Inf. It returns -1
// when logits is empty (nothing to choose from).
//
// Tokens whose probability is below e^-30 (1e-13) times the top token's are left out from the start:
// a 128k vocabulary of them holds less than 1e-8 of the mass, below float32 resolution, and skipping
// them spares most of the exponentials.
func (s *sampler) Sample(logits []float32, history []int32) int32 {
	if len(logits) == 0 {
		return -1
	}
	l := s.penalize(logits, history)
	if s.p.Temperature <= 0 {
		return argmax(l)
	}

	// Top-k: partial selection keeps this O(V log K) rather than a sort of the whole vocabulary.
	topk := s.p.TopK > 0 && s.p.TopK < len(l)
	var maxLogit float32
	if topk {
		s.cands = topK(s.cands[:0], l, s.p.TopK)
		maxLogit = float32(math.Inf(-1))
		for _, c := range s.cands {
			maxLogit = max(maxLogit, c.logit)
		}
	} else {
		maxLogit = l[argmax(l)]
	}
	if math.IsInf(float64(maxLogit), 0) || maxLogit != maxLogit {
		return argmax(l) // all -Inf, or +Inf tokens: nothing to weigh
	}

	// Softmax at the temperature, unnormalized: probabilities relative to the top token's.
	const cutoff = 30 // in units of temperature-scaled logits below the top
	invT := 1 / float64(s.p.Temperature)
	floor := maxLogit - float32(cutoff*float64(s.p.Temperature))
	cands := s.cands[:0]
	var sum float64
	weigh := func(id int32, x float32) {
		if x >= floor { // false for NaN too
			p := expNeg(float64(x-maxLogit) * invT)
			cands = append(cands, candidate{id: id, logit: x, p: p})
			sum += p
		}
	}
	if topk {
		for _, c := range s.cands { // in place: cands never overtakes the element being read
			weigh(c.id, c.logit)
		}
	} else {
		for i, x := range l {
			weigh(int32(i), x)
		}
	}
	s.cands = cands

	if tp := float64(s.p.TopP); tp > 0 && tp < 1 {
		cands = nucleus(cands, tp*sum)
	}
	if mp := float64(s.p.MinP); mp > 0 {
		// The top token has p = 1 (e^0) and is always kept.
		kept := cands[:0]
		for _, c := range cands {
			if c.p >= mp {
				kept = append(kept, c)
			}
		}
		cands = kept
	}
	if len(cands) == 0 {
		return argmax(l) // only with MinP > 1, which Validate rejects
	}

	var total float64
	for _, c := range cands {
		total += c.p
	}
	u := s.rng.Float64() * total
	for _, c := range cands {
		u -= c.p
		if u < 0 {
			return c.id
		}
	}
	// Rounding left u ≥ 0 after the last subtraction: the draw belongs to the last token.
	return cands[len(cands)-1].id
}

// expNeg is e^x for x in [-31, 0], to about 1e-8 relative error, about twice as fast as math.Exp:
// x = k·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to degree 7 (error below r^8/8! ≈ 6e-9),
// scaled by 2^k through the exponent bits.
func expNeg(x float64) float64 {
	const (
		log2e = 1.44269504088896340736
		ln2hi = 6.93147180369123816490e-01 // ln2 split in two so that k·ln2hi is exact
		ln2lo = 1.90821492927058770002e-10
	)
	ki := -int64(0.5 - x*log2e) // round(x·log2e) for x ≤ 0, without math.Floor's call
	k := float64(ki)
	r := (x - k*ln2hi) - k*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return math.Float64frombits(math.Float64bits(p) + uint64(ki)<<52)
}

// penalize returns the logits with the penalties applied, as llama.cpp does: a token seen c > 0 times
// in the last RepeatLastN tokens has its logit divided by RepeatPenalty if positive (multiplied if
// not), then lowered by c·FrequencyPenalty + PresencePenalty; then LogitBias is added. Without
// penalties or bias it returns logits itself; with them, a copy.
func (s *sampler) penalize(logits []float32, history []int32) []float32 {
	rp, fp, pp := s.p.RepeatPenalty, s.p.FrequencyPenalty, s.p.PresencePenalty
	window := history
	switch n := s.p.RepeatLastN; {
	case n == 0:
		window = nil
	case n > 0 && n < len(history):
		window = history[len(history)-n:]
	}
	if (rp == 0 || rp == 1) && fp == 0 && pp == 0 || len(window) == 0 {
		if len(s.p.LogitBias) == 0 {
			return logits
		}
		window = nil
	}
	clear(s.counts)
	for _, id := range window {
		if id >= 0 && int(id) < len(logits) {
			s.counts[id]++
		}
	}
	s.logits = append(s.logits[:0], logits...)
	l := s.logits
	for id, c := range s.counts {
		x := l[id]
		if rp != 0 && rp != 1 {
			if x > 0 {
				x /= rp
			} else {
				x *= rp
			}
		}
		l[id] = x - float32(c)*fp - pp
	}
	for id, b := range s.p.LogitBias {
		if int(id) < len(l) {
			l[id] += b
		}
	}
	return l
}

// argmax is the index of the largest value, the lowest one on ties, skipping NaN; 0 when no value
// is above -Inf.
func argmax(l []float32) int32 {
	best, bv := 0, float32(math.Inf(-1))
	for i, x := range l {
		if x > bv {
			best, bv = i, x
		}
	}
	return int32(best)
}

// topK appends to dst the k candidates with the largest logits (ties: lower ids first) in no
// particular order, keeping a min-heap of the best k seen so far.
func topK(dst []candidate, l []float32, k int) []candidate {
	h := dst[:0]
	worse := func(a, b candidate) bool { // a ranks below b
		return a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
	}
	down := func(i int) {
		for {
			m, c1, c2 := i, 2*i+1, 2*i+2
			if c1 < len(h) && worse(h[c1], h[m]) {
				m = c1
			}
			if c2 < len(h) && worse(h[c2], h[m]) {
				m = c2
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i, x := range l {
		if x != x {
			x = float32(math.Inf(-1)) // NaN would break the heap order
		}
		c := candidate{id: int32(i), logit: x}
		if len(h) < k {
			h = append(h, c)
			if len(h) == k {
				for j := k/2 - 1; j >= 0; j-- {
					down(j)
				}
			}
			continue
		}
		if worse(h[0], c) {
			h[0] = c
			down(0)
		}
	}
	return h
}

// nucleus keeps the most probable candidates, in descending order, until their mass reaches want.
// It sorts only the candidates above a probability floor, lowering the floor until they hold enough
// mass; with a peaked distribution that is a few dozen tokens out of a vocabulary of 128k. Whatever
// lies below the floor is less probable than everything above it, so the result is that of a full sort.
func nucleus(cands []candidate, want float64) []candidate {
	byProb := func(a, b candidate) int {
		if c := cmp.Compare(b.p, a.p); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	}
	for floor := 1e-3; ; floor *= 1e-3 {
		// Move the candidates at or above the floor to the front.
		n := 0
		var mass float64
		for i, c := range cands {
			if c.p >= floor {
				cands[n], cands[i] = cands[i], cands[n]
				mass += c.p
				n++
			}
		}
		if mass < want && floor > 1e-300 {
			continue
		}
		head := cands[:n]
		if floor <= 1e-300 {
			head = cands // the rest is (nearly) zero: take everything
		}
		slices.SortFunc(head, byProb)
		var cum float64
		for i, c := range head {
			cum += c.p
			if cum >= want {
				return head[:i+1]
			}
		}
		return head
	}
}
