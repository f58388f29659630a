package kernels

import (
	"fmt"
	"unsafe"

	"smolchat/model/quant"
)

// The multi-row products. A prompt multiplies every weight matrix by many activation rows at once; doing
// that as one dot product per (weight row, activation row) pair would unpack each weight block again for
// every token. Instead, where this CPU has the kernels (Q4_K and Q6_K on AVX2), MatMulFunc's function
// first repacks the weight rows it is given, four at a time, into a layout made for the multiplication:
// codes unpacked to bytes and interleaved eight at a time across the four rows, the sub-block scales
// expanded to one 16-bit word per lane, the block scales as floats. Packed block of four rows:
//
//	Q4_K, 1472 bytes: codes [0, 1024) · scale words per 32-element sub-block [1024, 1280) ·
//	                  mins per pair of sub-blocks, against the Q8_K block sums [1280, 1408) ·
//	                  d0 d1 -dmin0 -dmin1 | d2 d3 -dmin2 -dmin3 [1408, 1440) and its halves swapped [1440, 1472)
//	Q6_K, 1696 bytes: codes [0, 1024) · scale words per 16-element group [1024, 1536) ·
//	                  -32·scales against the block sums [1536, 1664) · d0 d1 d0 d1 | d2 d3 d2 d3 [1664, 1696)
//
// The kernel then takes four weight rows against four tokens per pass with one 32-byte multiply per eight
// codes of four rows, and no unpacking. Repacking costs about as much as one dot product per row, once per
// call, so a call should cover many tokens (the CPU backend's prefill batches are 64).
//
// Every kernel computes each dot product with the same arithmetic: per block, the integer sums exactly,
// then acc = fma(d·da, float32(sumi), acc) and, for Q4_K, acc = fma(-dmin·da, float32(summ), acc). The
// multi-row and the single-row kernels therefore agree to the bit, and a result never depends on how a
// prompt was split into batches.

const (
	q4KPackedBytes = 1472 // one block of four repacked Q4_K rows
	q6KPackedBytes = 1696 // one block of four repacked Q6_K rows
	packRows       = 4    // weight rows per packed group
	packCols       = 4    // activation rows per pass of the packed kernels
)

// Scratch is memory a MatMulFunc function reuses between calls for the repacked weights. It is not safe
// for concurrent use: give each goroutine its own. The zero value is ready to use.
type Scratch struct {
	b []byte
}

// bytes returns n bytes of s aligned to 64, so that the kernels' 32-byte loads never straddle a cache line.
func (s *Scratch) bytes(n int) []byte {
	if cap(s.b) < n+64 {
		s.b = make([]byte, n+64)
	}
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(s.b[:1]))) & 63)
	return s.b[off : off+n]
}

// MatMulFunc returns a function that multiplies a block of weight rows of type t by a batch of activation
// rows: for r < rows and j < cols it sets out[j·ldo+r] to the dot product of weight row r (the rows
// consecutive rows of n elements in w) with activation row j (the cols consecutive rows of n elements, in
// VecDotType(t) form, in a), bit for bit what DotFunc(t) computes. scratch holds the repacked weights
// between calls; it may be nil, which costs an allocation per call.
//
// Q4_K and Q6_K weights on AVX2 go through the repacked kernels when there are at least four activation
// rows; other types, the last rows%4 weight rows and cols%4 activation rows, and the portable build use
// the dot product. MatMulFunc returns nil for a type without kernels. The function panics when the slices
// are too short for the sizes given or ldo < rows, a bug in the caller.
func MatMulFunc(t quant.Type) func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
	return active.matMulFunc(t)
}

// matMulFunc is MatMulFunc on the kernels k.
func (k *impl) matMulFunc(t quant.Type) func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
	dot := k.dotFunc(t)
	if dot == nil {
		return nil
	}
	var multi multiRow // the zero value, without pack, where t has only the dot product
	if f := weights[t].multiRow; f != nil {
		multi = f(k)
	}
	at := VecDotType(t)
	return func(w, a []byte, n, rows, cols int, out []float32, ldo int, scratch *Scratch) {
		wb, err := t.RowBytes(n)
		if err != nil {
			panic(fmt.Sprintf("kernels: matmul of %s rows: %v", t, err))
		}
		ab, _ := at.RowBytes(n) // n is a whole number of blocks of either type
		if rows < 0 || cols < 0 || ldo < rows || len(w) < rows*wb || len(a) < cols*ab ||
			(cols > 0 && len(out) < (cols-1)*ldo+rows) {
			panic(fmt.Sprintf("kernels: matmul of %d %s rows by %d %s rows of %d elements with %d, %d and %d bytes/floats (ldo %d)",
				rows, t, cols, at, n, len(w), len(a), len(out), ldo))
		}
		r0, j0 := 0, 0 // the rows and columns the packed kernels covered
		if multi.pack != nil && n > 0 && rows >= packRows && cols >= packCols {
			if scratch == nil {
				scratch = new(Scratch)
			}
			nb, groups := n/quant.QK_K, rows/packRows
			gb := nb * multi.packedBytes
			p := scratch.bytes(groups * gb)
			for g := range groups {
				multi.pack(w[g*packRows*wb:], wb, p[g*gb:], nb)
			}
			for j0 = 0; j0+packCols <= cols; j0 += packCols {
				multi.gemm(p, a[j0*ab:], ab, out[j0*ldo:], ldo, nb, groups)
			}
			r0 = groups * packRows
		}
		for j := range cols {
			aj := a[j*ab:][:ab]
			o := out[j*ldo:][:rows]
			lo := r0 // rows below r0 are done for the columns below j0
			if j >= j0 {
				lo = 0
			}
			for r := lo; r < rows; r++ {
				o[r] = dot(w[r*wb:][:wb], aj, n)
			}
		}
	}
}
