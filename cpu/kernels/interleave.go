package kernels

import (
	"fmt"

	"smolchat/model/quant"
)

// Interleaved matrices. The CPU backend keeps its Q4_K and Q6_K matrices in a layout of its own, made at
// load time: rows in groups of four, each group block by block, and within a block the four rows' quant
// bytes interleaved eight at a time, so that one 32-byte load feeds all four rows. A single token (the
// matrix-vector product of generation) then costs about half of what four separate dot products do,
// the few tokens of a decode step of several sequences share each block's load and unpacking, and a
// longer batch unpacks the groups it needs straight into the packed layout of matmul.go. An interleaved
// block of four rows:
//
//	Q4_K, 608 bytes: qs [0, 512) (qword j of each row's 128 bytes at 32j + 8r) · the decoded 6-bit scales
//	                 as bytes, rows 0|1 then 2|3 [512, 544) · the mins, alike [544, 576) · d, dmin of
//	                 each row as stored (f16) [576, 592) · padding to a multiple of 32 [592, 608)
//	Q6_K, 864 bytes: ql [0, 512) and qh [512, 768), interleaved alike · the int8 scales 0-7 of rows 0|1,
//	                 2|3 [768, 800) · scales 8-15 [800, 832) · d of each row (f16) [832, 840) · padding
//
// Every kernel on interleaved matrices computes exactly what the dot product of the original rows does.

const (
	q4KInterleavedBytes = 608 // one block of four interleaved Q4_K rows
	q6KInterleavedBytes = 864 // one block of four interleaved Q6_K rows
)

// multiRow is one weight type's kernels on four rows at a time, in one implementation: the packed
// products of matmul.go and the interleaved layout. A nil function is a kernel the implementation lacks.
type multiRow struct {
	blockBytes  int // one interleaved block of four rows
	packedBytes int // one packed block of four rows
	pack        func(w []byte, ldw int, dst []byte, nb int)
	interleave  func(w []byte, ldw int, dst []byte, nb int)
	unpack      func(src, dst []byte, nb int)
	gemv        func(w, a []byte, out []float32, nb, groups int)
	gemm        func(p, a []byte, lda int, out []float32, ldo, nb, groups int)
	gemvs       []func(w, a []byte, lda int, out []float32, ldo, nb, groups int) // by activation rows
	fewMax      int                                                              // see impl
}

func q4KMultiRow(k *impl) multiRow {
	return multiRow{q4KInterleavedBytes, q4KPackedBytes, k.q4KPack, k.q4KInterleave, k.q4KUnpack, k.q4KGemv, k.q4KPacked, k.q4KGemvs, k.fewMax}
}

func q6KMultiRow(k *impl) multiRow {
	return multiRow{q6KInterleavedBytes, q6KPackedBytes, k.q6KPack, k.q6KInterleave, k.q6KUnpack, k.q6KGemv, k.q6KPacked, k.q6KGemvs, k.fewMax}
}

// interleavedKernels returns k's kernels for t, or false when k cannot interleave t (the generic kernels
// never can).
func (k *impl) interleavedKernels(t quant.Type) (multiRow, bool) {
	if weights[t].multiRow == nil {
		return multiRow{}, false
	}
	il := weights[t].multiRow(k)
	return il, il.interleave != nil
}

// Interleaves reports whether matrices of type t can be interleaved with the kernels in use: Q4_K and
// Q6_K on CPUs with AVX2. Check it once when loading.
func Interleaves(t quant.Type) bool { return active.interleaves(t) }

// interleaves is Interleaves on the kernels k.
func (k *impl) interleaves(t quant.Type) bool {
	_, ok := k.interleavedKernels(t)
	return ok
}

// InterleavedSize is the size of rows rows of n elements of type t once interleaved. rows must be a
// multiple of 4 and n of 256.
func InterleavedSize(t quant.Type, rows, n int) (int, error) {
	return active.interleavedSize(t, rows, n)
}

// interleavedSize is InterleavedSize on the kernels k.
func (k *impl) interleavedSize(t quant.Type, rows, n int) (int, error) {
	il, ok := k.interleavedKernels(t)
	if !ok {
		return 0, fmt.Errorf("interleave: %s matrices cannot be interleaved on this CPU", t)
	}
	if rows < 0 || rows%4 != 0 || n < 0 || n%quant.QK_K != 0 {
		return 0, fmt.Errorf("interleave: %d rows of %d elements: want a multiple of 4 rows of a multiple of %d elements", rows, n, quant.QK_K)
	}
	return rows / 4 * n / quant.QK_K * il.blockBytes, nil
}

// Interleave rearranges the consecutive rows of n elements of type t in src, a multiple of four of them,
// into dst, which must be InterleavedSize bytes.
func Interleave(t quant.Type, src []byte, n int, dst []byte) error {
	return active.interleave(t, src, n, dst)
}

// interleave is Interleave on the kernels k.
func (k *impl) interleave(t quant.Type, src []byte, n int, dst []byte) error {
	rb, err := t.RowBytes(n)
	if err != nil {
		return fmt.Errorf("interleave: %w", err)
	}
	if rb == 0 || len(src)%(4*rb) != 0 {
		return fmt.Errorf("interleave: %d bytes are not a whole number of groups of four %s rows of %d elements", len(src), t, n)
	}
	rows := len(src) / rb
	size, err := k.interleavedSize(t, rows, n)
	if err != nil {
		return err
	}
	if len(dst) != size {
		return fmt.Errorf("interleave: %d %s rows of %d elements take %d bytes interleaved, got %d", rows, t, n, size, len(dst))
	}
	il, _ := k.interleavedKernels(t)
	nb := n / quant.QK_K
	for g := 0; g < rows/4; g++ {
		il.interleave(src[g*4*rb:], rb, dst[g*nb*il.blockBytes:], nb)
	}
	return nil
}

