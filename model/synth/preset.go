package synth

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"smolchat/model"
	"smolchat/model/quant"
)

// Preset is the shape of a model to synthesize: a smollm3 (NoPE on every fourth layer, which llama.cpp
// derives from the architecture name, not from a key), llama or qwen3 architecture with GQA, and the
// family's extras (QK-norm, Llama 3's rope_freqs, an untied output).
type Preset struct {
	Name    string
	Arch    string // general.architecture
	Dim     int    // embedding length
	Layers  int
	Heads   int
	KVHeads int
	FF      int // feed-forward length
	Context int
	Vocab   int

	RopeBase float32
	RMSEps   float32

	// KeyLength is the head width when it is not Dim/Heads (Qwen3's attention.key_length); 0 otherwise.
	KeyLength int
	// QKNorm adds attn_q_norm and attn_k_norm (Qwen3).
	QKNorm bool
	// Llama3Rope writes rope_freqs.weight, Llama 3's frequency factors as its converter computes them
	// (factor 32, low 1, high 4, original context 8192: Llama 3.2's rope_scaling).
	Llama3Rope bool
	// Untied writes an output.weight (Q6_K) instead of tying the head to the embeddings.
	Untied bool
	// Pre is tokenizer.ggml.pre; Template the tokenizer.chat_template.
	Pre, Template string

	// Direct fills the quantized tensors with random valid blocks (scales and quants drawn at random)
	// instead of quantizing f32 weights. Inference speed does not depend on the values, and quantizing
	// three billion weights with the careful K-quant search takes minutes, so the 3B preset does this.
	Direct bool
}

// HeadDim is KeyLength, or Dim / Heads.
func (p Preset) HeadDim() int {
	if p.KeyLength > 0 {
		return p.KeyLength
	}
	return p.Dim / p.Heads
}

var presets = []Preset{
	{
		// The released SmolLM3-3B (spec §1, §2.2).
		Name: "smollm3-3b", Arch: "smollm3", Pre: "smaug-bpe", Template: ChatTemplate, Dim: 2048, Layers: 36, Heads: 16, KVHeads: 4, FF: 11008, Context: 65536,
		Vocab: 128256, RopeBase: 5e6, RMSEps: 1e-6, Direct: true,
	},
	{
		// Small enough to write in a second and run anywhere, yet it exercises what the 3B model does:
		// GQA 4:1, a NoPE layer (3), tied Q6_K embeddings over the full vocabulary, and both Q4_K and
		// Q6_K for attn_v/ffn_down by the Q4_K_M rule (layers 2 and 3 of 4).
		Name: "smollm3-tiny", Arch: "smollm3", Pre: "smaug-bpe", Template: ChatTemplate, Dim: 256, Layers: 4, Heads: 4,
		KVHeads: 1, FF: 768, Context: 4096, Vocab: 128256, RopeBase: 5e6, RMSEps: 1e-6,
	},
	{
		// Qwen3 dense as llama.cpp's llm_build_qwen3 runs it: QK-norm, NEOX RoPE at base 1e6, heads wider
		// than dim/heads (key_length 128, as Qwen3-0.6B's 16×128 over 1024), GQA 2:1, an untied head,
		// the qwen2 pre-tokenizer and Qwen3's chat template (enable_thinking, <think>).
		Name: "qwen3-tiny", Arch: "qwen3", Pre: "qwen2", Template: Qwen3Template, Dim: 256, Layers: 4, Heads: 4,
		KVHeads: 2, KeyLength: 128, FF: 768, Context: 4096, Vocab: 128256, RopeBase: 1e6, RMSEps: 1e-6,
		QKNorm: true, Untied: true,
	},
	{
		// Llama 3.2 as llama.cpp's llm_build_llama runs it: rope_freqs.weight (Llama 3's frequency
		// factors, factor 32 over an original 8192 positions) at base 500000, head width 64 (as the
		// 1B/3B models), GQA 2:1, a tied output, the llama-bpe pre-tokenizer (which adds BOS). No chat
		// template: a base model, rendered raw.
		Name: "llama3-tiny", Arch: "llama", Pre: "llama-bpe", Dim: 256, Layers: 4, Heads: 4, KVHeads: 2, FF: 768,
		Context: 4096, Vocab: 128256, RopeBase: 500000, RMSEps: 1e-5, Llama3Rope: true,
	},
	// The released shapes, with random valid blocks (Direct) as smollm3-3b, for benchmarks.
	{
		Name: "llama3.2-1b", Arch: "llama", Pre: "llama-bpe", Dim: 2048, Layers: 16, Heads: 32, KVHeads: 8, FF: 8192,
		Context: 131072, Vocab: 128256, RopeBase: 500000, RMSEps: 1e-5, Llama3Rope: true, Direct: true,
	},
	{
		Name: "llama3.2-3b", Arch: "llama", Pre: "llama-bpe", Dim: 3072, Layers: 28, Heads: 24, KVHeads: 8, FF: 8192,
		Context: 131072, Vocab: 128256, RopeBase: 500000, RMSEps: 1e-5, Llama3Rope: true, Direct: true,
	},
	{
		Name: "qwen3-0.6b", Arch: "qwen3", Pre: "qwen2", Template: Qwen3Template, Dim: 1024, Layers: 28, Heads: 16,
		KVHeads: 8, KeyLength: 128, FF: 3072, Context: 40960, Vocab: 151936, RopeBase: 1e6, RMSEps: 1e-6, QKNorm: true,
		Direct: true,
	},
}

