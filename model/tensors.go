package model

import (
	"fmt"
	"strings"
)

// plannedTensor is a tensor the forward pass reads: where it goes, its name and its shape.
type plannedTensor struct {
	dst        *Tensor
	name       string
	rows, cols int
}

// tensorPlan lists every tensor a model of config c has, each with the field of w it fills (rope_freqs
// when the family reads it and the file has it: it is optional, as in llama.cpp). A file
// must hold exactly these: no other tensor is harmless. (llama.cpp's loader is as strict: it fails on a
// tensor it did not create, "wrong number of tensors".)
func tensorPlan(c Config, w *Weights, hasRopeFreqs bool) []plannedTensor {
	plan := []plannedTensor{
		{&w.Embed, "token_embd.weight", c.Vocab, c.Dim},
		{&w.OutputNorm, "output_norm.weight", 1, c.Dim},
	}
	if !c.TiedOutput {
		plan = append(plan, plannedTensor{&w.Output, "output.weight", c.Vocab, c.Dim})
	}
	if c.HasRopeFreqs && hasRopeFreqs {
		plan = append(plan, plannedTensor{&w.RopeFreqs, "rope_freqs.weight", 1, c.RopeDim / 2})
	}
	w.Layers = make([]Layer, c.Layers)
	for l := range w.Layers {
		L := &w.Layers[l]
		p := fmt.Sprintf("blk.%d.", l)
		plan = append(plan,
			plannedTensor{&L.AttnNorm, p + "attn_norm.weight", 1, c.Dim},
			plannedTensor{&L.Q, p + "attn_q.weight", c.QDim(), c.Dim},
			plannedTensor{&L.K, p + "attn_k.weight", c.KVDim(), c.Dim},
			plannedTensor{&L.V, p + "attn_v.weight", c.KVDim(), c.Dim},
			plannedTensor{&L.O, p + "attn_output.weight", c.Dim, c.QDim()},
			plannedTensor{&L.FFNNorm, p + "ffn_norm.weight", 1, c.Dim},
			plannedTensor{&L.Gate, p + "ffn_gate.weight", c.FF, c.Dim},
			plannedTensor{&L.Up, p + "ffn_up.weight", c.FF, c.Dim},
			plannedTensor{&L.Down, p + "ffn_down.weight", c.Dim, c.FF},
		)
		if c.QKNorm {
			plan = append(plan,
				plannedTensor{&L.QNorm, p + "attn_q_norm.weight", 1, c.HeadDim},
				plannedTensor{&L.KNorm, p + "attn_k_norm.weight", 1, c.HeadDim})
		}
	}
	return plan
}

// unknownTensor is the error for a tensor outside the plan: the file holds a feature the forward pass
// would silently skip.
func unknownTensor(path, arch, name string, plan []plannedTensor) error {
	if name == "rope_freqs.weight" {
		return fmt.Errorf("model %s: tensor rope_freqs.weight (Llama 3's RoPE frequency scaling) in a %s model: "+
			"only llama files may carry it (as in llama.cpp), and running without it would give wrong answers", path, arch)
	}
	what := "not one smolchat uses"
	switch {
	case strings.HasSuffix(name, ".bias"):
		what = "a bias, which smolchat's layers do not have"
	case strings.Contains(name, "_exps.") || strings.Contains(name, "ffn_gate_inp."):
		what = "a mixture of experts, which smolchat does not implement"
	case strings.HasSuffix(name, "attn_q_norm.weight") || strings.HasSuffix(name, "attn_k_norm.weight"):
		what = "a QK-norm weight, which this architecture does not have"
	}
	var global, layer []string
	for _, p := range plan {
		n := strings.TrimSuffix(p.name, ".weight")
		if rest, ok := strings.CutPrefix(n, "blk.0."); ok {
			layer = append(layer, rest)
		} else if !strings.HasPrefix(n, "blk.") {
			global = append(global, n)
		}
	}
	return fmt.Errorf("model %s: tensor %s is %s, and running without it would give wrong answers "+
		"(this %s model has only %s and, per layer, %s weights)", path, name, what, arch,
		strings.Join(global, ", "), strings.Join(layer, ", "))
}
