// Package model reads a GGUF language model: its hyperparameters (Config), its weights as typed views
// into the mapped file (Weights), and the facts other packages need to run it. The sub-packages hold the
// pieces: gguf (the container), quant (element types), tokenizer, chat (prompt templates), hub (downloads).
package model

import (
	"fmt"
	"math"
	"strings"

	"smolchat/model/gguf"
)

// Architectures this project can run. "llama" covers stories260K, SmolLM2, Llama-3.2 and TinyLlama.
var Architectures = []string{"llama", "smollm3"}

// Config is a model's hyperparameters.
type Config struct {
	Arch     string
	Dim      int // embedding length
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int
	FF       int // feed-forward length
	Vocab    int
	Context  int // the model's trained context length
	RopeBase float32
	RopeDim  int // dims rotated per head, from the front (NORM pairs)
	RMSEps   float32
	// TiedOutput is true when there is no output.weight: logits use token_embd.
	TiedOutput bool
	// NoRope[l] is true on layers that skip RoPE (smollm3's NoPE layers: (l+1)%4 == 0).
	NoRope []bool
}

// ConfigFromGGUF reads and checks the hyperparameters of f.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	var c Config
	arch, ok := f.String("general.architecture")
	if !ok {
		return c, fmt.Errorf("model %s: no general.architecture key (supported: %s)", f.Path, strings.Join(Architectures, ", "))
	}
	supported := false
	for _, a := range Architectures {
		supported = supported || a == arch
	}
	if !supported {
		return c, fmt.Errorf("model %s: architecture %q is not supported (supported: %s)", f.Path, arch, strings.Join(Architectures, ", "))
	}
	c.Arch = arch
	var errs []string
	req := func(key string) int {
		v, ok := f.Uint(arch + "." + key)
		if !ok || v == 0 || v > math.MaxInt32 {
			errs = append(errs, arch+"."+key)
			return 0
		}
		return int(v)
	}
	opt := func(key string, def int) int {
		if v, ok := f.Uint(arch + "." + key); ok && v > 0 && v <= math.MaxInt32 {
			return int(v)
		}
		return def
	}
	c.Dim = req("embedding_length")
	c.Layers = req("block_count")
	c.Heads = req("attention.head_count")
	c.FF = req("feed_forward_length")
	c.Context = req("context_length")
	if len(errs) > 0 {
		return c, fmt.Errorf("model %s: missing or invalid required keys: %s", f.Path, strings.Join(errs, ", "))
	}
	c.KVHeads = opt("attention.head_count_kv", c.Heads)
	if c.Dim%c.Heads != 0 {
		return c, fmt.Errorf("model %s: embedding_length %d is not a multiple of head_count %d", f.Path, c.Dim, c.Heads)
	}
	c.HeadDim = opt("attention.key_length", c.Dim/c.Heads)
	if c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("model %s: head_count %d is not a multiple of head_count_kv %d", f.Path, c.Heads, c.KVHeads)
	}
	c.RopeDim = opt("rope.dimension_count", c.HeadDim)
	if c.RopeDim > c.HeadDim || c.RopeDim%2 != 0 {
		return c, fmt.Errorf("model %s: rope.dimension_count %d must be even and at most head_dim %d", f.Path, c.RopeDim, c.HeadDim)
	}
	c.RopeBase = 10000
	if v, ok := f.Float(arch + ".rope.freq_base"); ok && v > 0 {
		c.RopeBase = float32(v)
	}
	c.RMSEps = 1e-5
	if v, ok := f.Float(arch + ".attention.layer_norm_rms_epsilon"); ok && v > 0 {
		c.RMSEps = float32(v)
	}
	if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		c.Vocab = len(toks)
	}
	c.Vocab = opt("vocab_size", c.Vocab)
	if t := f.Tensor("token_embd.weight"); t != nil && len(t.Dims) == 2 {
		c.Vocab = int(t.Dims[1]) // the embedding's row count is what the weights hold
	}
	if c.Vocab == 0 {
		return c, fmt.Errorf("model %s: cannot tell the vocabulary size (no tokenizer.ggml.tokens, vocab_size or token_embd.weight)", f.Path)
	}
	c.TiedOutput = f.Tensor("output.weight") == nil
	c.NoRope = make([]bool, c.Layers)
	if arch == "smollm3" {
		// llama.cpp hard-codes n_no_rope_layer_step = 4 for smollm3; the file has no key for it (spec §1.1).
		for l := range c.NoRope {
			c.NoRope[l] = (l+1)%4 == 0
		}
	}
	return c, nil
}

// KVDim is the width of one layer's K (or V) row: KVHeads × HeadDim.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// QDim is the width of the attention's query: Heads × HeadDim.
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// fileTypes maps general.file_type (llama_ftype) to its usual name.
var fileTypes = map[uint64]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
	18: "Q6_K", 32: "BF16"}

// FileTypeName names a file's quantization from general.file_type, or from its most common weight type.
func FileTypeName(f *gguf.File) string {
	if v, ok := f.Uint("general.file_type"); ok {
		if n, ok := fileTypes[v]; ok {
			return n
		}
	}
	for _, tc := range f.TypeCounts() {
		if tc.Type != 0 || len(f.TypeCounts()) == 1 { // skip F32 norms unless everything is F32
			return tc.Type.String()
		}
	}
	return "unknown"
}
