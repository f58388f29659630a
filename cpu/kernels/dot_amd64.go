//go:build amd64 && !purego

package kernels

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// accelerated holds the AVX2 kernels when the CPU (and OS) support AVX2, FMA and F16C; it is nil otherwise
// and the pure-Go kernels run. The K-quant kernels follow the structure of llama.cpp's AVX2 ones:
// VPMADDUBSW multiplies the unsigned weight codes by the signed activation bytes, VPMADDWD applies the
// 16-bit sub-block scales, and each super-block's int32 sum is scaled in float at the end.
var accelerated = func() *impl {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA || !cpu.X86.HasF16C {
		return nil
	}
	k := *generic
	k.name = "avx2"
	k.q4K = func(w, a []byte, nb int) float32 {
		if nb == 0 {
			return 0
		}
		return dotQ4KQ8KAVX2(&w[0], &a[0], nb)
	}
	k.q5K = func(w, a []byte, nb int) float32 {
		if nb == 0 {
			return 0
		}
		return dotQ5KQ8KAVX2(&w[0], &a[0], nb)
	}
	k.q8_0 = func(w, a []byte, nb int) float32 {
		if nb == 0 {
			return 0
		}
		return dotQ8_0Q8_0AVX2(&w[0], &a[0], nb)
	}
	k.q4_0 = func(w, a []byte, nb int) float32 {
		if nb == 0 {
			return 0
		}
		return dotQ4_0Q8_0AVX2(&w[0], &a[0], nb)
	}
	k.q6K = func(w, a []byte, nb int) float32 {
		if nb == 0 {
			return 0
		}
		return dotQ6KQ8KAVX2(&w[0], &a[0], nb)
	}
	// amd64 is little-endian and tolerates unaligned loads, so float32 activation bytes are the floats.
	k.f32 = func(x, y []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return dotF32AVX2(unsafe.Pointer(&x[0]), unsafe.Pointer(&y[0]), len(x))
	}
	k.f32Bytes = func(w, a []byte, n int) float32 {
		if n == 0 {
			return 0
		}
		return dotF32AVX2(unsafe.Pointer(&w[0]), unsafe.Pointer(&a[0]), n)
	}
	k.f16 = func(w []byte, x []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return dotF16AVX2(unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), len(x))
	}
	k.f16Bytes = func(w, a []byte, n int) float32 {
		if n == 0 {
			return 0
		}
		return dotF16AVX2(unsafe.Pointer(&w[0]), unsafe.Pointer(&a[0]), n)
	}
	k.bf16 = func(w []byte, x []float32) float32 {
		if len(x) == 0 {
			return 0
		}
		return dotBF16AVX2(unsafe.Pointer(&w[0]), unsafe.Pointer(&x[0]), len(x))
	}
	k.bf16Bytes = func(w, a []byte, n int) float32 {
		if n == 0 {
			return 0
		}
		return dotBF16AVX2(unsafe.Pointer(&w[0]), unsafe.Pointer(&a[0]), n)
	}
	k.q4KPack = func(w []byte, ldw int, dst []byte, nb int) { packQ4Kx4AVX2(&w[0], ldw, &dst[0], nb) }
	k.q6KPack = func(w []byte, ldw int, dst []byte, nb int) { packQ6Kx4AVX2(&w[0], ldw, &dst[0], nb) }
	k.q4KPacked = func(p, a []byte, lda int, out []float32, ldo, nb, groups int) {
		gemmP4KQ8Kx4AVX2(&p[0], &a[0], lda, &out[0], ldo, nb, groups)
	}
	k.q6KPacked = func(p, a []byte, lda int, out []float32, ldo, nb, groups int) {
		gemmP6KQ8Kx4AVX2(&p[0], &a[0], lda, &out[0], ldo, nb, groups)
	}
	k.q4KInterleave = func(w []byte, ldw int, dst []byte, nb int) { interleaveQ4Kx4AVX2(&w[0], ldw, &dst[0], nb) }
	k.q6KInterleave = func(w []byte, ldw int, dst []byte, nb int) { interleaveQ6Kx4AVX2(&w[0], ldw, &dst[0], nb) }
	k.q4KUnpack = func(src, dst []byte, nb int) { packC4KAVX2(&src[0], &dst[0], nb) }
	k.q6KUnpack = func(src, dst []byte, nb int) { packC6KAVX2(&src[0], &dst[0], nb) }
	k.q4KGemv = func(w, a []byte, out []float32, nb, groups int) { gemvC4KQ8KAVX2(&w[0], &a[0], &out[0], nb, groups) }
	k.q6KGemv = func(w, a []byte, out []float32, nb, groups int) { gemvC6KQ8KAVX2(&w[0], &a[0], &out[0], nb, groups) }
	k.q4KGemvs = gemvs(gemvC4KQ8Kx2AVX2, gemvC4KQ8Kx3AVX2, gemvC4KQ8Kx4AVX2)
	k.q6KGemvs = gemvs(gemvC6KQ8Kx2AVX2, gemvC6KQ8Kx3AVX2, gemvC6KQ8Kx4AVX2)
	k.fewMax = SmallBatch
	if hasAVX512 {
		k.fewMax = math.MaxInt
		k.q4KGemvs = gemvs(gemvC4KQ8Kx2AVX512, gemvC4KQ8Kx3AVX512, gemvC4KQ8Kx4AVX512)
		k.q6KGemvs = gemvs(gemvC6KQ8Kx2AVX2, gemvC6KQ8Kx3AVX2, gemvC6KQ8Kx4AVX512)
	}
	k.q8K = func(x []float32, dst []byte, nb int) { quantizeQ8KAVX2(&x[0], &dst[0], nb) }
	k.f16Rows4 = func(w []byte, ldw, rows int, x []float32, ldx, n int, out []float32, ldo int) {
		dotF16Rows4AVX2(&w[0], ldw, rows, &x[0], ldx, n, &out[0], ldo)
	}
	k.wsumF16x4 = func(out []float32, dims int, v []byte, ldv int, w []float32, ldw, n, cols int) {
		wsumF16x4AVX2(&out[0], dims, &v[0], ldv, &w[0], ldw, n, cols)
	}
	k.accumF16 = func(acc []float32, v []byte, ldv int, ms, vs []float32) {
		accumF16AVX2(&acc[0], &v[0], ldv, &ms[0], &vs[0], len(ms), len(acc))
	}
	return &k
}()

