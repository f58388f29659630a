//go:build !amd64 || purego

package cpu

// swiGLUVector has no vector implementation here: swiGLU runs one element at a time.
func swiGLUVector(gate, up []float32) int { return 0 }

// expSumVector has no vector implementation here: softmax runs one element at a time.
func expSumVector(x []float32, m float32) (int, float64) { return 0, 0 }
