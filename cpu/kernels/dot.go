package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"smolchat/model/quant"
)

// blocks checks a dot product's arguments: n must be a whole number of blocks of blk elements, and w and a
// must hold exactly n elements at wBytes and aBytes per block. It returns the block count.
func blocks(name string, w, a []byte, n, blk, wBytes, aBytes int) int {
	nb := n / blk
	if n < 0 || n%blk != 0 || len(w) != nb*wBytes || len(a) != nb*aBytes {
		panic(fmt.Sprintf("kernels: %s of %d elements with %d weight bytes and %d activation bytes (want %d and %d)",
			name, n, len(w), len(a), nb*wBytes, nb*aBytes))
	}
	return nb
}

// dotQ4KQ8K is the dot product of a Q4_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func (k *impl) dotQ4KQ8K(w, a []byte, n int) float32 {
	nb := blocks("dotQ4KQ8K", w, a, n, quant.QK_K, quant.Q4KBytes, quant.Q8KBytes)
	return k.q4K(w, a, nb)
}

// dotQ5KQ8K is the dot product of a Q5_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func (k *impl) dotQ5KQ8K(w, a []byte, n int) float32 {
	nb := blocks("dotQ5KQ8K", w, a, n, quant.QK_K, quant.Q5KBytes, quant.Q8KBytes)
	return k.q5K(w, a, nb)
}

// dotQ6KQ8K is the dot product of a Q6_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func (k *impl) dotQ6KQ8K(w, a []byte, n int) float32 {
	nb := blocks("dotQ6KQ8K", w, a, n, quant.QK_K, quant.Q6KBytes, quant.Q8KBytes)
	return k.q6K(w, a, nb)
}

// dotQ8_0Q8_0 is the dot product of a Q8_0 weight row with a Q8_0 activation row of n elements. The
// activation quants must lie in [-127, 127], as QuantizeRowQ8_0 writes them (the AVX2 kernel, like
// ggml's, moves the weight's sign onto the activation). It panics when n is not a multiple of 32 or the
// slices do not hold exactly n elements.
func (k *impl) dotQ8_0Q8_0(w, a []byte, n int) float32 {
	nb := blocks("dotQ8_0Q8_0", w, a, n, 32, quant.Q8_0Bytes, quant.Q8_0Bytes)
	return k.q8_0(w, a, nb)
}

// dotQ4_0Q8_0 is the dot product of a Q4_0 row with a Q8_0 activation row (quants in [-127, 127], see
// dotQ8_0Q8_0), both of n elements. It panics when n is not a multiple of 32 or the slices do not hold
// exactly n elements.
func (k *impl) dotQ4_0Q8_0(w, a []byte, n int) float32 {
	nb := blocks("dotQ4_0Q8_0", w, a, n, 32, quant.Q4_0Bytes, quant.Q8_0Bytes)
	return k.q4_0(w, a, nb)
}

// DotF32 is Σ x[i]·y[i]. It panics when the lengths differ.
func DotF32(x, y []float32) float32 { return active.dotF32(x, y) }

// dotF32 is DotF32 on the kernels k.
func (k *impl) dotF32(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("kernels: DotF32 of %d and %d elements", len(x), len(y)))
	}
	return k.f32(x, y)
}

// dotF16F32 is the dot product of a row of len(x) F16 values (2 bytes each, little-endian) with x. It
// panics when len(w) != 2·len(x).
func (k *impl) dotF16F32(w []byte, x []float32) float32 {
	if len(w) != 2*len(x) {
		panic(fmt.Sprintf("kernels: dotF16F32 of %d weight bytes and %d elements", len(w), len(x)))
	}
	return k.f16(w, x)
}

func dotF16F32Generic(w []byte, x []float32) float32 {
	var s0, s1 float32
	for i := 0; i+1 < len(x); i += 2 {
		s0 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
		s1 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * x[i+1]
	}
	if len(x)%2 == 1 {
		i := len(x) - 1
		s0 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1
}

// dotBF16F32 is the dot product of a row of len(x) BF16 values (2 bytes each, little-endian) with x. It
// panics when len(w) != 2·len(x).
func (k *impl) dotBF16F32(w []byte, x []float32) float32 {
	if len(w) != 2*len(x) {
		panic(fmt.Sprintf("kernels: dotBF16F32 of %d weight bytes and %d elements", len(w), len(x)))
	}
	return k.bf16(w, x)
}

func dotBF16F32Generic(w []byte, x []float32) float32 {
	var s0, s1 float32
	for i := 0; i+1 < len(x); i += 2 {
		s0 += quant.BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
		s1 += quant.BF16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * x[i+1]
	}
	if len(x)%2 == 1 {
		i := len(x) - 1
		s0 += quant.BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1
}

// The byte forms behind DotFunc for float weights: the activation is float32 little-endian bytes.

func (k *impl) dotF32Bytes(w, a []byte, n int) float32 {
	blocks("Dot F32", w, a, n, 1, 4, 4)
	return k.f32Bytes(w, a, n)
}

func (k *impl) dotF16Bytes(w, a []byte, n int) float32 {
	blocks("Dot F16", w, a, n, 1, 2, 4)
	return k.f16Bytes(w, a, n)
}

func (k *impl) dotBF16Bytes(w, a []byte, n int) float32 {
	blocks("Dot BF16", w, a, n, 1, 2, 4)
	return k.bf16Bytes(w, a, n)
}

func dotF32BytesGeneric(w, a []byte, n int) float32 {
	w, a = w[:4*n], a[:4*n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		wb, ab := w[4*i:4*i+16], a[4*i:4*i+16]
		s0 += f32At(wb[0:]) * f32At(ab[0:])
		s1 += f32At(wb[4:]) * f32At(ab[4:])
		s2 += f32At(wb[8:]) * f32At(ab[8:])
		s3 += f32At(wb[12:]) * f32At(ab[12:])
	}
	for ; i < n; i++ {
		s0 += f32At(w[4*i:]) * f32At(a[4*i:])
	}
	return (s0 + s1) + (s2 + s3)
}

func dotF16BytesGeneric(w, a []byte, n int) float32 {
	w, a = w[:2*n], a[:4*n]
	var s0, s1 float32
	i := 0
	for ; i+2 <= n; i += 2 {
		s0 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * f32At(a[4*i:])
		s1 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * f32At(a[4*i+4:])
	}
	for ; i < n; i++ {
		s0 += quant.F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * f32At(a[4*i:])
	}
	return s0 + s1
}

func dotBF16BytesGeneric(w, a []byte, n int) float32 {
	w, a = w[:2*n], a[:4*n]
	var s0, s1 float32
	i := 0
	for ; i+2 <= n; i += 2 {
		s0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:]))<<16) * f32At(a[4*i:])
		s1 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i+2:]))<<16) * f32At(a[4*i+4:])
	}
	for ; i < n; i++ {
		s0 += math.Float32frombits(uint32(binary.LittleEndian.Uint16(w[2*i:]))<<16) * f32At(a[4*i:])
	}
	return s0 + s1
}

func dotF32Generic(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		xs, ys := x[i:i+4], y[i:i+4]
		s0 += xs[0] * ys[0]
		s1 += xs[1] * ys[1]
		s2 += xs[2] * ys[2]
		s3 += xs[3] * ys[3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}
