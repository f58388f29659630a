// Package model reads a GGUF language model: its hyperparameters (Config), its weights as typed views
// into the mapped file (Weights), and the facts other packages need to run it. The sub-packages hold the
// pieces: gguf (the container), quant (element types), tokenizer, chat (prompt templates), hub (downloads).
package model

import (
	"fmt"
	"strings"

	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// Config is a model's hyperparameters and the shape of its forward pass. Behaviour that varies by
// family is in the embedded Family and the fields after it, never decided by Arch, which is for display
// and for choosing a chat template.
type Config struct {
	Arch     string // general.architecture
	Dim      int    // embedding length
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int
	FF       int // feed-forward length
	Vocab    int
	Context  int // the positions the model can attend to: TrainedContext, stretched by RoPE scaling
	RopeBase float32
	RopeDim  int // dims rotated per head, from the front
	RMSEps   float32

	Family
	// TrainedContext is {arch}.context_length.
	TrainedContext int
	// RoPE scaling (rope.go): the type, the context stretch (1 without scaling), YaRN's original
	// context, rope.scaling.attn_factor (1 when absent), and Llama 3's per-pair frequency divisors
	// (rope_freqs.weight; nil when the file has none).
	RopeScaling     RopeScaling
	RopeFactor      float32
	RopeOrigContext int
	RopeAttnFactor  float32
	RopeFreqs       []float32
	// TiedOutput is true when there is no output.weight: logits use token_embd.
	TiedOutput bool
	// NoRope[l] is true on layers that skip RoPE (Family.NoRopeStep).
	NoRope []bool
}

// ConfigFromGGUF reads and checks the hyperparameters of f. A key that is present must hold a value
// smolchat can run: a bad value is refused with its key, never replaced by a default.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	var c Config
	arch, ok := f.String("general.architecture")
	if !ok {
		return c, fmt.Errorf("model %s: no general.architecture key (supported: %s)", f.Path, strings.Join(Architectures, ", "))
	}
	family, err := familyOf(f.Path, arch)
	if err != nil {
		return c, err
	}
	c.Arch, c.Family = arch, family
	k := keys{f: f, arch: arch}
	c.Dim = k.count("embedding_length", required)
	c.Layers = k.count("block_count", required)
	c.Heads = k.count("attention.head_count", required)
	c.FF = k.count("feed_forward_length", required)
	c.Context = k.count("context_length", required)
	c.RopeBase = float32(k.positive("rope.freq_base", 10000))
	c.RMSEps = float32(k.positive("attention.layer_norm_rms_epsilon", 1e-5))
	if err := k.err(); err != nil {
		return c, err
	}
	c.KVHeads = k.count("attention.head_count_kv", c.Heads)
	c.HeadDim = k.count("attention.key_length", c.Dim/c.Heads)
	valueDim := k.count("attention.value_length", c.HeadDim)
	c.RopeDim = k.count("rope.dimension_count", c.HeadDim)
	if err := k.err(); err != nil {
		return c, err
	}
	switch {
	case c.Dim%c.Heads != 0:
		return c, fmt.Errorf("model %s: %s is not a multiple of %s %s", f.Path, k.show("embedding_length"), k.show("attention.head_count"), badFile)
	case c.Heads%c.KVHeads != 0:
		return c, fmt.Errorf("model %s: %s is not a multiple of %s %s", f.Path, k.show("attention.head_count"), k.show("attention.head_count_kv"), badFile)
	case valueDim != c.HeadDim:
		return c, fmt.Errorf("model %s: %s differs from the key head width %d (smolchat supports only equal key and value head widths)", f.Path, k.show("attention.value_length"), c.HeadDim)
	case c.RopeDim > c.HeadDim || c.RopeDim%2 != 0:
		return c, fmt.Errorf("model %s: %s must be even and at most the head dimension %d %s", f.Path, k.show("rope.dimension_count"), c.HeadDim, badFile)
	}
	c.TrainedContext = c.Context
	if err := ropeScaling(f, arch, &c); err != nil {
		return c, err
	}
	if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		c.Vocab = len(toks)
	}
	c.Vocab = k.count("vocab_size", c.Vocab)
	if err := k.err(); err != nil {
		return c, err
	}
	if t := f.Tensor("token_embd.weight"); t != nil && len(t.Dims) == 2 {
		c.Vocab = int(t.Dims[1]) // the embedding's row count is what the weights hold
	}
	if c.Vocab == 0 {
		return c, fmt.Errorf("model %s: cannot tell the vocabulary size (no tokenizer.ggml.tokens, vocab_size or token_embd.weight)", f.Path)
	}
	c.TiedOutput = f.Tensor("output.weight") == nil
	c.NoRope = c.noRopeLayers(c.Layers)
	return c, nil
}

// Check reports a shape no backend can run: the checks the loader makes on a file's keys, again for
// configs put together by hand (tests, synthesized models), so that the backends need not repeat them.
func (c Config) Check() error {
	if c.Heads <= 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 || c.RopeDim > c.HeadDim || c.RopeDim%2 != 0 || len(c.NoRope) != c.Layers {
		return fmt.Errorf("inconsistent model config (heads %d, kv heads %d, head dim %d, rope dim %d, %d NoRope flags for %d layers)",
			c.Heads, c.KVHeads, c.HeadDim, c.RopeDim, len(c.NoRope), c.Layers)
	}
	return nil
}

// KVDim is the width of one layer's K (or V) row: KVHeads × HeadDim.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// QDim is the width of the attention's query: Heads × HeadDim.
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// FileTypeName names a file's quantization as llama-quantize does: general.file_type mapped to its
// name (Q4_K_M), else the weight type holding the most bytes (Q4_K), else "unknown".
func FileTypeName(f *gguf.File) string {
	if ft, ok := f.Uint("general.file_type"); ok {
		if name, ok := fileTypeNames[ft]; ok {
			return name
		}
	}
	bytes := map[quant.Type]uint64{}
	for _, t := range f.Tensors {
		bytes[t.Type] += t.Size
	}
	best, found := quant.Type(0), false
	for t, n := range bytes {
		if !found || n > bytes[best] || n == bytes[best] && t < best {
			best, found = t, true
		}
	}
	if !found {
		return "unknown"
	}
	return best.String()
}

// fileTypeNames maps llama.cpp's llama_ftype (general.file_type) to the names llama-quantize uses.
// Ids 4 to 6 and 33 to 35 were retired and are absent.
var fileTypeNames = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
	18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
	25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
	36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}
