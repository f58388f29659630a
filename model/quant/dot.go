package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
)

// The CPU backend's matrix-vector products reduce to dot products of one weight row with one activation
// row. As in llama.cpp, the activation is first quantized once per row to the 8-bit partner format of the
// weight type (VecDotType), so that the inner loops are integer multiply-adds over whole blocks, scaled
// by the blocks' float factors at the end:
//
//	quant.QuantizeRow(quant.VecDotType(t), x, act) // once per activation vector
//	dot := quant.DotFunc(t)                       // once per matrix
//	for r := range out { out[r] = dot(w[r*rowBytes:(r+1)*rowBytes], act, n) }
//
// MatVec does exactly that loop.

// kernels is one implementation of the dot products. Each function receives slices whose lengths were
// checked against nb, the number of blocks (or elements, for the float kernels).
type kernels struct {
	name      string
	q4K       func(w, a []byte, nb int) float32
	q5K       func(w, a []byte, nb int) float32
	q6K       func(w, a []byte, nb int) float32
	q8_0      func(w, a []byte, nb int) float32
	q4_0      func(w, a []byte, nb int) float32
	f32       func(x, y []float32) float32
	f16       func(w []byte, x []float32) float32
	bf16      func(w []byte, x []float32) float32
	f32Bytes  func(w, a []byte, n int) float32 // the activation as float32 little-endian bytes
	f16Bytes  func(w, a []byte, n int) float32
	bf16Bytes func(w, a []byte, n int) float32

	// The multi-row kernels (matmul.go, pack_amd64.s), nil where only the dot products exist. pack
	// rearranges four weight rows ldw bytes apart (nb blocks each) into dst; packed multiplies groups
	// such packed groups with four activation rows lda bytes apart, writing out[j·ldo + 4·g + r].
	q4KPack, q6KPack     func(w []byte, ldw int, dst []byte, nb int)
	q4KPacked, q6KPacked func(p, a []byte, lda int, out []float32, ldo, nb, groups int)

	// The kernels on interleaved matrices (interleave.go), nil where they do not exist: interleave
	// rearranges four rows ldw bytes apart into nb interleaved blocks at dst; unpack turns one group of
	// nb interleaved blocks into the packed layout above; gemv multiplies groups interleaved groups with
	// one activation row, writing out[4·g + r].
	q4KInterleave, q6KInterleave func(w []byte, ldw int, dst []byte, nb int)
	q4KUnpack, q6KUnpack         func(src, dst []byte, nb int)
	q4KGemv, q6KGemv             func(w, a []byte, out []float32, nb, groups int)

	// q8K is QuantizeRowQ8K for nb ≥ 1 blocks, nil for the Go implementation; for finite inputs it
	// writes the same bytes.
	q8K func(x []float32, dst []byte, nb int)

	// f16Rows4 is DotF16Rows for four vectors and n a positive multiple of 8, nil where only the dot
	// product exists.
	f16Rows4 func(w []byte, ldw, rows int, x []float32, ldx, n int, out []float32, ldo int)

	// accumF16 is AccumulateF16 for len(acc) a positive multiple of 8 and at least one position, nil
	// where only the Go loop exists.
	accumF16 func(acc []float32, v []byte, ldv int, ms, vs []float32)
	// wsumF16x4 is WeightedSumF16 for four heads over the first cols columns (a positive multiple of 16)
	// of rows dims long, n ≥ 1, nil where only the Go loop exists.
	wsumF16x4 func(out []float32, dims int, v []byte, ldv int, w []float32, ldw, n, cols int)
}

var genericKernels = &kernels{
	name:      "generic",
	q4K:       dotQ4KQ8KGeneric,
	q5K:       dotQ5KQ8KGeneric,
	q6K:       dotQ6KQ8KGeneric,
	q8_0:      dotQ8_0Q8_0Generic,
	q4_0:      dotQ4_0Q8_0Generic,
	f32:       dotF32Generic,
	f16:       dotF16F32Generic,
	bf16:      dotBF16F32Generic,
	f32Bytes:  dotF32BytesGeneric,
	f16Bytes:  dotF16BytesGeneric,
	bf16Bytes: dotBF16BytesGeneric,
}

