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
