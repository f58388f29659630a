package model

import (
	"fmt"
	"math"
)

// RoPE: how the query and key heads are rotated. The angles are computed in one place, RopeAngles, which
// the CPU backend and the GPU backend's host side both call, the way ggml's CPU rope cache computes them
// (ggml-cpu/ops.cpp ggml_rope_cache_init and rope_yarn), so that both backends rotate by the same float32
// numbers as llama.cpp. gpu/ref computes them independently in float64.
//
// For pair i of a head (i < RopeDim/2) at position pos:
//
//	θ_extrap = pos · base^(−2i/RopeDim) / freq_factor[i]        (Llama 3: rope_freqs.weight; else 1)
//	θ_interp = θ_extrap / factor                                (linear and YaRN scaling; 1 without)
//	θ        = θ_interp                                         (none, linear)
//	θ        = θ_interp·(1−ramp_i) + θ_extrap·ramp_i            (YaRN: ramp_i is 1 for the fast pairs, 0 for the slow)
//	(cos, sin) = (cos θ, sin θ) · mscale,  mscale = attn_factor · (1 + 0.1·ln factor) for YaRN, attn_factor otherwise
//
// The YaRN ramp runs between the correction dims of llama.cpp's ggml_rope_yarn_corr_dims, from the
// original context and beta_fast = 32, beta_slow = 1.

// Rope scaling types (llama.cpp's {arch}.rope.scaling.type and --rope-scaling).
const (
	RopeScalingLinear RopeScaling = "linear" // every angle divided by the factor (position interpolation)
	RopeScalingYaRN   RopeScaling = "yarn"   // YaRN: interpolate slow pairs, keep fast ones, scale the magnitude
)

// YaRN's defaults in llama.cpp (llama-hparams.h); smolchat reads no key for them.
const (
	yarnBetaFast = 32
	yarnBetaSlow = 1
)

// RopeAngles writes the (cos, sin) of every rotated pair at position pos to cs: cs[2i] = cos θ_i,
// cs[2i+1] = sin θ_i, for i < RopeDim/2 (len(cs) ≥ RopeDim). The magnitude scaling of YaRN (and of
// rope.scaling.attn_factor) is folded into both, as ggml does.
func (c *Config) RopeAngles(pos int, cs []float32) {
	half := c.RopeDim / 2
	cs = cs[:2*half]
	freqScale := float32(1)
	if c.RopeScaling != RopeScalingNone && c.RopeFactor > 0 {
		freqScale = 1 / c.RopeFactor
	}
	mscale := c.ropeMScale(freqScale)
	yarn := c.RopeScaling == RopeScalingYaRN
	var lo, hi float32
	if yarn {
		lo, hi = yarnCorrDims(c.RopeDim, c.RopeOrigContext, c.RopeBase)
	}
	thetaScale := float32(math.Pow(float64(c.RopeBase), -2/float64(c.RopeDim)))
	theta := float32(pos)
	for i := range half {
		extrap := theta
		if c.RopeFreqs != nil {
			extrap = theta / c.RopeFreqs[i]
		}
		th := freqScale * extrap
		if yarn {
			mix := yarnRamp(lo, hi, i)
			th = th*(1-mix) + extrap*mix
		}
		s, co := math.Sincos(float64(th))
		cs[2*i], cs[2*i+1] = float32(co)*mscale, float32(s)*mscale
		theta *= thetaScale
	}
}

// ropeMScale is the factor cos and sin are multiplied by: llama.cpp's yarn_attn_factor (llama-context.cpp:
// get_mscale(factor)/(1 + 0.1·ln factor) for YaRN, times rope.scaling.attn_factor), then rope_yarn's
// (1 + 0.1·ln(1/freq_scale)) for YaRN. For a factor above 1 YaRN's two terms cancel to attn_factor ·
// (1 + 0.1·ln factor); they are computed as llama.cpp does, in float32, so that they round the same.
func (c *Config) ropeMScale(freqScale float32) float32 {
	attn := float32(1)
	if c.RopeAttnFactor > 0 {
		attn = c.RopeAttnFactor
	}
	if c.RopeScaling != RopeScalingYaRN {
		return attn
	}
	factor := 1 / freqScale
	m := float32(1)
	if factor > 1 {
		m = 0.1*logf(factor) + 1
	}
	m *= 1 / (1 + 0.1*logf(factor))
	m *= attn
	return m * (1 + 0.1*logf(1/freqScale))
}

