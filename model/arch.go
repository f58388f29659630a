package model

import (
	"fmt"
	"slices"
	"strings"
)

// Family is what a model family's forward pass does beyond its hyperparameters: the facts llama.cpp
// spreads over its llm_build_* functions. The backends (cpu, gpu and gpu/ref) read these fields and never
// a family's name; families lists each family's values, and checkImplemented is the one place that
// refuses a value no backend implements.
type Family struct {
	Rope RopeStyle
	// NoRopeStep > 0 makes every NoRopeStep-th layer skip RoPE (SmolLM3's NoPE layers: 4); Config.NoRope
	// lists the layers.
	NoRopeStep int
	// HasRopeFreqs: the file may hold rope_freqs.weight, per-pair divisors of the RoPE frequencies (Llama 3's
	// frequency scaling, which its converter writes as a tensor; llama.cpp's llm_build_llama reads it).
	HasRopeFreqs bool
	QKNorm       bool          // RMS-normalize each query and key head before RoPE (Qwen3)
	AttnBias     bool          // the Q, K, V projections add a bias (Qwen2)
	FFNBias      bool          // the feed-forward projections add a bias
	Act          Activation    // the feed-forward: down(act(gate) · up)
	Norm         NormPlacement // where the RMS norms sit in a block
	EmbedScale   float32       // the token embeddings are multiplied by it (Gemma: √dim); 1 for most
	// ChatFormat is the chat format (a model/chat renderer's name) of the family's files that carry no
	// tokenizer.chat_template; "" renders raw text.
	ChatFormat string
}

// ChatFormat returns the chat format of architecture arch's files without a template (Family.ChatFormat).
func ChatFormat(arch string) string { return families[arch].ChatFormat }

// RopeStyle is how RoPE pairs the dimensions of a head it rotates.
type RopeStyle string

const (
	RopeNorm RopeStyle = "norm" // adjacent pairs (2i, 2i+1): llama.cpp's LLAMA_ROPE_TYPE_NORM
	RopeNeox RopeStyle = "neox" // half-split pairs (i, i+RopeDim/2): LLAMA_ROPE_TYPE_NEOX (Qwen, GPT-NeoX)
)

// RopeScaling is how a file (or --rope-scaling) stretches RoPE beyond the trained context: none, linear or
// YaRN (rope.go). ropeScaling refuses LongRoPE, naming the key.
type RopeScaling string

// RopeScalingNone rotates by the plain angles pos·base^(-2i/RopeDim).
const RopeScalingNone RopeScaling = "none"

// Activation is the feed-forward's gated activation.
type Activation string

// SiLUGLU is SwiGLU: down(silu(gate(x)) · up(x)).
const SiLUGLU Activation = "silu-glu"

// NormPlacement is where a block's RMS norms sit.
type NormPlacement string

// PreNorm normalizes the input of attention and of the feed-forward; the residual stream is not normed.
const PreNorm NormPlacement = "pre"

// families are the general.architecture values smolchat knows, with their forward pass. A family with a
// fact no backend implements is listed so that its files are refused naming the feature, not the name.
var families = map[string]Family{
	// Llama 2-style files (stories260K, TinyLlama) and Llama 3.x, whose files carry rope_freqs.weight.
	"llama": {Rope: RopeNorm, HasRopeFreqs: true, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1},
	// SmolLM3 is llama with NoPE layers; llama.cpp hard-codes n_no_rope_layer_step = 4 for it and the
	// file has no key for it (spec §1.1).
	// Files converted without the template still speak SmolLM3's format (the synthetic test file has none).
	"smollm3": {Rope: RopeNorm, NoRopeStep: 4, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1, ChatFormat: "smollm3"},
	// Qwen3 dense (llama.cpp's llm_build_qwen3): QK-norm before NEOX RoPE.
	"qwen3": {Rope: RopeNeox, QKNorm: true, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1},
}

// Architectures lists the families smolchat can run, sorted: those checkImplemented accepts.
var Architectures = func() []string {
	var names []string
	for name, f := range families {
		if f.unimplemented() == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}()

// unimplemented lists the facts of f that no backend implements.
func (f Family) unimplemented() []string {
	var missing []string
	add := func(cond bool, what string) {
		if cond {
			missing = append(missing, what)
		}
	}
	add(f.Rope != RopeNorm && f.Rope != RopeNeox, fmt.Sprintf("RoPE style %q (%q and %q pairs are implemented)", f.Rope, RopeNorm, RopeNeox))
	add(f.AttnBias, "attention biases")
	add(f.FFNBias, "feed-forward biases")
	add(f.Act != SiLUGLU, fmt.Sprintf("activation %q", f.Act))
	add(f.Norm != PreNorm, fmt.Sprintf("norm placement %q", f.Norm))
	add(f.EmbedScale != 1, fmt.Sprintf("embedding scale %g", f.EmbedScale))
	return missing
}

// familyOf returns the forward pass of architecture arch, refusing one that is unknown or needs a
// feature the backends do not implement (naming the feature).
func familyOf(path, arch string) (Family, error) {
	f, ok := families[arch]
	if !ok {
		return f, fmt.Errorf("model %s: architecture %q is not supported (supported: %s)", path, arch, strings.Join(Architectures, ", "))
	}
	return f, f.check(path, arch)
}

// check refuses a family with a fact no backend implements, naming each such fact.
func (f Family) check(path, arch string) error {
	if missing := f.unimplemented(); len(missing) > 0 {
		return fmt.Errorf("model %s: architecture %q needs %s, which smolchat does not implement yet (supported architectures: %s)",
			path, arch, strings.Join(missing, " and "), strings.Join(Architectures, ", "))
	}
	return nil
}

// noRopeLayers lists, for each of n layers, whether it skips RoPE.
func (f Family) noRopeLayers(n int) []bool {
	skip := make([]bool, n)
	for l := range skip {
		skip[l] = f.NoRopeStep > 0 && (l+1)%f.NoRopeStep == 0
	}
	return skip
}