// Presets lists the presets by name.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// PresetNames is the preset names joined by "|", for usage text.
func PresetNames() string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.Name
	}
	return strings.Join(names, "|")
}

// PresetByName finds a preset.
func PresetByName(name string) (Preset, error) {
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("synth: unknown preset %q (want %s)", name, PresetNames())
}

// check rejects shapes the file format or the architecture cannot hold.
func (p Preset) check() error {
	switch {
	case p.Dim <= 0 || p.Layers <= 0 || p.Heads <= 0 || p.KVHeads <= 0 || p.FF <= 0 || p.Context <= 0:
		return fmt.Errorf("synth: preset %q: every size must be positive", p.Name)
	case p.Dim%p.Heads != 0 || p.Heads%p.KVHeads != 0:
		return fmt.Errorf("synth: preset %q: dim %d, heads %d and kv heads %d do not divide", p.Name, p.Dim, p.Heads, p.KVHeads)
	case p.Dim%quant.QK_K != 0 || p.FF%quant.QK_K != 0:
		return fmt.Errorf("synth: preset %q: dim %d and ff %d must be multiples of %d for K-quants", p.Name, p.Dim, p.FF, quant.QK_K)
	case !slices.Contains(model.Architectures, p.Arch):
		return fmt.Errorf("synth: preset %q: architecture %q (smolchat runs %s)", p.Name, p.Arch, strings.Join(model.Architectures, ", "))
	case p.Vocab <= maxSpecialID:
		return fmt.Errorf("synth: preset %q: vocab %d cannot hold SmolLM3's special tokens (ids up to %d)", p.Name, p.Vocab, maxSpecialID)
	}
	return nil
}

// useMoreBits is llama.cpp's Q4_K_M rule for which layers' attn_v and ffn_down get Q6_K (src/llama-quant.cpp):
// the first and last eighth of the layers and every third layer between them.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// role says how a tensor's values are drawn.
type role int

const (
	roleNorm       role = iota // RMSNorm gain: U(0.5, 1.5) × Std
	roleMatrix                 // zero-mean weights with standard deviation Std
	roleEmbeddings             // the token embeddings (also the tied output head)
	roleFixed                  // the values given (rope_freqs)
)