func logf(x float32) float32 { return float32(math.Log(float64(x))) }

// yarnCorrDims is ggml_rope_yarn_corr_dims: the pair indices between which YaRN's ramp runs.
func yarnCorrDims(ropeDim, origCtx int, base float32) (lo, hi float32) {
	corr := func(beta float32) float32 {
		return float32(ropeDim) * logf(float32(origCtx)/(beta*2*math.Pi)) / (2 * logf(base))
	}
	lo = float32(math.Floor(float64(corr(yarnBetaFast))))
	hi = float32(math.Ceil(float64(corr(yarnBetaSlow))))
	return max(0, lo), min(float32(ropeDim-1), hi)
}

// yarnRamp is ggml's rope_yarn_ramp: 1 for pairs below lo (fast: extrapolated, unscaled), 0 above hi
// (slow: interpolated), linear between.
func yarnRamp(lo, hi float32, i int) float32 {
	y := (float32(i) - lo) / max(0.001, hi-lo)
	return 1 - min(1, max(0, y))
}

// RopeOptions override a file's RoPE scaling at load, as llama.cpp's --rope-scaling, --rope-scale and
// --yarn-orig-ctx do. Zero values keep the file's.
type RopeOptions struct {
	Scaling     RopeScaling // "" keeps the file's type
	Factor      float64     // the context stretch; 0 keeps the file's
	OrigContext int         // YaRN's original context; 0 keeps the file's (or its trained context)
}

// ParseRopeScaling reads a --rope-scaling value: none, linear or yarn ("" = the file's).
func ParseRopeScaling(s string) (RopeScaling, error) {
	switch RopeScaling(s) {
	case "", RopeScalingNone, RopeScalingLinear, RopeScalingYaRN:
		return RopeScaling(s), nil
	}
	return "", fmt.Errorf("RoPE scaling %q: want none, linear or yarn", s)
}

// ScaleRope applies o to the model's RoPE as llama.cpp does (llama-context.cpp): type none turns the
// scaling off; a factor or type given replaces the file's; with a scaling and a factor above 1 the model's
// context becomes the original context times the factor (llama.cpp's n_ctx_train for YaRN), so that the
// engine lets a context that long be asked for.
func (m *Model) ScaleRope(o RopeOptions) error {
	c := &m.Config
	if o.Factor < 0 || math.IsNaN(o.Factor) || math.IsInf(o.Factor, 0) {
		return fmt.Errorf("model %s: RoPE scale %g: want a finite factor of at least 1", m.Path, o.Factor)
	}
	if o.OrigContext < 0 {
		return fmt.Errorf("model %s: YaRN original context %d: want a positive count of positions", m.Path, o.OrigContext)
	}
	if o.Scaling == "" && o.Factor == 0 && o.OrigContext == 0 {
		return nil
	}
	if o.Scaling != "" {
		c.RopeScaling = o.Scaling
	}
	if o.Factor != 0 {
		c.RopeFactor = float32(o.Factor)
	}
	if o.OrigContext != 0 {
		c.RopeOrigContext = o.OrigContext
	}
	if c.RopeScaling == RopeScalingNone {
		c.RopeFactor = 1
		c.Context = c.TrainedContext
		return nil
	}
	if c.RopeFactor < 1 {
		return fmt.Errorf("model %s: RoPE scale %g: smolchat stretches the context only (a factor of at least 1)", m.Path, c.RopeFactor)
	}
	if c.RopeScaling == RopeScalingYaRN && c.RopeFactor == 1 {
		return fmt.Errorf("model %s: --rope-scaling yarn needs a factor above 1 (--rope-scale; 2 for %d positions of this model's %d)",
			m.Path, 2*c.RopeOrigContext, c.RopeOrigContext)
	}
	c.Context = max(c.TrainedContext, int(float64(c.RopeOrigContext)*float64(c.RopeFactor)))
	return nil
}
