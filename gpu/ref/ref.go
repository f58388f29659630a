// Package ref holds plain, slow CPU versions of the GPU kernels' math, accumulated in float64, against
// which the kernels are tested. They follow the model definitions literally (spec §1) and favour being
// obviously right over being fast.
package ref

import (
	"math"
	"sort"
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

// RopeAngles returns (cos, sin) of pos * base^(-2i/ropeDim) for the ropeDim/2 pairs, interleaved.
func RopeAngles(pos int, ropeDim int, base float64) []float32 {
	out := make([]float32, ropeDim)
	for i := range ropeDim / 2 {
		th := float64(pos) * math.Pow(base, -2*float64(i)/float64(ropeDim))
		out[2*i] = float32(math.Cos(th))
		out[2*i+1] = float32(math.Sin(th))
	}
	return out
}

// Rope rotates in place the first ropeDim dims of each head of headDim in x (adjacent pairs, the NORM
// convention of GGUF llama-family weights) for position pos.
func Rope(x []float32, headDim, ropeDim, pos int, base float64) {
	cs := RopeAngles(pos, ropeDim, base)
	for h := 0; h+headDim <= len(x); h += headDim {
		for i := range ropeDim / 2 {
			c, s := float64(cs[2*i]), float64(cs[2*i+1])
			a, b := float64(x[h+2*i]), float64(x[h+2*i+1])
			x[h+2*i] = float32(a*c - b*s)
			x[h+2*i+1] = float32(a*s + b*c)
		}
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
