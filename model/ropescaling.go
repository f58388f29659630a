package model

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"smolchat/model/gguf"
)

// ropeScalingTypes are the values llama.cpp accepts for {arch}.rope.scaling.type.
var ropeScalingTypes = []string{"none", "linear", "yarn", "longrope"}

// noRopeScaling is the remedy for a file that scales RoPE.
const noRopeScaling = "RoPE scaling is not supported yet, and running the model with unscaled RoPE would give wrong answers " +
	"(use a model without RoPE scaling: SmolLM3, or a Llama 2- or TinyLlama-style llama file)"

// checkRopeScaling refuses RoPE scaling, which smolchat does not implement. As in llama.cpp, the scaling is
// a no-op when the type is "none" or the factor is 1 (or 0, or absent); a factor without a type is linear
// scaling. The keys that only shape a scaling (original_context_length, finetuned) are then inert; an
// attention factor other than 1 and the YaRN keys are refused whatever the factor.
func checkRopeScaling(f *gguf.File, arch string) error {
	p := arch + ".rope."
	typeKey, typ := p+"scaling.type", "linear"
	if kv, ok := f.Get(typeKey); ok {
		s, isString := kv.Value.(string)
		if !isString || !slices.Contains(ropeScalingTypes, s) {
			return fmt.Errorf("model %s: %s is not a RoPE scaling type, which llama.cpp knows as %s %s",
				f.Path, showKV(f, typeKey), strings.Join(ropeScalingTypes, ", "), badFile)
		}
		typ = s
	}
	factorKey := p + "scaling.factor"
	if _, ok := f.Get(factorKey); !ok {
		factorKey = p + "scale_linear" // the older name
	}
	factor := 1.0
	if _, ok := f.Get(factorKey); ok {
		v, isNumber := f.Float(factorKey)
		if !isNumber || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("model %s: %s, want a finite number of at least 0 %s", f.Path, showKV(f, factorKey), badFile)
		}
		if v != 0 { // llama.cpp reads 0 as no scaling
			factor = v
		}
	}
	if typ != "none" && factor != 1 {
		what := showKV(f, factorKey) + " (linear: no " + typeKey + ")"
		if _, ok := f.Get(typeKey); ok {
			what = showKV(f, typeKey) + " with " + showKV(f, factorKey)
		}
		return fmt.Errorf("model %s: %s: %s", f.Path, what, noRopeScaling)
	}
	attnKey := p + "scaling.attn_factor"
	if _, ok := f.Get(attnKey); ok {
		if v, isNumber := f.Float(attnKey); !isNumber || v != 1 {
			return fmt.Errorf("model %s: %s: %s", f.Path, showKV(f, attnKey), noRopeScaling)
		}
	}
	for _, kv := range f.KVs {
		if strings.HasPrefix(kv.Key, p+"scaling.yarn_") {
			return fmt.Errorf("model %s: %s: %s", f.Path, showKV(f, kv.Key), noRopeScaling)
		}
	}
	return nil
}
