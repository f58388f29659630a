package kernels

import (
	"encoding/binary"
	"math"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// TestAccumulateF16 checks both kernel sets bit for bit against the definition, for widths that use the
// 64-wide, 8-wide and scalar parts and rows further apart than their length. A half times a float32 is
// exact in float64, and so is its sum with a half of similar magnitude, so rounding that once to float32
// and then to half is what a multiply (or fused multiply-add) followed by VCVTPS2PH gives. Rescaling by
// ms = 1 must leave the accumulator alone, and 1 is what the kernels skip.
func TestAccumulateF16(t *testing.T) {
	r := quanttest.Rand(5)
	for _, c := range []struct{ dims, n, ldv int }{
		{128, 20, 300}, {8, 3, 16}, {40, 7, 96}, {13, 5, 26}, {5, 2, 10}, {131, 9, 262}, {64, 1, 128}, {72, 4, 150}, {0, 2, 4},
	} {
		v := make([]byte, c.n*c.ldv)
		for i, x := range quanttest.Gaussian(r, c.n*c.ldv/2, 2) {
			binary.LittleEndian.PutUint16(v[2*i:], quant.F32ToF16(x))
		}
		ms, vs := make([]float32, c.n), make([]float32, c.n)
		for p := range ms {
			ms[p], vs[p] = 1, float32(0.01+0.99*r.Float64())
			if p%3 == 0 { // a new maximum: the sum is rescaled and the value weighs 1
				ms[p], vs[p] = float32(r.Float64()), 1
			}
		}
		init := make([]float32, c.dims)
		for i, x := range quanttest.Gaussian(r, c.dims, 4) {
			init[i] = halfRound(x)
		}
		want := append([]float32(nil), init...)
		for p := range c.n {
			for i := range want {
				a := halfRound(float32(float64(want[i]) * float64(ms[p])))
				x := float64(quant.F16ToF32(binary.LittleEndian.Uint16(v[p*c.ldv+2*i:])))
				want[i] = halfRound(float32(x*float64(vs[p]) + float64(a)))
			}
		}
		for _, k := range kernelSets() {
			acc := append([]float32(nil), init...)
			k.accumulateF16(acc, v, c.ldv, ms, vs)
			for i := range acc {
				if acc[i] != want[i] {
					t.Errorf("%+v (%s): acc[%d] = %v, want %v", c, k.name, i, acc[i], want[i])
				}
			}
		}
	}
}

// TestWeightedSumF16 checks both kernel sets against a float64 sum, for four heads (the AVX2 kernel,
// with and without columns past the last multiple of 16) and other head counts, sums added to what out
// held.
func TestWeightedSumF16(t *testing.T) {
	r := quanttest.Rand(8)
	for _, c := range []struct{ heads, dims, n, ldv, ldw int }{
		{4, 128, 37, 1024, 40}, {4, 16, 1, 32, 1}, {4, 40, 5, 80, 9}, {4, 8, 3, 16, 3}, {2, 8, 9, 32, 9}, {1, 33, 4, 70, 4}, {3, 16, 2, 32, 2},
	} {
		v := make([]byte, c.n*c.ldv)
		for i, x := range quanttest.Gaussian(r, c.n*c.ldv/2, 1) {
			binary.LittleEndian.PutUint16(v[2*i:], quant.F32ToF16(x))
		}
		w := quanttest.Gaussian(r, c.heads*c.ldw, 1)
		init := quanttest.Gaussian(r, c.heads*c.dims, 1)
		for _, k := range kernelSets() {
			out := append([]float32(nil), init...)
			k.weightedSumF16(out, c.heads, v, c.ldv, w, c.ldw, c.n)
			for g := range c.heads {
				for i := range c.dims {
					want, mag := float64(init[g*c.dims+i]), math.Abs(float64(init[g*c.dims+i]))
					for p := range c.n {
						x := float64(w[g*c.ldw+p]) * float64(quant.F16ToF32(binary.LittleEndian.Uint16(v[p*c.ldv+2*i:])))
						want += x
						mag += math.Abs(x)
					}
					if got := out[g*c.dims+i]; math.Abs(float64(got)-want) > 1e-6*mag {
						t.Errorf("%+v (%s): out[%d][%d] = %v, want %v", c, k.name, g, i, got, want)
					}
				}
			}
		}
	}
}
