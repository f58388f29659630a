// Package ref holds plain, slow CPU versions of the GPU kernels' math, accumulated in float64, against
// which the kernels are tested. They follow the model definitions literally (spec §1) and favour being
// obviously right over being fast.
package ref

import (
	"math"
	"sort"

	"smolchat/model"
)

// MatVec returns y[r] = sum_k w[r*k + kk] * x[kk] for m rows of k elements.
func MatVec(w []float32, m, k int, x []float32) []float32 {
	y := make([]float32, m)
	for r := range m {
		var s float64
		row := w[r*k : (r+1)*k]
		for i, v := range row {
			s += float64(v) * float64(x[i])
		}
		y[r] = float32(s)
	}
	return y
}

// QuantizeQ8x16 returns x as the integer mat-vec path sees it (shaders/q8.wgsl): each group of 16
// quantized to int8 with the scale amax/127, rounded to nearest even, and scaled back. The arithmetic is
// float32, as the kernel's.
func QuantizeQ8x16(x []float32) []float32 {
	out := make([]float32, len(x))
	for g := 0; g < len(x); g += 16 {
		grp := x[g:min(g+16, len(x))]
		var amax float32
		for _, v := range grp {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if amax == 0 {
			continue
		}
		inv, d := 127/amax, amax/127
		for i, v := range grp {
			out[g+i] = d * float32(math.RoundToEven(float64(v*inv)))
		}
	}
	return out
}

// RMSNorm returns x / sqrt(mean(x^2) + eps) * g.
func RMSNorm(x, g []float32, eps float32) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(float64(v) * inv * float64(g[i]))
	}
	return y
}

// RopeAngles returns (cos, sin) of pos * base^(-2i/ropeDim) for the ropeDim/2 pairs, interleaved: plain
// RoPE, without scaling.
func RopeAngles(pos int, ropeDim int, base float64) []float32 {
	c := model.Config{RopeDim: ropeDim, RopeBase: float32(base), RopeScaling: model.RopeScalingNone}
	a := Angles(&c, pos)
	out := make([]float32, len(a))
	for i, v := range a {
		out[i] = float32(v)
	}
	return out
}

// Angles returns the (cos θ_i, sin θ_i)·mscale of the RopeDim/2 rotated pairs of c at pos, interleaved,
// in float64 from the definitions (model/rope.go states them): Llama 3's frequency divisors, linear
// scaling, YaRN's ramp between its correction dims and its magnitude scale 1 + 0.1·ln(factor).
func Angles(c *model.Config, pos int) []float64 {
	d := float64(c.RopeDim)
	base := float64(c.RopeBase)
	factor := 1.0
	if c.RopeScaling != model.RopeScalingNone && c.RopeFactor > 0 {
		factor = float64(c.RopeFactor)
	}
	yarn := c.RopeScaling == model.RopeScalingYaRN && factor != 1
	mscale := 1.0
	if c.RopeAttnFactor > 0 {
		mscale = float64(c.RopeAttnFactor)
	}
	var lo, hi float64
	if yarn {
		mscale *= 1 + 0.1*math.Log(factor)
		// YaRN's correction dims: the pair whose wavelength fits beta times into the original context.
		corr := func(beta float64) float64 {
			return d * math.Log(float64(c.RopeOrigContext)/(beta*2*math.Pi)) / (2 * math.Log(base))
		}
		lo, hi = max(0, math.Floor(corr(32))), min(d-1, math.Ceil(corr(1)))
	}
	out := make([]float64, c.RopeDim)
	for i := range c.RopeDim / 2 {
		extrap := float64(pos) * math.Pow(base, -2*float64(i)/d)
		if c.RopeFreqs != nil {
			extrap /= float64(c.RopeFreqs[i])
		}
		th := extrap / factor
		if yarn {
			ramp := 1 - min(1, max(0, (float64(i)-lo)/max(0.001, hi-lo)))
			th = th*(1-ramp) + extrap*ramp
		}
		out[2*i], out[2*i+1] = math.Cos(th)*mscale, math.Sin(th)*mscale
	}
	return out
}

// Rope rotates in place the first ropeDim dims of each head of headDim in x (adjacent pairs, the NORM
// convention of GGUF llama-family weights) for position pos, without scaling.
func Rope(x []float32, headDim, ropeDim, pos int, base float64) {
	cs := RopeAngles(pos, ropeDim, base)
	c64 := make([]float64, len(cs))
	for i, v := range cs {
		c64[i] = float64(v)
	}
	Rotate(x, headDim, false, c64)
}

// Rotate rotates in place the first len(cs) dims of each head of headDim in x by the angles cs (Angles):
// pairs (2i, 2i+1) (NORM), or (i, i+len(cs)/2) with neox (NEOX: Qwen, GPT-NeoX).
func Rotate(x []float32, headDim int, neox bool, cs []float64) {
	half := len(cs) / 2
	for h := 0; h+headDim <= len(x); h += headDim {
		for i := range half {
			j, k := h+2*i, h+2*i+1
			if neox {
				j, k = h+i, h+i+half
			}
			c, s := cs[2*i], cs[2*i+1]
			a, b := float64(x[j]), float64(x[k])
			x[j] = float32(a*c - b*s)
			x[k] = float32(a*s + b*c)
		}
	}
}

// HeadNorm RMS-normalizes each head of headDim in x in place with gain g (QK-norm).
func HeadNorm(x, g []float32, headDim int, eps float32) {
	for h := 0; h+headDim <= len(x); h += headDim {
		copy(x[h:h+headDim], RMSNorm(x[h:h+headDim], g, eps))
	}
}

// Attention returns causal GQA attention for one query token: q holds heads*headDim values, keys and
// values hold nKeys rows of kvHeads*headDim. Query head h reads kv head h / (heads/kvHeads).
func Attention(q, keys, values []float32, heads, kvHeads, headDim, nKeys int, scale float32) []float32 {
	out := make([]float32, heads*headDim)
	kvDim := kvHeads * headDim
	group := heads / kvHeads
	scores := make([]float64, nKeys)
	for h := range heads {
		g := h / group
		qh := q[h*headDim : (h+1)*headDim]
		mx := math.Inf(-1)
		for j := range nKeys {
			k := keys[j*kvDim+g*headDim:][:headDim]
			var s float64
			for d := range headDim {
				s += float64(qh[d]) * float64(k[d])
			}
			scores[j] = s * float64(scale)
			mx = math.Max(mx, scores[j])
		}
		var sum float64
		for j := range nKeys {
			scores[j] = math.Exp(scores[j] - mx)
			sum += scores[j]
		}
		for d := range headDim {
			var o float64
			for j := range nKeys {
				o += scores[j] * float64(values[j*kvDim+g*headDim+d])
			}
			out[h*headDim+d] = float32(o / sum)
		}
	}
	return out
}

// SiluMul returns silu(g) * u elementwise.
func SiluMul(g, u []float32) []float32 {
	y := make([]float32, len(g))
	for i := range g {
		a := float64(g[i])
		y[i] = float32(a / (1 + math.Exp(-a)) * float64(u[i]))
	}
	return y
}

// Argmax returns the index of the largest value, the first on ties.
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TopK returns the indices of the k largest values in descending order, lower index first on ties.
func TopK(x []float32, k int) []int {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] > x[idx[b]] })
	return idx[:min(k, len(idx))]
}
