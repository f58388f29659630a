package cpu

import (
	"math"

	"smolchat/model"
)

// The element-wise operations of the forward pass. They follow ggml's CPU kernels in the details that
// move logits: sums of squares in float64, exponentials through float64, products rounded to float32.

// rmsNorm writes x · rsqrt(mean(x²) + eps) · w to out. out may be x.
func rmsNorm(out, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	scale := float32(1 / math.Sqrt(float64(float32(sum/float64(len(x)))+eps)))
	w = w[:len(x)]
	out = out[:len(x)]
	for i, v := range x {
		out[i] = v * scale * w[i]
	}
}

// ropeTable holds (cos θ_i, sin θ_i) of one position for the rotated pairs i < RopeDim/2, interleaved,
// as model.Config.RopeAngles computes them (the GPU backend uploads the same numbers).
type ropeTable struct {
	cs []float32
}

// fill computes the table for pos.
func (r *ropeTable) fill(c *model.Config, pos int) {
	if cap(r.cs) < c.RopeDim {
		r.cs = make([]float32, c.RopeDim)
	}
	r.cs = r.cs[:c.RopeDim]
	c.RopeAngles(pos, r.cs)
}

// rope rotates the first len(r.cs) values of every head in x (heads × headDim values): adjacent pairs
// (2i, 2i+1) with ggml's NORM mode, or half-split pairs (i, i+RopeDim/2) with NEOX.
func (r *ropeTable) rope(x []float32, headDim int, neox bool) {
	half := len(r.cs) / 2
	step, stride := 2, 1 // pair i is (step·i, step·i + stride)
	if neox {
		step, stride = 1, half
	}
	for h := 0; h+headDim <= len(x); h += headDim {
		v := x[h : h+headDim]
		for i := range half {
			c, s := r.cs[2*i], r.cs[2*i+1]
			j := step * i
			a, b := v[j], v[j+stride]
			v[j] = a*c - b*s
			v[j+stride] = a*s + b*c
		}
	}
}

// headNorm RMS-normalizes every head of headDim values in x in place with gain w (QK-norm).
func headNorm(x, w []float32, headDim int, eps float32) {
	for h := 0; h+headDim <= len(x); h += headDim {
		rmsNorm(x[h:h+headDim], x[h:h+headDim], w, eps)
	}
}

// swiGLU writes silu(gate) · up into gate: with AVX2 eight at a time (ops_amd64.s), the rest here.
func swiGLU(gate, up []float32) {
	up = up[:len(gate)]
	n := swiGLUVector(gate, up)
	swiGLUScalar(gate[n:], up[n:])
}

// swiGLUScalar is swiGLU one element at a time, with the exponential in float64.
func swiGLUScalar(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// add adds y to x.
func add(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

// softmax turns x into probabilities in place, subtracting the maximum first so exp cannot overflow. The
// sum is accumulated in float64, as ggml does.
func softmax(x []float32) {
	m := maxOf(x)
	n, sum := expSumVector(x, m)
	for i, v := range x[n:] {
		e := float32(math.Exp(float64(v - m)))
		x[n+i] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range x {
		x[i] *= inv
	}
}

// maxOf is the largest element of x (-Inf for none). Eight running maxima, each over every eighth
// element, keep the comparisons independent of each other, so they overlap in the pipeline instead of
// waiting on one running maximum (attention's softmax takes the maximum of thousands of scores a row).
// The maximum of a set does not depend on the order of the comparisons.
func maxOf(x []float32) float32 {
	var m [8]float32
	for j := range m {
		m[j] = float32(math.Inf(-1))
	}
	i := 0
	for ; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		for j := range m {
			if v[j] > m[j] {
				m[j] = v[j]
			}
		}
	}
	for _, v := range x[i:] {
		if v > m[0] {
			m[0] = v
		}
	}
	return max(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7])
}
