// Package kernels holds the CPU backend's compute kernels on ggml's weight formats: the dot products of
// a weight row with a quantized activation row, the multi-row products of a prompt's batches, the
// interleaved layout of generation, the half-float loops of attention, and the fast Q8_K quantizer of the
// activations. model/quant says what the formats are (block layouts, dequantizers, reference
// quantizers); this package computes with them.
//
// Every kernel runs in AVX2 assembly on amd64 CPUs with AVX2, FMA and F16C, and in portable Go elsewhere
// and in builds with the purego tag. Both compute the same exact integer sums per block; they differ only
// in the order of the float additions. The tests compare each assembly kernel with its Go twin and with
// the dequantized rows. The kernels on interleaved matrices (one token, or the few of a decode step of
// several sequences; the 2-4-token Q4_K ones and the four-token Q6_K one also on AVX-512 where the CPU
// has it) exist only in assembly, as does the layout, and their tests compare them bit for bit with the
// dot products of the original rows.
// Everything here is safe for concurrent use.
package kernels

import (
	"fmt"

	"smolchat/model/quant"
)

// The CPU backend's matrix-vector products reduce to dot products of one weight row with one activation
// row. As in llama.cpp, the activation is first quantized once per row to the 8-bit partner format of the
// weight type (VecDotType), so that the inner loops are integer multiply-adds over whole blocks, scaled
// by the blocks' float factors at the end:
//
//	kernels.QuantizeActivation(kernels.VecDotType(t), x, act) // once per activation vector
//	dot := kernels.DotFunc(t)                                 // once per matrix
//	for r := range out { out[r] = dot(w[r*rowBytes:(r+1)*rowBytes], act, n) }

// weightKernels is the CPU's column of quant's table of types: what this package computes with a weight
// type. The block layouts are quant's.
type weightKernels struct {
	// vecDot is the activation format of the dot product (VecDotType).
	vecDot quant.Type
	// dot returns the dot product of a weight row with an activation row on the kernels k (DotFunc): a
	// method value, called with no more indirection than the kernel itself.
	dot func(k *impl) rowDot
	// multiRow returns the multi-row kernels of an implementation (matmul.go, interleave.go); nil for
	// the types that have only the dot product.
	multiRow func(k *impl) multiRow
}

// weights lists the weight types the CPU computes with. Every type quant.Supported accepts has an entry
// (TestEveryWeightTypeHasKernels).
var weights = map[quant.Type]weightKernels{
	quant.F32:  {vecDot: quant.F32, dot: func(k *impl) rowDot { return k.dotF32Bytes }},
	quant.F16:  {vecDot: quant.F32, dot: func(k *impl) rowDot { return k.dotF16Bytes }},
	quant.BF16: {vecDot: quant.F32, dot: func(k *impl) rowDot { return k.dotBF16Bytes }},
	quant.Q4_0: {vecDot: quant.Q8_0, dot: func(k *impl) rowDot { return k.dotQ4_0Q8_0 }},
	quant.Q8_0: {vecDot: quant.Q8_0, dot: func(k *impl) rowDot { return k.dotQ8_0Q8_0 }},
	quant.Q4_K: {vecDot: quant.Q8_K, dot: func(k *impl) rowDot { return k.dotQ4KQ8K }, multiRow: q4KMultiRow},
	quant.Q5_K: {vecDot: quant.Q8_K, dot: func(k *impl) rowDot { return k.dotQ5KQ8K }},
	quant.Q6_K: {vecDot: quant.Q8_K, dot: func(k *impl) rowDot { return k.dotQ6KQ8K }, multiRow: q6KMultiRow},
}

// activations are the encoders of the activation formats, for QuantizeActivation: the fast Q8_K quantizer
// here (on the kernels k), quant's reference quantizer for Q8_0 (prompt rows are few next to the
// weights), and float32 bytes.
var activations = map[quant.Type]func(k *impl, x []float32, dst []byte) error{
	quant.F32:  func(_ *impl, x []float32, dst []byte) error { return quant.QuantizeRow(quant.F32, x, dst) },
	quant.Q8_0: func(_ *impl, x []float32, dst []byte) error { quant.QuantizeRowQ8_0(x, dst); return nil },
	quant.Q8_K: func(k *impl, x []float32, dst []byte) error { k.quantizeRowQ8K(x, dst); return nil },
}

