package engine

import (
	"cmp"
	"math"
	"slices"
)

// MaxTopLogprobs bounds GenParams.TopLogprobs, as OpenAI's API does.
const MaxTopLogprobs = 20

// TokenLogprob is the log probability of one generated token and of the most likely alternatives at
// its position.
//
// Which distribution: the one the token was drawn from before truncation, that is softmax of the
// logits after the repeat, frequency and presence penalties, logit_bias, the constraint's mask (a
// token the constraint forbids has -Inf) and the temperature (1 when sampling is greedy), but before
// top-k, top-p and min-p. With no penalty, bias or constraint and a temperature of 0 or 1 it is the
// log-softmax of the model's raw logits. OpenAI documents no choice; llama.cpp's n_probs reports the
// distribution after its filters unless post_sampling_probs is off.
type TokenLogprob struct {
	Token   int32
	Bytes   []byte
	Logprob float32
	Top     []TopLogprob // the TopLogprobs most likely tokens, most likely first (ties: lower id)
}

// TopLogprob is one alternative in TokenLogprob.Top.
type TopLogprob struct {
	Token   int32
	Bytes   []byte
	Logprob float32
}

// logprobsOf computes the TokenLogprob of id from l, the logits as the sampler weighed them (penalties
// and bias applied), at temperature temp, with the top alternatives. piece gives a token's bytes.
func logprobsOf(l []float32, id int32, temp float32, top int, piece func(int32) []byte) TokenLogprob {
	invT := 1.0
	if temp > 0 {
		invT = 1 / float64(temp)
	}
	maxL := math.Inf(-1)
	for _, x := range l {
		if float64(x) > maxL { // false for NaN
			maxL = float64(x)
		}
	}
	var sum float64
	if !math.IsInf(maxL, 0) {
		for _, x := range l {
			if d := (float64(x) - maxL) * invT; d > -745 { // below that, e^d is 0 in float64
				sum += math.Exp(d)
			}
		}
	}
	logZ := maxL*invT + math.Log(sum)
	lp := func(t int32) float32 {
		x := float64(l[t])
		if x != x || math.IsInf(maxL, 0) {
			return float32(math.Inf(-1))
		}
		return float32(x*invT - logZ)
	}
	out := TokenLogprob{Token: id, Bytes: piece(id), Logprob: lp(id)}
	if top > 0 {
		cands := topK(nil, l, min(top, len(l)))
		slices.SortFunc(cands, func(a, b candidate) int {
			if c := cmp.Compare(b.logit, a.logit); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		for _, c := range cands {
			out.Top = append(out.Top, TopLogprob{Token: c.id, Bytes: piece(c.id), Logprob: lp(c.id)})
		}
	}
	return out
}