// active is the implementation in use: the fastest this CPU supports (see accelerated, set per
// architecture) unless ForceGeneric turned it off.
var active atomic.Pointer[kernels]

func init() {
	if accelerated != nil {
		active.Store(accelerated)
	} else {
		active.Store(genericKernels)
	}
}

// ForceGeneric selects the portable pure-Go kernels (on = true) or the fastest ones this CPU supports
// (on = false). It exists for tests and benchmarks and to rule the assembly out when chasing a numeric
// difference; the environment's SIMD support is detected at start-up, and a build with the purego tag has
// no assembly at all. It is safe to call at any time; dots already running finish with the old kernels.
func ForceGeneric(on bool) {
	if on || accelerated == nil {
		active.Store(genericKernels)
	} else {
		active.Store(accelerated)
	}
}

// Kernels names the dot-product implementation in use: "avx2" or "generic".
func Kernels() string { return active.Load().name }

// VecDotType is the activation format the dot product of weight type t expects: Q8_K for the K-quants,
// Q8_0 for Q8_0 and Q4_0, and F32 for the float types (and for any type that is not Supported).
func VecDotType(t Type) Type { return infos[t].vecDot } // F32 is the zero Type

// DotFunc returns the dot product of a row of n elements of weight type t with an activation row in
// VecDotType(t) form (for float weights: float32 little-endian bytes, as QuantizeRow(F32, ...) writes).
// Fetch it once per matrix: the returned function checks the lengths and calls the kernel, with no switch
// on the type per row. DotFunc returns nil when t is not Supported. The function panics when the slices do
// not hold n elements, a bug in the caller.
func DotFunc(t Type) func(w, a []byte, n int) float32 { return infos[t].dot }

// Dot is the dot product of a row w of n elements of type t with the activation row a in VecDotType(t)
// form. It panics when t is not Supported or the lengths are wrong; check Supported when loading a model.
func Dot(t Type, w, a []byte, n int) float32 {
	f := DotFunc(t)
	if f == nil {
		panic(fmt.Sprintf("quant: no dot product for %s weights", t))
	}
	return f(w, a, n)
}

// MatVec computes out[r] = Dot(t, row r of w, a, n) for the len(out) consecutive rows of n elements in w.
// a is the activation in VecDotType(t) form. Callers parallelise by handing each worker a range of rows.
func MatVec(t Type, w, a []byte, n int, out []float32) error {
	f := DotFunc(t)
	if f == nil {
		return fmt.Errorf("matvec: no dot product for %s weights", t)
	}
	rowBytes, err := t.RowBytes(n)
	if err != nil {
		return fmt.Errorf("matvec: %w", err)
	}
	if len(w) != rowBytes*len(out) {
		return fmt.Errorf("matvec: %d rows of %d %s elements take %d bytes, got %d", len(out), n, t, rowBytes*len(out), len(w))
	}
	if err := checkRow(VecDotType(t), n, len(a)); err != nil {
		return fmt.Errorf("matvec: activation: %w", err)
	}
	for r := range out {
		out[r] = f(w[r*rowBytes:(r+1)*rowBytes], a, n)
	}
	return nil
}

// blocks checks a dot product's arguments: n must be a whole number of blocks of blk elements, and w and a
// must hold exactly n elements at wBytes and aBytes per block. It returns the block count.
func blocks(name string, w, a []byte, n, blk, wBytes, aBytes int) int {
	nb := n / blk
	if n < 0 || n%blk != 0 || len(w) != nb*wBytes || len(a) != nb*aBytes {
		panic(fmt.Sprintf("quant: %s of %d elements with %d weight bytes and %d activation bytes (want %d and %d)",
			name, n, len(w), len(a), nb*wBytes, nb*aBytes))
	}
	return nb
}

// DotQ4KQ8K is the dot product of a Q4_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func DotQ4KQ8K(w, a []byte, n int) float32 {
	nb := blocks("DotQ4KQ8K", w, a, n, QK_K, q4KBytes, q8KBytes)
	return active.Load().q4K(w, a, nb)
}

// DotQ5KQ8K is the dot product of a Q5_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func DotQ5KQ8K(w, a []byte, n int) float32 {
	nb := blocks("DotQ5KQ8K", w, a, n, QK_K, q5KBytes, q8KBytes)
	return active.Load().q5K(w, a, nb)
}