// llama3RopeFreqs are Llama 3's RoPE frequency divisors as convert_hf_to_gguf.py computes them from
// Llama 3.2's rope_scaling (factor 32, low_freq_factor 1, high_freq_factor 4, original context 8192): 1
// for wavelengths under 8192/4, 32 over 8192, smoothly between.
func llama3RopeFreqs(base float32, headDim int) []float32 {
	const factor, low, high, old = 32.0, 1.0, 4.0, 8192.0
	out := make([]float32, headDim/2)
	for i := range out {
		freq := 1 / math.Pow(float64(base), float64(2*i)/float64(headDim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < old/high:
			out[i] = 1
		case wavelen > old/low:
			out[i] = factor
		default:
			smooth := (old/wavelen - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	return out
}

// TensorSpec is one tensor of the planned file.
type TensorSpec struct {
	Name string
	Type quant.Type
	Dims []uint64 // ggml order: ne0 (the row length) first
	// Std is the target standard deviation of a matrix's weights, or the scale of a norm's gain.
	Std    float64
	role   role
	values []float32 // roleFixed
}

// Rows is the number of rows (1 for a vector).
func (t TensorSpec) Rows() int {
	if len(t.Dims) < 2 {
		return 1
	}
	return int(t.Dims[1])
}

// Cols is the row length, ne0.
func (t TensorSpec) Cols() int { return int(t.Dims[0]) }

// Bytes is the size of the tensor's data.
func (t TensorSpec) Bytes() int64 {
	rb, _ := t.Type.RowBytes(t.Cols()) // every planned row length is a whole number of blocks (check)
	return int64(rb) * int64(t.Rows())
}

// Weight scales. The residual stream starts as the token's embedding (std embedStd), and every sub-layer
// reads it through RMSNorm, so only ratios matter. The head is tied: a token's logit is its embedding
// dotted with the normed final state, so if that state were mostly the input embedding, the input token
// would win by about sqrt(dim) standard deviations and greedy decoding would repeat it forever. So the
// 2·Layers sub-layers together add variance dim/4 times the embedding's (each an equal share): the input
// token then keeps a share of about 2/sqrt(dim) of the final state and ranks about 2σ above the crowd,
// present but not dominant, at any depth. Attention scores get std about 4 (q and k of std ≈2 over
// head_dim, scaled by 1/sqrt(head_dim)), peaked but not one-hot. The output norm's gain is scaled so
// that the logits have std ≈ logitStd.
const (
	embedStd = 1.0
	logitStd = 4.0
	// attnMix and swigluRMS are the rough RMS of an attention output (a weighted mean of V rows of RMS ≈1)
	// and of silu(gate)·up for unit-variance inputs; dividing by them aims the sub-layer outputs.
	attnMix   = 0.7
	swigluRMS = 0.65
)

// Tensors is the planned tensor table in file order: token_embd, each block's tensors, output_norm.
// Types follow llama.cpp's Q4_K_M rules (spec §2.3): norms F32, token_embd Q6_K (it is the tied output),
// attn_v and ffn_down Q6_K on the useMoreBits layers, everything else Q4_K. There is no output.weight.
func (p Preset) Tensors() []TensorSpec {
	d, qd, kvd, ff := uint64(p.Dim), uint64(p.Heads*p.HeadDim()), uint64(p.KVHeads*p.HeadDim()), uint64(p.FF)
	sub := embedStd * math.Sqrt(float64(p.Dim)/4/float64(2*p.Layers)) // each sub-layer's output std
	in := 1 / math.Sqrt(float64(p.Dim))                               // unit-variance outputs from a normed input
	ts := []TensorSpec{{Name: "token_embd.weight", Type: quant.Q6_K, Dims: []uint64{d, uint64(p.Vocab)},
		Std: embedStd, role: roleEmbeddings}}
	for l := 0; l < p.Layers; l++ {
		more := quant.Q4_K
		if useMoreBits(l, p.Layers) {
			more = quant.Q6_K
		}
		pre := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			TensorSpec{Name: pre + "attn_norm.weight", Type: quant.F32, Dims: []uint64{d}, Std: 1, role: roleNorm},
			TensorSpec{Name: pre + "attn_q.weight", Type: quant.Q4_K, Dims: []uint64{d, qd}, Std: 2 * in, role: roleMatrix},
			TensorSpec{Name: pre + "attn_k.weight", Type: quant.Q4_K, Dims: []uint64{d, kvd}, Std: 2 * in, role: roleMatrix},
			TensorSpec{Name: pre + "attn_v.weight", Type: more, Dims: []uint64{d, kvd}, Std: in, role: roleMatrix},
			TensorSpec{Name: pre + "attn_output.weight", Type: quant.Q4_K, Dims: []uint64{qd, d},
				Std: sub / (attnMix * math.Sqrt(float64(qd))), role: roleMatrix},
			TensorSpec{Name: pre + "ffn_norm.weight", Type: quant.F32, Dims: []uint64{d}, Std: 1, role: roleNorm},
			TensorSpec{Name: pre + "ffn_gate.weight", Type: quant.Q4_K, Dims: []uint64{d, ff}, Std: in, role: roleMatrix},
			TensorSpec{Name: pre + "ffn_up.weight", Type: quant.Q4_K, Dims: []uint64{d, ff}, Std: in, role: roleMatrix},
			TensorSpec{Name: pre + "ffn_down.weight", Type: more, Dims: []uint64{ff, d},
				Std: sub / (swigluRMS * math.Sqrt(float64(ff))), role: roleMatrix},
		)
		if p.QKNorm {
			hd := uint64(p.HeadDim())
			ts = append(ts,
				TensorSpec{Name: pre + "attn_q_norm.weight", Type: quant.F32, Dims: []uint64{hd}, Std: 1, role: roleNorm},
				TensorSpec{Name: pre + "attn_k_norm.weight", Type: quant.F32, Dims: []uint64{hd}, Std: 1, role: roleNorm})
		}
	}
	if p.Llama3Rope {
		ts = append(ts, TensorSpec{Name: "rope_freqs.weight", Type: quant.F32, Dims: []uint64{uint64(p.HeadDim() / 2)},
			role: roleFixed, values: llama3RopeFreqs(p.RopeBase, p.HeadDim())})
	}
	if p.Untied {
		ts = append(ts, TensorSpec{Name: "output.weight", Type: quant.Q6_K, Dims: []uint64{d, uint64(p.Vocab)},
			Std: embedStd, role: roleMatrix})
	}
	// logits = embed · (normed h ⊙ gain): std ≈ embedStd · sqrt(dim) · rms(gain), and rms(U(0.5,1.5)) ≈ 1.04.
	ts = append(ts, TensorSpec{Name: "output_norm.weight", Type: quant.F32, Dims: []uint64{d},
		Std: logitStd / (embedStd * math.Sqrt(float64(p.Dim)) * 1.04), role: roleNorm})
	return ts
}