// hasAVX512 is whether the CPU (and OS) run the AVX-512 instructions of the *AVX512 kernels.
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL

// gemvs wraps the small-batch kernels for two, three and four activation rows as impl's q4KGemvs.
func gemvs(kernels ...func(w, a *byte, lda int, out *float32, ldo, nb, groups int)) []func(w, a []byte, lda int, out []float32, ldo, nb, groups int) {
	fs := make([]func(w, a []byte, lda int, out []float32, ldo, nb, groups int), 2+len(kernels))
	for i, k := range kernels {
		fs[2+i] = func(w, a []byte, lda int, out []float32, ldo, nb, groups int) {
			k(&w[0], &a[0], lda, &out[0], ldo, nb, groups)
		}
	}
	return fs
}

// dotQ4KQ8KAVX2 is the dot product of nb Q4_K super-blocks at w with nb Q8_K blocks at a (nb ≥ 1).
//
//go:noescape
func dotQ4KQ8KAVX2(w, a *byte, nb int) float32

// dotQ6KQ8KAVX2 is the dot product of nb Q6_K super-blocks at w with nb Q8_K blocks at a (nb ≥ 1).
//
//go:noescape
func dotQ6KQ8KAVX2(w, a *byte, nb int) float32

// dotQ5KQ8KAVX2 is the dot product of nb Q5_K super-blocks at w with nb Q8_K blocks at a (nb ≥ 1).
//
//go:noescape
func dotQ5KQ8KAVX2(w, a *byte, nb int) float32

// dotQ8_0Q8_0AVX2 is the dot product of nb Q8_0 blocks at w with nb Q8_0 blocks at a (nb ≥ 1). An
// activation byte of -128 facing a negative weight comes out wrong (ggml's sign trick); QuantizeRowQ8_0
// never writes -128.
//
//go:noescape
func dotQ8_0Q8_0AVX2(w, a *byte, nb int) float32

// dotQ4_0Q8_0AVX2 is the dot product of nb Q4_0 blocks at w with nb Q8_0 blocks at a (nb ≥ 1), with the
// same -128 caveat as dotQ8_0Q8_0AVX2.
//
//go:noescape
func dotQ4_0Q8_0AVX2(w, a *byte, nb int) float32

// dotF32AVX2 is Σ x[i]·y[i] over n ≥ 1 float32s.
//
//go:noescape
func dotF32AVX2(x, y unsafe.Pointer, n int) float32

// dotF16AVX2 is Σ w[i]·x[i] over n ≥ 1 elements, w in F16 and x in float32.
//
//go:noescape
func dotF16AVX2(w, x unsafe.Pointer, n int) float32

// dotBF16AVX2 is Σ w[i]·x[i] over n ≥ 1 elements, w in BF16 and x in float32.
//
//go:noescape
func dotBF16AVX2(w, x unsafe.Pointer, n int) float32

// packQ4Kx4AVX2 repacks nb blocks of the four Q4_K rows at w, w+ldw, w+2·ldw, w+3·ldw into nb packed
// blocks of q4KPackedBytes at dst (nb ≥ 1).
//
//go:noescape
func packQ4Kx4AVX2(w *byte, ldw int, dst *byte, nb int)

// packQ6Kx4AVX2 is packQ4Kx4AVX2 for Q6_K rows (q6KPackedBytes per packed block).
//
//go:noescape
func packQ6Kx4AVX2(w *byte, ldw int, dst *byte, nb int)