// DotQ6KQ8K is the dot product of a Q6_K row with a Q8_K row, both of n elements. It panics when n is not a
// multiple of 256 or the slices do not hold exactly n elements.
func DotQ6KQ8K(w, a []byte, n int) float32 {
	nb := blocks("DotQ6KQ8K", w, a, n, QK_K, q6KBytes, q8KBytes)
	return active.Load().q6K(w, a, nb)
}

// DotQ8_0Q8_0 is the dot product of a Q8_0 weight row with a Q8_0 activation row of n elements. The
// activation quants must lie in [-127, 127], as QuantizeRowQ8_0 writes them (the AVX2 kernel, like
// ggml's, moves the weight's sign onto the activation). It panics when n is not a multiple of 32 or the
// slices do not hold exactly n elements.
func DotQ8_0Q8_0(w, a []byte, n int) float32 {
	nb := blocks("DotQ8_0Q8_0", w, a, n, 32, q8_0Bytes, q8_0Bytes)
	return active.Load().q8_0(w, a, nb)
}

// DotQ4_0Q8_0 is the dot product of a Q4_0 row with a Q8_0 activation row (quants in [-127, 127], see
// DotQ8_0Q8_0), both of n elements. It panics when n is not a multiple of 32 or the slices do not hold
// exactly n elements.
func DotQ4_0Q8_0(w, a []byte, n int) float32 {
	nb := blocks("DotQ4_0Q8_0", w, a, n, 32, q4_0Bytes, q8_0Bytes)
	return active.Load().q4_0(w, a, nb)
}

// DotF32 is Σ x[i]·y[i]. It panics when the lengths differ.
func DotF32(x, y []float32) float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("quant: DotF32 of %d and %d elements", len(x), len(y)))
	}
	return active.Load().f32(x, y)
}

// DotF16F32 is the dot product of a row of len(x) F16 values (2 bytes each, little-endian) with x. It
// panics when len(w) != 2·len(x).
func DotF16F32(w []byte, x []float32) float32 {
	if len(w) != 2*len(x) {
		panic(fmt.Sprintf("quant: DotF16F32 of %d weight bytes and %d elements", len(w), len(x)))
	}
	return active.Load().f16(w, x)
}

func dotF16F32Generic(w []byte, x []float32) float32 {
	var s0, s1 float32
	for i := 0; i+1 < len(x); i += 2 {
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
		s1 += F16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * x[i+1]
	}
	if len(x)%2 == 1 {
		i := len(x) - 1
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1
}

// DotBF16F32 is the dot product of a row of len(x) BF16 values (2 bytes each, little-endian) with x. It
// panics when len(w) != 2·len(x).
func DotBF16F32(w []byte, x []float32) float32 {
	if len(w) != 2*len(x) {
		panic(fmt.Sprintf("quant: DotBF16F32 of %d weight bytes and %d elements", len(w), len(x)))
	}
	return active.Load().bf16(w, x)
}

func dotBF16F32Generic(w []byte, x []float32) float32 {
	var s0, s1 float32
	for i := 0; i+1 < len(x); i += 2 {
		s0 += BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
		s1 += BF16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * x[i+1]
	}
	if len(x)%2 == 1 {
		i := len(x) - 1
		s0 += BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1
}

// The byte forms behind DotFunc for float weights: the activation is float32 little-endian bytes.

func dotF32Bytes(w, a []byte, n int) float32 {
	blocks("Dot F32", w, a, n, 1, 4, 4)
	return active.Load().f32Bytes(w, a, n)
}

func dotF16Bytes(w, a []byte, n int) float32 {
	blocks("Dot F16", w, a, n, 1, 2, 4)
	return active.Load().f16Bytes(w, a, n)
}

func dotBF16Bytes(w, a []byte, n int) float32 {
	blocks("Dot BF16", w, a, n, 1, 2, 4)
	return active.Load().bf16Bytes(w, a, n)
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
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * f32At(a[4*i:])
		s1 += F16ToF32(binary.LittleEndian.Uint16(w[2*i+2:])) * f32At(a[4*i+4:])
	}
	for ; i < n; i++ {
		s0 += F16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * f32At(a[4*i:])
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
