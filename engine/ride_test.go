package engine

import (
	"math"
	"testing"
	"time"

	"smolchat/model"
	"smolchat/model/gguf"
)

// TestLogitsShare checks the output projection's share of the weights a decode step reads, with tied
// and separate embeddings.
func TestLogitsShare(t *testing.T) {
	tensor := func(name string, size int) *gguf.TensorInfo { return &gguf.TensorInfo{Name: name, Size: uint64(size)} }
	layers, embed, output := tensor("blk.0.ffn_up.weight", 700), tensor("token_embd.weight", 100), tensor("output.weight", 300)
	for _, c := range []struct {
		name string
		m    model.Model
		want float64
	}{
		{"tied", model.Model{File: &gguf.File{Tensors: []*gguf.TensorInfo{layers, embed}},
			Config:  model.Config{TiedOutput: true},
			Weights: model.Weights{Embed: model.Tensor{Data: make([]byte, 100)}, Output: model.Tensor{Data: make([]byte, 100)}}}, 0.125},
		{"separate", model.Model{File: &gguf.File{Tensors: []*gguf.TensorInfo{layers, embed, output}},
			Weights: model.Weights{Embed: model.Tensor{Data: make([]byte, 100)}, Output: model.Tensor{Data: make([]byte, 300)}}}, 0.3},
		{"empty", model.Model{File: &gguf.File{}}, 0},
	} {
		if got := logitsShare(&c.m); got != c.want {
			t.Errorf("%s: logitsShare = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStepCosts feeds stepCosts steps and checks its averages: the second sample of each kind replaces
// the first (a cold start), later ones weigh a quarter, a step with a short chunk or no time is left
// out, and a ride costs its rows' share of a chunk step plus the logits.
func TestStepCosts(t *testing.T) {
	const chunk = 8
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	type step struct {
		decode, prompt int
		d              time.Duration
	}
	for _, c := range []struct {
		name        string
		steps       []step
		decode, row time.Duration
	}{
		{"decode steps", []step{{2, 0, ms(100)}, {2, 0, ms(40)}, {2, 0, ms(60)}}, ms(45), 0},
		{"chunk steps", []step{{0, 8, ms(80)}, {2, 8, ms(200)}, {2, 4, ms(60)}}, 0, ms(17.5)},
		{"short chunk left out", []step{{0, 8, ms(80)}, {0, 3, ms(90)}}, 0, ms(10)},
		{"no time", []step{{2, 0, 0}, {0, 8, 0}}, 0, 0},
	} {
		var got stepCosts
		for _, s := range c.steps {
			got.observe(s.decode, s.prompt, s.d, chunk)
		}
		if got.decode != c.decode || got.row != c.row {
			t.Errorf("%s: decode %v, row %v; want %v, %v", c.name, got.decode, got.row, c.decode, c.row)
		}
	}

	c := stepCosts{decode: ms(100), row: ms(10), logits: 0.125}
	for _, r := range []struct {
		costs stepCosts
		rows  int
		want  float64
	}{
		{c, 3, 0.425},
		{c, 0, 0},
		{stepCosts{decode: ms(100), logits: 0.125}, 3, 0}, // the row's cost unknown
	} {
		if got := r.costs.ride(r.rows); math.Abs(got-r.want) > 1e-12 {
			t.Errorf("ride(%d) with %+v = %v, want %v", r.rows, r.costs, got, r.want)
		}
	}
}