// gemmP4KQ8Kx4AVX2 computes out[j·ldo + 4·g + r], for j < 4 and r < 4, for each of the groups packed
// groups of nb Q4_K blocks at p (one after the other): the dot product of row r of group g with the
// Q8_K row at a + j·lda (nb, groups ≥ 1).
//
//go:noescape
func gemmP4KQ8Kx4AVX2(p, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemmP6KQ8Kx4AVX2 is gemmP4KQ8Kx4AVX2 for packed Q6_K rows.
//
//go:noescape
func gemmP6KQ8Kx4AVX2(p, a *byte, lda int, out *float32, ldo, nb, groups int)

// interleaveQ4Kx4AVX2 rearranges nb blocks of the four Q4_K rows at w, w+ldw, w+2·ldw, w+3·ldw into nb
// interleaved blocks of q4KInterleavedBytes at dst (nb ≥ 1).
//
//go:noescape
func interleaveQ4Kx4AVX2(w *byte, ldw int, dst *byte, nb int)

// interleaveQ6Kx4AVX2 is interleaveQ4Kx4AVX2 for Q6_K rows (q6KInterleavedBytes per block).
//
//go:noescape
func interleaveQ6Kx4AVX2(w *byte, ldw int, dst *byte, nb int)

// packC4KAVX2 turns nb interleaved Q4_K blocks at src into nb packed blocks at dst (nb ≥ 1).
//
//go:noescape
func packC4KAVX2(src, dst *byte, nb int)

// packC6KAVX2 turns nb interleaved Q6_K blocks at src into nb packed blocks at dst (nb ≥ 1).
//
//go:noescape
func packC6KAVX2(src, dst *byte, nb int)

// gemvC4KQ8KAVX2 computes out[4·g + r] for each of the groups interleaved groups of nb Q4_K blocks at
// w: the dot product of row r of group g with the Q8_K row at a (nb, groups ≥ 1).
//
//go:noescape
func gemvC4KQ8KAVX2(w, a *byte, out *float32, nb, groups int)

// gemvC6KQ8KAVX2 is gemvC4KQ8KAVX2 for interleaved Q6_K rows.
//
//go:noescape
func gemvC6KQ8KAVX2(w, a *byte, out *float32, nb, groups int)

// gemvC4KQ8Kx4AVX2 is gemvC4KQ8KAVX2 for the four Q8_K rows at a, a+lda, a+2·lda and a+3·lda: for each
// of the groups interleaved groups of nb Q4_K blocks at w, out[j·ldo + 4·g + r] is the dot product of
// row r of group g with activation row j, as gemvC4KQ8KAVX2 computes it (nb, groups ≥ 1). Each block is
// read and unpacked once for the four rows.
//
//go:noescape
func gemvC4KQ8Kx4AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC4KQ8Kx3AVX2 is gemvC4KQ8Kx4AVX2 for three activation rows.
//
//go:noescape
func gemvC4KQ8Kx3AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC4KQ8Kx2AVX2 is gemvC4KQ8Kx4AVX2 for two activation rows.
//
//go:noescape
func gemvC4KQ8Kx2AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC6KQ8Kx4AVX2 is gemvC4KQ8Kx4AVX2 for interleaved Q6_K rows.
//
//go:noescape
func gemvC6KQ8Kx4AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC6KQ8Kx4AVX512 is gemvC6KQ8Kx4AVX2 on 64-byte registers (AVX-512 F, BW, DQ and VL), with the same
// results bit for bit.
//
//go:noescape
func gemvC6KQ8Kx4AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC4KQ8Kx4AVX512 is gemvC4KQ8Kx4AVX2 on 64-byte registers (AVX-512 F, BW, DQ and VL), with the same
// results bit for bit.
//
//go:noescape
func gemvC4KQ8Kx4AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC4KQ8Kx3AVX512 is gemvC4KQ8Kx3AVX2 on 64-byte registers.
//
//go:noescape
func gemvC4KQ8Kx3AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC4KQ8Kx2AVX512 is gemvC4KQ8Kx2AVX2 on 64-byte registers.
//
//go:noescape
func gemvC4KQ8Kx2AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC6KQ8Kx3AVX2 is gemvC6KQ8Kx4AVX2 for three activation rows.
//
//go:noescape
func gemvC6KQ8Kx3AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// gemvC6KQ8Kx2AVX2 is gemvC6KQ8Kx4AVX2 for two activation rows.
//
//go:noescape
func gemvC6KQ8Kx2AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)

// quantizeQ8KAVX2 quantizes nb ≥ 1 blocks of 256 floats at x to Q8_K at dst, as quantizeRowQ8KGeneric.
//
//go:noescape
func quantizeQ8KAVX2(x *float32, dst *byte, nb int)

// dotF16Rows4AVX2 is DotF16Rows for four vectors, rows ≥ 1 and n a positive multiple of 8.
//
//go:noescape
func dotF16Rows4AVX2(w *byte, ldw, rows int, x *float32, ldx, n int, out *float32, ldo int)

// accumF16AVX2 is AccumulateF16 for dims a positive multiple of 8 and n ≥ 1.
//
//go:noescape
func accumF16AVX2(acc *float32, v *byte, ldv int, ms, vs *float32, n, dims int)

// wsumF16x4AVX2 is WeightedSumF16 for four heads, ldo apart in out, over dims columns (a positive
// multiple of 16), n ≥ 1.
//
//go:noescape
func wsumF16x4AVX2(out *float32, ldo int, v *byte, ldv int, w *float32, ldw, n, dims int)
