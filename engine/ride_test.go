package engine

import (
	"testing"

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
