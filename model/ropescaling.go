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

// ropeScaling reads a file's RoPE scaling into c as llama.cpp does (llama-model.cpp load_hparams): the type
// defaults to linear, the factor (rope.scaling.factor, or the older rope.scale_linear) to 1, and 0 means 1;
// a factor of 1 or type none scales nothing. YaRN's original context defaults to the trained context.
// LongRoPE and the yarn_* keys (which llama.cpp ignores for these families, using its defaults) are
// refused, naming the key.
func ropeScaling(f *gguf.File, arch string, c *Config) error {
	p := arch + "."
	c.RopeScaling, c.RopeFactor, c.RopeAttnFactor, c.RopeOrigContext = RopeScalingNone, 1, 1, c.Context
	typeKey, typ := p+"rope.scaling.type", "linear"
	if kv, ok := f.Get(typeKey); ok {
		s, isString := kv.Value.(string)
		if !isString || !slices.Contains(ropeScalingTypes, s) {
			return fmt.Errorf("model %s: %s is not a RoPE scaling type, which llama.cpp knows as %s %s",
				f.Path, showKV(f, typeKey), strings.Join(ropeScalingTypes, ", "), badFile)
		}
		typ = s
	}
	factorKey := p + "rope.scaling.factor"
	if _, ok := f.Get(factorKey); !ok {
		factorKey = p + "rope.scale_linear" // the older name
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
	attnKey := p + "rope.scaling.attn_factor"
	if _, ok := f.Get(attnKey); ok {
		v, isNumber := f.Float(attnKey)
		if !isNumber || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			return fmt.Errorf("model %s: %s, want a finite number above 0 %s", f.Path, showKV(f, attnKey), badFile)
		}
		c.RopeAttnFactor = float32(v)
	}
	k := keys{f: f, arch: arch}
	c.RopeOrigContext = k.count("rope.scaling.original_context_length", c.Context)
	if err := k.err(); err != nil {
		return err
	}
	for _, kv := range f.KVs {
		if strings.HasPrefix(kv.Key, p+"rope.scaling.yarn_") {
			return fmt.Errorf("model %s: %s: smolchat runs YaRN with llama.cpp's defaults for this architecture (beta_fast 32, beta_slow 1) "+
				"and reads no yarn_* key, so it refuses a file that sets one rather than ignore it", f.Path, showKV(f, kv.Key))
		}
	}
	if typ == "none" || factor == 1 {
		return nil
	}
	if typ == "longrope" {
		return fmt.Errorf("model %s: %s: LongRoPE scaling is not supported (smolchat implements linear and YaRN scaling), "+
			"and running the model with unscaled RoPE would give wrong answers", f.Path, showKV(f, typeKey))
	}
	if factor < 1 {
		return fmt.Errorf("model %s: %s: a RoPE scaling factor below 1 shrinks the context, which smolchat does not support", f.Path, showKV(f, factorKey))
	}
	c.RopeScaling, c.RopeFactor = RopeScaling(typ), float32(factor)
	c.Context = max(c.Context, int(float64(c.RopeOrigContext)*factor))
	return nil
}
