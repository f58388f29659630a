// Package craft writes tiny GGUF model files for tests of the loader: a valid model of a llama-style
// architecture (one layer, width 32, zero weights) with a 16-token SentencePiece vocabulary, which a test
// edits to plant one defect before writing it.
package craft

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// Sizes of the model Model writes.
const (
	Dim   = 32
	FF    = 64
	Vocab = 16
)

// File is a model file to write: metadata in order, then tensors in order.
type File struct {
	KVs     []gguf.KV
	Tensors []Tensor
}

// Tensor is a declared tensor; its data is written as zeros.
type Tensor struct {
	Name string
	Type quant.Type
	Dims []uint64 // ne0 first
}

// Model is a valid model of architecture arch (keys "{arch}.…"): 4 heads of width 8, 2 KV heads, context
// 128, tied output (no output.weight), matrices of type typ and f32 norms, and a SentencePiece vocabulary of Vocab tokens
// (<unk>, <s>, </s>, then "▁a"…).
func Model(arch string, typ quant.Type) *File {
	f := &File{}
	f.Set("general.architecture", arch)
	for _, kv := range []struct {
		key string
		v   uint32
	}{{"embedding_length", Dim}, {"block_count", 1}, {"attention.head_count", 4}, {"attention.head_count_kv", 2},
		{"feed_forward_length", FF}, {"context_length", 128}} {
		f.Set(arch+"."+kv.key, kv.v)
	}
	tokens, scores, types := []string{"<unk>", "<s>", "</s>"}, []float32{0, 0, 0}, []int32{2, 3, 3}
	for i := len(tokens); i < Vocab; i++ {
		tokens = append(tokens, "▁"+string(rune('a'+i)))
		scores = append(scores, float32(-i))
		types = append(types, 1)
	}
	f.Set("tokenizer.ggml.model", "llama")
	f.Set("tokenizer.ggml.tokens", tokens)
	f.Set("tokenizer.ggml.scores", scores)
	f.Set("tokenizer.ggml.token_type", types)
	f.Set("tokenizer.ggml.bos_token_id", uint32(1))
	f.Set("tokenizer.ggml.eos_token_id", uint32(2))

	f.AddTensor("token_embd.weight", typ, Dim, Vocab)
	f.AddTensor("output_norm.weight", quant.F32, Dim)
	for _, t := range []struct {
		name string
		typ  quant.Type
		dims []uint64
	}{{"attn_norm", quant.F32, []uint64{Dim}}, {"attn_q", typ, []uint64{Dim, Dim}}, {"attn_k", typ, []uint64{Dim, Dim / 2}},
		{"attn_v", typ, []uint64{Dim, Dim / 2}}, {"attn_output", typ, []uint64{Dim, Dim}}, {"ffn_norm", quant.F32, []uint64{Dim}},
		{"ffn_gate", typ, []uint64{Dim, FF}}, {"ffn_up", typ, []uint64{Dim, FF}}, {"ffn_down", typ, []uint64{FF, Dim}}} {
		f.AddTensor("blk.0."+t.name+".weight", t.typ, t.dims...)
	}
	return f
}

// Set sets a metadata value (see gguf.Writer.AddKV for the Go types), replacing the key's value in place.
func (f *File) Set(key string, value any) *File {
	if i := slices.IndexFunc(f.KVs, func(kv gguf.KV) bool { return kv.Key == key }); i >= 0 {
		f.KVs[i].Value = value
	} else {
		f.KVs = append(f.KVs, gguf.KV{Key: key, Value: value})
	}
	return f
}

// Delete removes a metadata key.
func (f *File) Delete(key string) *File {
	f.KVs = slices.DeleteFunc(f.KVs, func(kv gguf.KV) bool { return kv.Key == key })
	return f
}

// AddTensor declares a tensor after the others.
func (f *File) AddTensor(name string, typ quant.Type, dims ...uint64) *File {
	f.Tensors = append(f.Tensors, Tensor{name, typ, dims})
	return f
}

// RemoveTensor removes a tensor.
func (f *File) RemoveTensor(name string) *File {
	f.Tensors = slices.DeleteFunc(f.Tensors, func(t Tensor) bool { return t.Name == name })
	return f
}

// Bytes is the GGUF file.
func (f *File) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	for _, kv := range f.KVs {
		w.AddKV(kv.Key, kv.Value)
	}
	sizes := make([]int, len(f.Tensors))
	for i, t := range f.Tensors {
		if err := w.AddTensor(t.Name, t.Type, t.Dims); err != nil {
			return nil, err
		}
		rb, err := t.Type.RowBytes(int(t.Dims[0]))
		if err != nil {
			return nil, err
		}
		sizes[i] = rb
		for _, d := range t.Dims[1:] {
			sizes[i] *= int(d)
		}
	}
	if err := w.WriteHeader(); err != nil {
		return nil, err
	}
	for i, t := range f.Tensors {
		if err := w.WriteTensor(t.Name, make([]byte, sizes[i])); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes the file into a temporary directory of t as name and returns its path.
func (f *File) Write(t testing.TB, name string) string {
	t.Helper()
	data, err := f.Bytes()
	if err != nil {
		t.Fatalf("craft %s: %v", name, err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(fmt.Errorf("craft: %w", err))
	}
	return p
}
