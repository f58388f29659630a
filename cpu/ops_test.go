package cpu

import (
	"math"
	"testing"
)

func TestRMSNorm(t *testing.T) {
	x := []float32{1, -2, 3, -4}
	w := []float32{1, 0.5, 2, 1}
	const eps = 1e-6
	scale := 1 / math.Sqrt((1+4+9+16)/4.0+eps)
	want := []float64{1 * scale, -2 * scale * 0.5, 3 * scale * 2, -4 * scale}
	out := make([]float32, 4)
	rmsNorm(out, x, w, eps)
	for i := range out {
		if math.Abs(float64(out[i])-want[i]) > 1e-6 {
			t.Errorf("element %d: got %v, want %v", i, out[i], want[i])
		}
	}
	rmsNorm(x, x, w, eps) // in place
	for i := range x {
		if x[i] != out[i] {
			t.Errorf("in place, element %d: got %v, want %v", i, x[i], out[i])
		}
	}
}

func TestSoftmax(t *testing.T) {
	tests := []struct {
		name string
		x    []float32
		want []float64
	}{
		{"uniform", []float32{3, 3, 3, 3}, []float64{0.25, 0.25, 0.25, 0.25}},
		{"large values do not overflow", []float32{1000, 1001}, []float64{1 / (1 + math.E), math.E / (1 + math.E)}},
		{"single", []float32{-50}, []float64{1}},
		{"masked-like", []float32{0, -200}, []float64{1, math.Exp(-200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			softmax(tt.x)
			for i := range tt.x {
				if math.Abs(float64(tt.x[i])-tt.want[i]) > 1e-6 {
					t.Errorf("element %d: got %v, want %v", i, tt.x[i], tt.want[i])
				}
			}
		})
	}
}

func TestSwiGLU(t *testing.T) {
	gate := []float32{0, 1, -1, 10, -20}
	up := []float32{5, 2, 3, 0.5, 1}
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	want := make([]float64, len(gate))
	for i := range gate {
		want[i] = silu(float64(gate[i])) * float64(up[i])
	}
	swiGLU(gate, up)
	for i := range gate {
		if math.Abs(float64(gate[i])-want[i]) > 1e-6*max(1, math.Abs(want[i])) {
			t.Errorf("element %d: got %v, want %v", i, gate[i], want[i])
		}
	}
}

// TestSwiGLUVector compares the vector swiGLU with the float64 one element by element, over the range
// where silu changes shape and beyond where its exponential would overflow or vanish. Below -86, where
// silu is under 1e-35, the vector code clamps the exponential (and returns 0 below -88): only the absolute
// error is small there.
func TestSwiGLUVector(t *testing.T) {
	const n = 4099 // not a multiple of 8: the tail goes through the scalar code
	gate, up := make([]float32, n), make([]float32, n)
	for i := range gate {
		gate[i] = float32(i-n/2) * 0.05 // -102 … 102
		up[i] = 1 + float32(i%7)/8
	}
	gate[0], gate[1], gate[2] = -1e30, 1e30, -0.0
	want, wantUp := append([]float32(nil), gate...), append([]float32(nil), up...)
	swiGLUScalar(want, wantUp)
	swiGLU(gate, up)
	for i := range gate {
		d := math.Abs(float64(gate[i]) - float64(want[i]))
		if d > 4e-7*math.Abs(float64(want[i]))+1e-35 || math.IsNaN(float64(gate[i])) {
			t.Errorf("element %d (gate %g): got %g, want %g", i, float32(i-n/2)*0.05, gate[i], want[i])
		}
	}
}

func BenchmarkSwiGLU(b *testing.B) {
	gate, up := make([]float32, 11008), make([]float32, 11008)
	for i := range gate {
		gate[i], up[i] = float32(i%200-100)*0.03, 1
	}
	b.SetBytes(8 * 11008)
	for b.Loop() {
		swiGLU(gate, up)
		for i := range gate {
			gate[i] = float32(i%200-100) * 0.03
		}
	}
}

// TestSoftmaxVector compares softmax over a long row (the vector exponential plus a scalar tail) with the
// same computed in float64 from the same float32 differences x - max.
func TestSoftmaxVector(t *testing.T) {
	const n = 1003
	x := make([]float32, n)
	for i := range x {
		x[i] = float32((i*7919)%200-150) * 0.37 // -55 … 18: the low end vanishes against the top
	}
	want := make([]float64, n)
	var m, sum float64 = math.Inf(-1), 0
	for _, v := range x {
		m = max(m, float64(v))
	}
	for i, v := range x {
		want[i] = math.Exp(float64(v - float32(m)))
		sum += want[i]
	}
	softmax(x)
	for i := range x {
		if d := math.Abs(float64(x[i]) - want[i]/sum); d > 4e-7*want[i]/sum+1e-30 {
			t.Errorf("element %d: got %g, want %g", i, x[i], want[i]/sum)
		}
	}
}
