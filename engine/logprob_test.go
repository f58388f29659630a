package engine

import (
	"context"
	"math"
	"testing"
)

func TestLogprobsOf(t *testing.T) {
	inf := float32(math.Inf(-1))
	piece := func(id int32) []byte { return []byte{byte('a' + id)} }
	tests := []struct {
		name   string
		logits []float32
		id     int32
		temp   float32
		top    int
		want   float64   // logprob of id
		topIDs []int32   // expected alternatives, in order
		topLP  []float64 // and their logprobs
	}{
		{"uniform", []float32{1, 1, 1, 1}, 2, 1, 0, math.Log(0.25), nil, nil},
		{"greedy counts as temperature 1", []float32{0, float32(math.Log(3))}, 1, 0, 2, math.Log(0.75),
			[]int32{1, 0}, []float64{math.Log(0.75), math.Log(0.25)}},
		{"temperature 2 halves the logits", []float32{0, float32(2 * math.Log(3))}, 0, 2, 1, math.Log(0.25),
			[]int32{1}, []float64{math.Log(0.75)}},
		{"masked token", []float32{inf, 0, 0}, 0, 1, 3, math.Inf(-1),
			[]int32{1, 2, 0}, []float64{math.Log(0.5), math.Log(0.5), math.Inf(-1)}},
		{"top beyond the vocabulary", []float32{2, 2}, 1, 1, 20, math.Log(0.5), []int32{0, 1}, []float64{math.Log(0.5), math.Log(0.5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := logprobsOf(tt.logits, tt.id, tt.temp, tt.top, piece)
			near := func(a float32, b float64) bool {
				return math.IsInf(b, -1) && math.IsInf(float64(a), -1) || math.Abs(float64(a)-b) < 1e-6
			}
			if got.Token != tt.id || string(got.Bytes) != string(piece(tt.id)) || !near(got.Logprob, tt.want) {
				t.Errorf("got %+v, want token %d logprob %v", got, tt.id, tt.want)
			}
			if len(got.Top) != len(tt.topIDs) {
				t.Fatalf("top %+v, want ids %v", got.Top, tt.topIDs)
			}
			for i, a := range got.Top {
				if a.Token != tt.topIDs[i] || !near(a.Logprob, tt.topLP[i]) || string(a.Bytes) != string(piece(a.Token)) {
					t.Errorf("top[%d] = %+v, want %d at %v", i, a, tt.topIDs[i], tt.topLP[i])
				}
			}
		})
	}
}

// TestGenerateLogprobs checks that every generated token gets its log probability, in the Result and
// in its Delta, computed from the logits as the sampler saw them (logit_bias included).
func TestGenerateLogprobs(t *testing.T) {
	tok := testTokenizer(t)
	hello, world, bang := id(t, tok, "▁Hello"), id(t, tok, "▁world"), id(t, tok, "!")
	prompt := []int32{1, hello}
	v := float64(tok.VocabSize())
	// The script's rows put 10 on one token and 0 on the rest.
	for _, tt := range []struct {
		name string
		p    GenParams
		want float64
	}{
		{"greedy", GenParams{Logprobs: true, TopLogprobs: 2}, 10 - math.Log(math.Exp(10)+v-1)},
		{"temperature 2", GenParams{SamplerParams: SamplerParams{Temperature: 2, Seed: 1}, Logprobs: true, TopLogprobs: 2},
			5 - math.Log(math.Exp(5)+v-1)},
		{"bias", GenParams{SamplerParams: SamplerParams{LogitBias: map[int32]float32{0: 10}}, Logprobs: true, TopLogprobs: 2},
			10 - math.Log(2*math.Exp(10)+v-2)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newScripted(t, prompt, []int32{world, bang})
			tt.p.MaxTokens = 2
			var streamed []*TokenLogprob
			res, err := e.Generate(context.Background(), prompt, tt.p, false, func(d Delta) error {
				if d.Token >= 0 {
					streamed = append(streamed, d.Logprob)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Logprobs) != len(res.Tokens) || len(streamed) != len(res.Tokens) {
				t.Fatalf("%d tokens, %d logprobs, %d streamed", len(res.Tokens), len(res.Logprobs), len(streamed))
			}
			for i, lp := range res.Logprobs {
				if streamed[i] == nil || streamed[i].Token != lp.Token || lp.Token != res.Tokens[i] {
					t.Errorf("token %d: result %+v, streamed %+v", i, lp, streamed[i])
				}
				want := tt.want
				if scripted := []int32{world, bang}[i]; lp.Token != scripted && tt.p.LogitBias[lp.Token] == 0 {
					want -= 5 // a token off the script (drawn at temperature 2) has logit 0, not 10, halved
				}
				if math.Abs(float64(lp.Logprob)-want) > 1e-4 {
					t.Errorf("token %d logprob %v, want %v", i, lp.Logprob, want)
				}
				if len(lp.Top) != 2 {
					t.Errorf("token %d: %d alternatives, want 2", i, len(lp.Top))
				}
			}
		})
	}
	e, _ := newScripted(t, prompt, []int32{world})
	if _, err := e.Generate(context.Background(), prompt, GenParams{Logprobs: true, TopLogprobs: 21}, false, nil); err == nil {
		t.Error("top logprobs 21 accepted")
	}
}
