package cpu

import (
	"math"
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

// ropeTable holds cos θ and sin θ for one position: θ_i = pos · base^(−2i/ropeDim), i < ropeDim/2.
type ropeTable struct {
	cos, sin []float32
}

// fill computes the table for pos the way ggml's rope cache does: the frequency is a float32 power
// multiplied up pair by pair, so the angles round exactly as llama.cpp's do.
func (r *ropeTable) fill(pos int, base float32, ropeDim int) {
	half := ropeDim / 2
	if cap(r.cos) < half {
		r.cos, r.sin = make([]float32, half), make([]float32, half)
	}
	r.cos, r.sin = r.cos[:half], r.sin[:half]
	step := float32(math.Pow(float64(base), -2/float64(ropeDim)))
	theta := float32(pos)
	for i := 0; i < half; i++ {
		s, c := math.Sincos(float64(theta))
		r.cos[i], r.sin[i] = float32(c), float32(s)
		theta *= step
	}
}

// rope rotates the adjacent pairs (2i, 2i+1) of the first 2·len(r.cos) values of every head in x
// (ggml's NORM mode). x is heads × headDim values.
func (r *ropeTable) rope(x []float32, headDim int) {
	for h := 0; h+headDim <= len(x); h += headDim {
		v := x[h : h+headDim]
		for i, c := range r.cos {
			s := r.sin[i]
			a, b := v[2*i], v[2*i+1]
			v[2*i] = a*c - b*s
			v[2*i+1] = a*s + b*c
		}
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
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
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
