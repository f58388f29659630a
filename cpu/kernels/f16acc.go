package kernels

import (
	"fmt"
	"math"

	"smolchat/model/quant"
)

// AccumulateF16 runs the inner loop of llama.cpp's CPU flash attention for one query head over
// n = len(ms) positions, with the accumulator held in float32 (every value in it a half): for each p,
// acc = half(acc·ms[p]) unless ms[p] is 1 (ms rescales the sum when the running maximum score rises),
// then acc = half(acc + half(v_p)·vs[p]) with the product and sum fused into one rounding before the
// conversion (vs weights the value), where v_p is the row of len(acc) halves at v[p·ldv:]. These are
// ggml's ggml_vec_scale_f16 and ggml_vec_mad_f16 on a half accumulator; the cpu backend repeats them so
// that its logits round as the reference's do, with the accumulator in registers across positions.
func AccumulateF16(acc []float32, v []byte, ldv int, ms, vs []float32) {
	active.accumulateF16(acc, v, ldv, ms, vs)
}

// accumulateF16 is AccumulateF16 on the kernels k.
func (k *impl) accumulateF16(acc []float32, v []byte, ldv int, ms, vs []float32) {
	n := len(ms)
	if len(vs) != n || (n > 0 && (ldv < 2*len(acc) || len(v) < (n-1)*ldv+2*len(acc))) {
		panic(fmt.Sprintf("kernels: AccumulateF16 of %d positions (%d weights) over %d elements with %d bytes of v (stride %d)",
			n, len(vs), len(acc), len(v), ldv))
	}
	if n == 0 {
		return
	}
	i := 0
	if accum := k.accumF16; accum != nil && len(acc) >= 8 {
		i = len(acc) &^ 7
		accum(acc[:i], v, ldv, ms, vs)
	}
	if i == len(acc) {
		return
	}
	for p := range n {
		row := v[p*ldv:]
		for j := i; j < len(acc); j++ {
			a := acc[j]
			if ms[p] != 1 {
				a = halfRound(a * ms[p])
			}
			acc[j] = halfRound(fmaF32(f16At(row[2*j:]), vs[p], a))
		}
	}
}

// WeightedSumF16 adds weighted sums of half-float rows to out: for g < heads and i < dims =
// len(out)/heads, out[g·dims + i] += Σ_{p<n} w[g·ldw + p] · half(v[p·ldv + 2i]). It is the value half of
// attention for the query heads that share a KV head: the rows are the cached values of n positions and
// the weights each head's softmax over them. Sums are float32; with AVX2 and four heads (SmolLM3's
// grouping) each row is converted once for the four.
func WeightedSumF16(out []float32, heads int, v []byte, ldv int, w []float32, ldw, n int) {
	active.weightedSumF16(out, heads, v, ldv, w, ldw, n)
}

// weightedSumF16 is WeightedSumF16 on the kernels k.
func (k *impl) weightedSumF16(out []float32, heads int, v []byte, ldv int, w []float32, ldw, n int) {
	if heads <= 0 || len(out)%heads != 0 {
		panic(fmt.Sprintf("kernels: WeightedSumF16 of %d outputs over %d heads", len(out), heads))
	}
	dims := len(out) / heads
	if n <= 0 || dims == 0 {
		return
	}
	if ldv < 2*dims || len(v) < (n-1)*ldv+2*dims || ldw < n || len(w) < (heads-1)*ldw+n {
		panic(fmt.Sprintf("kernels: WeightedSumF16 of %d positions × %d elements with %d bytes of v (stride %d) and %d weights (stride %d)",
			n, dims, len(v), ldv, len(w), ldw))
	}
	j := 0
	if wsum := k.wsumF16x4; wsum != nil && heads == 4 && dims >= 16 {
		j = dims &^ 15
		wsum(out, dims, v, ldv, w, ldw, n, j)
	}
	if j == dims {
		return
	}
	for g := range heads {
		o := out[g*dims : (g+1)*dims]
		for p, wp := range w[g*ldw : g*ldw+n] {
			row := v[p*ldv:]
			for i := j; i < dims; i++ {
				o[i] += wp * f16At(row[2*i:])
			}
		}
	}
}

// halfRound rounds x to the nearest half (ties to even) and returns it as a float32.
func halfRound(x float32) float32 { return quant.F16ToF32(quant.F32ToF16(x)) }

// fmaF32 is a·b + c rounded once to float32, as a hardware fused multiply-add does. The product of two
// float32s is exact in float64, so only the sum rounds twice (to float64, then float32), which differs
// from a single rounding only when the float64 sum lands exactly halfway between two float32s.
func fmaF32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}
