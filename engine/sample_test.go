package engine

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// logitsOf returns logits whose softmax (at temperature 1) is probs.
func logitsOf(probs ...float64) []float32 {
	l := make([]float32, len(probs))
	for i, p := range probs {
		l[i] = float32(math.Log(p))
	}
	return l
}

// draws samples n tokens and counts each id.
func draws(s *sampler, logits []float32, history []int32, n int) []int {
	counts := make([]int, len(logits))
	for range n {
		id := s.Sample(logits, history)
		if id < 0 || int(id) >= len(logits) {
			panic("sampled id out of range")
		}
		counts[id]++
	}
	return counts
}

func TestSampleGreedy(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		logits  []float32
		history []int32
		p       SamplerParams
		want    int32
	}{
		{"argmax", []float32{0.1, 2, -3, 1.9}, nil, SamplerParams{}, 1},
		{"ties go to the lowest id", []float32{1, 5, 0, 5, 5}, nil, SamplerParams{}, 1},
		{"negative temperature is greedy too", []float32{1, 2, 3}, nil, SamplerParams{Temperature: -1}, 2},
		{"NaN never wins", []float32{nan, -1, nan, -2}, nil, SamplerParams{}, 1},
		{"+Inf wins", []float32{1, inf, 2}, nil, SamplerParams{}, 1},
		{"all -Inf gives 0", []float32{-inf, -inf}, nil, SamplerParams{}, 0},
		{"all NaN gives 0", []float32{nan, nan}, nil, SamplerParams{}, 0},
		{"penalties apply before the argmax", []float32{2, 1.9, 0}, []int32{0}, SamplerParams{RepeatPenalty: 1.5, RepeatLastN: 64}, 1},
		{"top-k does not change greedy", []float32{0, 3, 1}, nil, SamplerParams{TopK: 1}, 1},
		{"logit bias raises a token", []float32{2, 1, 0}, nil, SamplerParams{LogitBias: map[int32]float32{2: 2.5}}, 2},
		{"logit bias bans a token", []float32{2, 1, 0}, nil, SamplerParams{LogitBias: map[int32]float32{0: -100}}, 1},
		{"logit bias beyond the vocabulary is ignored", []float32{2, 1}, nil, SamplerParams{LogitBias: map[int32]float32{7: 100}}, 0},
		{"logit bias after the penalties", []float32{2, 1.9, 0}, []int32{0}, SamplerParams{RepeatPenalty: 1.5, RepeatLastN: 64,
			LogitBias: map[int32]float32{0: 0.6}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, seed := range []uint64{0, 1, 42} {
				tt.p.Seed = seed
				if got := newSampler(tt.p).Sample(tt.logits, tt.history); got != tt.want {
					t.Errorf("seed %d: Sample = %d, want %d", seed, got, tt.want)
				}
			}
		})
	}
}

// TestSampleLogitBiasBans checks that a -100 bias keeps a token out of random draws and leaves the
// caller's logits alone.
func TestSampleLogitBiasBans(t *testing.T) {
	logits := logitsOf(0.7, 0.2, 0.1)
	s := newSampler(SamplerParams{Temperature: 1, Seed: 3, LogitBias: map[int32]float32{0: -100}})
	counts := draws(s, logits, nil, 2000)
	if counts[0] != 0 || counts[1] == 0 || counts[2] == 0 {
		t.Errorf("counts with token 0 banned: %v", counts)
	}
	if logits[0] != float32(math.Log(0.7)) {
		t.Errorf("Sample modified the logits: %v", logits)
	}
	if err := (SamplerParams{LogitBias: map[int32]float32{-1: 1}}).Validate(); err == nil {
		t.Error("Validate accepted a negative token id in logit_bias")
	}
}

func TestSampleEmptyLogits(t *testing.T) {
	for _, p := range []SamplerParams{{}, DefaultSamplerParams()} {
		if got := newSampler(p).Sample(nil, nil); got != -1 {
			t.Errorf("Sample(nil) = %d, want -1", got)
		}
	}
}

func TestSampleDeterministicBySeed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2)
	}
	stream := func(seed uint64) []int32 {
		p := DefaultSamplerParams()
		p.Temperature, p.Seed = 1.5, seed
		s := newSampler(p)
		ids := make([]int32, 200)
		for i := range ids {
			ids[i] = s.Sample(logits, ids[:i])
		}
		return ids
	}
	a, b, c := stream(1), stream(1), stream(2)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 gave two different streams:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same stream %v", a)
	}
}