// InterleavedMatMulFunc returns a function that multiplies rows of an interleaved matrix of type t by a
// batch of activation rows: w holds rows rows (a multiple of 4, from a group boundary) of n elements as
// Interleave wrote them, a holds cols activation rows in Q8_K form, and out[j·ldo+r] is set to the dot
// product of row r with activation row j, bit for bit what DotFunc(t) computes on the original rows.
// One activation row runs the matrix-vector kernel, two to SmallBatch the small-batch kernels (each block
// unpacked once into registers for all the rows; any count where the CPU has AVX-512, on which they cost
// less per row than the unpacked kernels); more are multiplied four at a time after unpacking the rows
// into scratch (nil allocates). It returns nil when t cannot be interleaved; the
// function panics when the sizes do not match, a bug in the caller.
func InterleavedMatMulFunc(t quant.Type) func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
	return active.interleavedMatMulFunc(t)
}

// interleavedMatMulFunc is InterleavedMatMulFunc on the kernels k.
func (k *impl) interleavedMatMulFunc(t quant.Type) func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
	il, ok := k.interleavedKernels(t)
	if !ok {
		return nil
	}
	return func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
		ab, err := quant.Q8_K.RowBytes(n)
		if err != nil || rows < 0 || rows%4 != 0 || cols < 0 || ldo < rows ||
			len(w) < rows/4*n/quant.QK_K*il.blockBytes || len(a) < cols*ab || (cols > 0 && len(out) < (cols-1)*ldo+rows) {
			panic(fmt.Sprintf("kernels: interleaved matmul of %d %s rows by %d rows of %d elements with %d, %d and %d bytes/floats (ldo %d)",
				rows, t, cols, n, len(w), len(a), len(out), ldo))
		}
		if rows == 0 || cols == 0 {
			return
		}
		if n == 0 {
			for j := range cols {
				clear(out[j*ldo:][:rows])
			}
			return
		}
		il.mul(w, a, ab, cols, out, ldo, n/quant.QK_K, rows/4, scratch)
	}
}

// mul multiplies groups interleaved groups of nb blocks at w with cols ≥ 1 activation rows ab bytes
// apart (see InterleavedMatMulFunc, which checked the sizes).
func (il multiRow) mul(w, a []byte, ab, cols int, out []float32, ldo, nb, groups int, scratch *Scratch) {
	if cols > 1 && cols <= il.fewMax && len(il.gemvs) > 0 {
		il.few(w, a, ab, cols, out, ldo, nb, groups)
		return
	}
	j := 0
	if cols >= packCols {
		if scratch == nil {
			scratch = new(Scratch)
		}
		// Group by group: its unpacked rows stay in the L1 cache (the L2 for long rows) while the
		// activation rows pass over them four at a time.
		p := scratch.bytes(nb * il.packedBytes)
		for g := range groups {
			il.unpack(w[g*nb*il.blockBytes:], p, nb)
			for j = 0; j+packCols <= cols; j += packCols {
				il.gemm(p, a[j*ab:], ab, out[j*ldo+4*g:], ldo, nb, 1)
			}
		}
	}
	for ; j < cols; j++ {
		il.gemv(w, a[j*ab:], out[j*ldo:], nb, groups)
	}
}

// SmallBatch is the most activation rows InterleavedMatMulFunc multiplies with the 32-byte small-batch
// kernels (the tokens of a decode step of several sequences), which stream the weights from memory once
// as the matrix-vector kernel does; more go through the unpacked multi-row kernel, whose unpacking then
// pays off (the 64-byte kernels take any count: impl.fewMax). The CPU backend streams a product of up to
// SmallBatch rows.
const SmallBatch = 8

// fewSpan is how many groups of rows the passes of a product with more activation rows than one kernel
// takes share: the later passes find the groups in the L2 cache (about 200 KB for
// rows of 11008 elements).
const fewSpan = 8

// few multiplies groups interleaved groups of nb blocks at w with cols activation rows (2 to fewMax)
// ab bytes apart, in passes of as many rows as a small-batch kernel takes: each pass reads a block of
// weights once and unpacks it once for all its rows, and computes exactly what gemv does for each.
func (il multiRow) few(w, a []byte, ab, cols int, out []float32, ldo, nb, groups int) {
	span := groups
	if cols >= len(il.gemvs) || il.gemvs[cols] == nil {
		span = fewSpan
	}
	gb := nb * il.blockBytes
	for g0 := 0; g0 < groups; g0 += span {
		g := min(span, groups-g0)
		for j := 0; j < cols; {
			c := min(cols-j, len(il.gemvs)-1)
			for c > 1 && il.gemvs[c] == nil {
				c--
			}
			if c == 1 {
				il.gemv(w[g0*gb:], a[j*ab:], out[j*ldo+4*g0:], nb, g)
			} else {
				il.gemvs[c](w[g0*gb:], a[j*ab:], ab, out[j*ldo+4*g0:], ldo, nb, g)
			}
			j += c
		}
	}
}
