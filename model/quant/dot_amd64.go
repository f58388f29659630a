//go:build amd64 && !purego

package quant

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// accelerated holds the AVX2 kernels when the CPU (and OS) support AVX2, FMA and F16C; it is nil otherwise
// and the pure-Go kernels run. The K-quant kernels follow the structure of llama.cpp's AVX2 ones:
// VPMADDUBSW multiplies the unsigned weight codes by the signed activation bytes, VPMADDWD applies the
// 16-bit sub-block scales, and each super-block's int32 sum is scaled in float at the end.
var accelerated = func() *kernels {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA || !cpu.X86.HasF16C {
		return nil
	}
	k := *genericKernels
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
	return &k
}()

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