func TestSampleDoesNotModifyInputs(t *testing.T) {
	logits := []float32{1, float32(math.NaN()), 3, 2}
	history := []int32{2, 2, 0, 9, -1}
	wantL, wantH := slices.Clone(logits), slices.Clone(history)
	p := SamplerParams{Temperature: 0.8, TopK: 3, TopP: 0.9, MinP: 0.01, RepeatPenalty: 1.3, PresencePenalty: 0.5, FrequencyPenalty: 0.2, RepeatLastN: -1}
	s := newSampler(p)
	for range 10 {
		s.Sample(logits, history)
	}
	if !slices.Equal(history, wantH) {
		t.Errorf("history changed: %v, want %v", history, wantH)
	}
	for i := range logits {
		if math.Float32bits(logits[i]) != math.Float32bits(wantL[i]) {
			t.Errorf("logits changed: %v, want %v", logits, wantL)
			break
		}
	}
}

// chiSquare is Pearson's statistic of counts against the expected probabilities (which sum to 1).
func chiSquare(counts []int, probs []float64) float64 {
	n := 0
	for _, c := range counts {
		n += c
	}
	var x float64
	for i, c := range counts {
		e := probs[i] * float64(n)
		if e == 0 {
			if c != 0 {
				return math.Inf(1)
			}
			continue
		}
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// TestSampleDistribution draws many tokens and compares their frequencies with what each filter
// should leave, renormalized. With a fixed seed the test is deterministic; the threshold is the
// chi-square critical value at p = 0.001, so a correct sampler passes for any seed but one in a
// thousand, and a wrong one (a filter off by one token, a temperature applied twice) fails by far.
func TestSampleDistribution(t *testing.T) {
	base := []float64{0.4, 0.25, 0.15, 0.1, 0.06, 0.04}
	critical := map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}
	tests := []struct {
		name string
		p    SamplerParams
		want []float64 // unnormalized target weights, zero for filtered tokens
	}{
		{"temperature 1", SamplerParams{Temperature: 1}, base},
		{"temperature 0.5 squares the probabilities", SamplerParams{Temperature: 0.5}, pow(base, 2)},
		{"temperature 2 takes square roots", SamplerParams{Temperature: 2}, pow(base, 0.5)},
		{"top-k 3", SamplerParams{Temperature: 1, TopK: 3}, []float64{0.4, 0.25, 0.15, 0, 0, 0}},
		{"top-k larger than the vocabulary", SamplerParams{Temperature: 1, TopK: 100}, base},
		{"top-p 0.6 keeps two", SamplerParams{Temperature: 1, TopP: 0.6}, []float64{0.4, 0.25, 0, 0, 0, 0}},
		{"top-p 0.7 keeps three", SamplerParams{Temperature: 1, TopP: 0.7}, []float64{0.4, 0.25, 0.15, 0, 0, 0}},
		{"top-p 1 is off", SamplerParams{Temperature: 1, TopP: 1}, base},
		{"top-k then top-p over the renormalized top-k", SamplerParams{Temperature: 1, TopK: 2, TopP: 0.6}, []float64{0.4, 0, 0, 0, 0, 0}},
		{"min-p 0.3 drops below 0.12", SamplerParams{Temperature: 1, MinP: 0.3}, []float64{0.4, 0.25, 0.15, 0, 0, 0}},
		{"min-p 0.2 keeps 0.1", SamplerParams{Temperature: 1, MinP: 0.2}, []float64{0.4, 0.25, 0.15, 0.1, 0, 0}},
		{"top-p then min-p", SamplerParams{Temperature: 1, TopP: 0.95, MinP: 0.5}, []float64{0.4, 0.25, 0, 0, 0, 0}},
		// At T = 0.5 the weights are .16 .0625 .0225 …: top-p 0.7 keeps two, where at T = 1 it keeps three.
		{"temperature before top-p", SamplerParams{Temperature: 0.5, TopP: 0.7}, []float64{0.16, 0.0625, 0, 0, 0, 0}},
		// At T = 0.6 the weights are base^(1/0.6); top-p 0.95 then keeps the first four.
		{"defaults", DefaultSamplerParams(), append(pow(base, 1/0.6)[:4:4], 0, 0)},
	}
	logits := logitsOf(base...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := normalize(tt.want)
			tt.p.Seed = 12345
			counts := draws(newSampler(tt.p), logits, nil, 40000)
			df := -1
			for _, w := range want {
				if w > 0 {
					df++
				}
			}
			x := chiSquare(counts, want)
			if df == 0 {
				if x != 0 {
					t.Errorf("counts %v, want only the top token", counts)
				}
				return
			}
			if x > critical[df] {
				t.Errorf("counts %v against %v: chi-square %.1f > %.2f (df %d)", counts, want, x, critical[df], df)
			}
		})
	}
}

func pow(x []float64, e float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = math.Pow(v, e)
	}
	return y
}