// impl is one implementation of the kernels. Each function receives slices whose lengths were checked
// against nb, the number of blocks (or elements, for the float kernels). The package's functions are
// methods on an impl that run its kernels; the exported ones call them on active, and the tests call
// them on generic and accelerated alike, so that both sets are tested with no state to switch.
type impl struct {
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
	// q4KGemvs and q6KGemvs are the matrix-vector kernels for a few activation rows lda bytes apart:
	// entry c multiplies groups interleaved groups with c rows, writing out[j·ldo + 4·g + r], bit for
	// bit what gemv writes for each row; nil entries (and a nil slice) are counts without a kernel.
	q4KGemvs, q6KGemvs []func(w, a []byte, lda int, out []float32, ldo, nb, groups int)
	// fewMax is the most activation rows an interleaved product gives the small-batch kernels (more go
	// through unpack and packed): SmallBatch, or no limit where the small-batch kernels cost less per
	// row than unpacking and the packed kernels at any count (AVX-512's, BenchmarkInterleavedFew).
	fewMax int

	// q8K is quant.QuantizeRowQ8K for nb ≥ 1 blocks, nil for the Go implementation; for finite inputs
	// it writes the same bytes.
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

var generic = &impl{
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

// active is the implementation the exported functions run: the fastest this CPU supports (see
// accelerated, set per architecture). init sets it; nothing changes it afterwards.
var active *impl

func init() {
	if accelerated != nil {
		active = accelerated
	} else {
		active = generic
	}
}

// VecDotType is the activation format the dot product of weight type t expects: Q8_K for the K-quants,
// Q8_0 for Q8_0 and Q4_0, and F32 for the float types (and for any type without kernels).
func VecDotType(t quant.Type) quant.Type { return weights[t].vecDot } // F32 is the zero Type

// DotFunc returns the dot product of a row of n elements of weight type t with an activation row in
// VecDotType(t) form (for float weights: float32 little-endian bytes, as QuantizeActivation(F32, ...)
// writes). Fetch it once per matrix: the returned function checks the lengths and calls the kernel, with
// no switch on the type per row. DotFunc returns nil for a type without kernels. The function panics
// when the slices do not hold n elements, a bug in the caller.
func DotFunc(t quant.Type) func(w, a []byte, n int) float32 { return active.dotFunc(t) }

// rowDot is the dot product of a weight row with an activation row of n elements.
type rowDot = func(w, a []byte, n int) float32

// dotFunc is DotFunc on the kernels k.
func (k *impl) dotFunc(t quant.Type) rowDot {
	dot := weights[t].dot
	if dot == nil {
		return nil
	}
	return dot(k)
}

// QuantizeActivation encodes the activation row x in format t (a VecDotType) into dst, which must be
// exactly that many bytes (a wrong length panics, a bug in the caller). F32 activations must be finite;
// the quantized formats take any input, as llama.cpp's do.
func QuantizeActivation(t quant.Type, x []float32, dst []byte) error {
	return active.quantizeActivation(t, x, dst)
}

// quantizeActivation is QuantizeActivation on the kernels k.
func (k *impl) quantizeActivation(t quant.Type, x []float32, dst []byte) error {
	enc := activations[t]
	if enc == nil {
		return fmt.Errorf("kernels: %s is not an activation format (%s are)", t, quant.Names(func(t quant.Type) bool { return activations[t] != nil }))
	}
	return enc(k, x, dst)
}

// quantizeRowQ8K is quant.QuantizeRowQ8K, in assembly where k has it.
func (k *impl) quantizeRowQ8K(x []float32, dst []byte) {
	if q8K := k.q8K; q8K != nil && len(x) >= quant.QK_K && len(x)%quant.QK_K == 0 && len(dst) == len(x)/quant.QK_K*quant.Q8KBytes {
		q8K(x, dst, len(x)/quant.QK_K)
		return
	}
	quant.QuantizeRowQ8K(x, dst) // the reference, which also panics on wrong lengths
}

// dot is the dot product of a row w of n elements of type t with the activation row a in VecDotType(t)
// form, on the kernels k. It panics when t has no kernels or the lengths are wrong.
func (k *impl) dot(t quant.Type, w, a []byte, n int) float32 {
	f := k.dotFunc(t)
	if f == nil {
		panic(fmt.Sprintf("kernels: no dot product for %s weights", t))
	}
	return f(w, a, n)
}

// matVec computes out[r] = k.dot(t, row r of w, a, n) for the len(out) consecutive rows of n elements
// in w.
func (k *impl) matVec(t quant.Type, w, a []byte, n int, out []float32) error {
	f := k.dotFunc(t)
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
	at := VecDotType(t)
	if ab, err := at.RowBytes(n); err != nil {
		return fmt.Errorf("matvec: activation: %w", err)
	} else if ab != len(a) {
		return fmt.Errorf("matvec: activation: %d %s elements take %d bytes, got %d", n, at, ab, len(a))
	}
	for r := range out {
		out[r] = f(w[r*rowBytes:(r+1)*rowBytes], a, n)
	}
	return nil
}
