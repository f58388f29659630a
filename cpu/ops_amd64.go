//go:build amd64 && !purego

package cpu

import "golang.org/x/sys/cpu"

var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// swiGLUVector does swiGLU on the longest prefix of gate that is a multiple of eight elements with AVX2,
// and returns its length (0 without AVX2).
func swiGLUVector(gate, up []float32) int {
	n := len(gate) &^ 7
	if !haveAVX2 || n == 0 {
		return 0
	}
	swiGLUAVX2(&gate[0], &up[0], n)
	return n
}

// swiGLUAVX2 writes silu(gate[i])·up[i] into gate[i] for i < n, n a positive multiple of 8. The
// exponential is a degree-6 polynomial after range reduction by powers of two (Cephes' expf), within a
// few units in the last place of float32; below -88, where silu is under 1e-36, the result is 0.
//
//go:noescape
func swiGLUAVX2(gate, up *float32, n int)

// expSumVector sets x[i] = e^(x[i]-m) for the longest prefix of x that is a multiple of eight elements,
// with AVX2, and returns its length and the sum of the new values (0, 0 without AVX2).
func expSumVector(x []float32, m float32) (int, float64) {
	n := len(x) &^ 7
	if !haveAVX2 || n == 0 {
		return 0, 0
	}
	return n, expSumAVX2(&x[0], n, m)
}

// expSumAVX2 sets x[i] = e^(x[i]-m) for i < n, n a positive multiple of 8, and returns their sum in
// float64. The exponential is swiGLUAVX2's; arguments below -86 give e^-86 instead of a smaller number.
//
//go:noescape
func expSumAVX2(x *float32, n int, m float32) float64