func normalize(x []float64) []float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v / s
	}
	return y
}

func TestPenalize(t *testing.T) {
	logits := []float32{2, -1, 0.5, 3}
	tests := []struct {
		name    string
		p       SamplerParams
		history []int32
		want    []float32
	}{
		{"neutral", SamplerParams{RepeatPenalty: 1, RepeatLastN: 64}, []int32{0, 1}, []float32{2, -1, 0.5, 3}},
		{"repeat: divide positive, multiply negative", SamplerParams{RepeatPenalty: 2, RepeatLastN: 64}, []int32{0, 1, 1}, []float32{1, -2, 0.5, 3}},
		{"repeat penalty 0 is off", SamplerParams{RepeatPenalty: 0, RepeatLastN: 64}, []int32{0}, []float32{2, -1, 0.5, 3}},
		{"frequency counts occurrences", SamplerParams{FrequencyPenalty: 0.5, RepeatLastN: 64}, []int32{2, 2, 2, 3}, []float32{2, -1, -1, 2.5}},
		{"presence once per token", SamplerParams{PresencePenalty: 0.25, RepeatLastN: 64}, []int32{2, 2, 3}, []float32{2, -1, 0.25, 2.75}},
		{"negative presence rewards", SamplerParams{PresencePenalty: -1, RepeatLastN: 64}, []int32{1}, []float32{2, 0, 0.5, 3}},
		{"all three", SamplerParams{RepeatPenalty: 2, FrequencyPenalty: 0.5, PresencePenalty: 0.25, RepeatLastN: 64}, []int32{3, 3}, []float32{2, -1, 0.5, 0.25}},
		{"window: last 2 only", SamplerParams{RepeatPenalty: 2, RepeatLastN: 2}, []int32{0, 3, 2}, []float32{2, -1, 0.25, 1.5}},
		{"window 0 is none", SamplerParams{RepeatPenalty: 2, RepeatLastN: 0}, []int32{0, 3, 2}, []float32{2, -1, 0.5, 3}},
		{"window -1 is all", SamplerParams{RepeatPenalty: 2, RepeatLastN: -1}, []int32{0, 3, 2}, []float32{1, -1, 0.25, 1.5}},
		{"ids outside the vocabulary are ignored", SamplerParams{RepeatPenalty: 2, RepeatLastN: 64}, []int32{-1, 4, 1000, 3}, []float32{2, -1, 0.5, 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newSampler(tt.p).penalize(logits, tt.history)
			if !slices.Equal(got, tt.want) {
				t.Errorf("penalize = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTopKSelection checks the heap selection against a full sort on a large vocabulary with ties.
func TestTopKSelection(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	l := make([]float32, 5000)
	for i := range l {
		l[i] = float32(rng.IntN(200)) / 10 // many ties
	}
	ids := make([]int32, len(l))
	for i := range ids {
		ids[i] = int32(i)
	}
	sort.SliceStable(ids, func(a, b int) bool { return l[ids[a]] > l[ids[b]] })
	for _, k := range []int{1, 2, 7, 40, 999, 4999} {
		got := topK(nil, l, k)
		gotIDs := make([]int32, len(got))
		for i, c := range got {
			gotIDs[i] = c.id
		}
		slices.Sort(gotIDs)
		want := slices.Clone(ids[:k])
		slices.Sort(want)
		if !slices.Equal(gotIDs, want) {
			t.Errorf("top-%d selected %v..., want %v...", k, gotIDs[:min(k, 10)], want[:min(k, 10)])
		}
	}
}

// TestNucleusMatchesFullSort checks the floor-based partial sort against sorting everything, on
// peaked, flat and long-tailed distributions over a Llama-3-sized vocabulary.
func TestNucleusMatchesFullSort(t *testing.T) {
	const vocab = 128256
	rng := rand.New(rand.NewPCG(11, 11))
	shapes := []struct {
		name  string
		shape func(i int) float64
	}{
		{"peaked", func(int) float64 { return math.Exp(rng.NormFloat64() * 4) }},
		{"flat", func(int) float64 { return 1 }},
		{"long tail", func(i int) float64 { return 1 / float64(i+1) }},
		{"one dominant", func(i int) float64 {
			if i == 77 {
				return 1
			}
			return 1e-9 * rng.Float64()
		}},
	}
	for _, sh := range shapes {
		cands := make([]candidate, vocab)
		var sum float64
		for i := range cands {
			cands[i] = candidate{id: int32(i), p: sh.shape(i)}
			sum += cands[i].p
		}
		ref := slices.Clone(cands)
		slices.SortFunc(ref, func(a, b candidate) int {
			if c := cmp.Compare(b.p, a.p); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		for _, topP := range []float64{0.1, 0.5, 0.95, 0.999} {
			var cum float64
			n := len(ref)
			for i, c := range ref {
				cum += c.p
				if cum >= topP*sum {
					n = i + 1
					break
				}
			}
			got := nucleus(slices.Clone(cands), topP*sum)
			if len(got) != n {
				t.Errorf("%s, top-p %v: kept %d tokens, want %d", sh.name, topP, len(got), n)
				continue
			}
			for i := range got {
				if got[i].id != ref[i].id {
					t.Errorf("%s, top-p %v: token %d is id %d, want %d", sh.name, topP, i, got[i].id, ref[i].id)
					break
				}
			}
		}
	}
}

func TestExpNeg(t *testing.T) {
	for x := -31.0; x <= 0; x += 0.0007 {
		if e := math.Abs(expNeg(x)/math.Exp(x) - 1); e > 1e-8 {
			t.Fatalf("expNeg(%v) = %v, math.Exp = %v: relative error %.2g", x, expNeg(x), math.Exp(x), e)
		}
	}
	if expNeg(0) != 1 {
		t.Errorf("expNeg(0) = %v, want 1", expNeg(0))
	}
}

func TestSamplerParamsValidate(t *testing.T) {
	nan := float32(math.NaN())
	ok := DefaultSamplerParams()
	tests := []struct {
		name    string
		edit    func(p *SamplerParams)
		wantErr string // "" for valid
	}{
		{"defaults", func(*SamplerParams) {}, ""},
		{"greedy", func(p *SamplerParams) { p.Temperature = 0 }, ""},
		{"zero value", func(p *SamplerParams) { *p = SamplerParams{} }, ""},
		{"top-p 1", func(p *SamplerParams) { p.TopP = 1 }, ""},
		{"last-n all", func(p *SamplerParams) { p.RepeatLastN = -1 }, ""},
		{"negative penalties", func(p *SamplerParams) { p.PresencePenalty, p.FrequencyPenalty = -2, -2 }, ""},
		{"negative temperature", func(p *SamplerParams) { p.Temperature = -0.1 }, "temperature"},
		{"NaN temperature", func(p *SamplerParams) { p.Temperature = nan }, "temperature"},
		{"negative top-k", func(p *SamplerParams) { p.TopK = -1 }, "top_k"},
		{"top-p above 1", func(p *SamplerParams) { p.TopP = 1.01 }, "top_p"},
		{"negative top-p", func(p *SamplerParams) { p.TopP = -0.5 }, "top_p"},
		{"min-p above 1", func(p *SamplerParams) { p.MinP = 2 }, "min_p"},
		{"negative repeat penalty", func(p *SamplerParams) { p.RepeatPenalty = -1 }, "repeat_penalty"},
		{"infinite presence", func(p *SamplerParams) { p.PresencePenalty = float32(math.Inf(1)) }, "presence_penalty"},
		{"NaN frequency", func(p *SamplerParams) { p.FrequencyPenalty = nan }, "frequency_penalty"},
		{"last-n below -1", func(p *SamplerParams) { p.RepeatLastN = -2 }, "repeat_last_n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			err := p.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultSamplerParams(t *testing.T) {
	p := DefaultSamplerParams()
	if p.Temperature != 0.6 || p.TopP != 0.95 || p.TopK != 0 || p.MinP != 0 || p.RepeatPenalty != 1 ||
		p.PresencePenalty != 0 || p.FrequencyPenalty != 0 || p.RepeatLastN != 64 {
		t.Errorf("DefaultSamplerParams() = %+v, want SmolLM3's card: T 0.6, top-p 0.95, the rest off", p)
	}
}

// benchLogits are logits shaped like a language model's: most of the vocabulary far below a few
// plausible tokens.
func benchLogits() []float32 {
	rng := rand.New(rand.NewPCG(5, 5))
	l := make([]float32, 128256)
	for i := range l {
		l[i] = float32(rng.NormFloat64()*2.5 - 5)
	}
	for i := range 20 {
		l[rng.IntN(len(l))] = float32(12 - i/2)
	}
	return l
}

func BenchmarkSample(b *testing.B) {
	l := benchLogits()
	history := make([]int32, 512)
	for i := range history {
		history[i] = int32(i * 37 % len(l))
	}
	for _, bc := range []struct {
		name string
		p    SamplerParams
	}{
		{"greedy", SamplerParams{}},
		{"defaults", DefaultSamplerParams()},
		{"topk40-topp0.95-penalties", SamplerParams{Temperature: 0.7, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, RepeatLastN: 64}},
		{"minp0.05", SamplerParams{Temperature: 1, MinP: 0.05}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSampler(bc.p)
			for b.Loop() {
				s.Sample(l, history)
			}
		})
	}
}
