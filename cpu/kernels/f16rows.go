package kernels

import "fmt"

// DotF16Rows adds to out[j·ldo + r], for r < rows and j < nx, the dot product of the n F16 values of row
// r of w (rows ldw bytes apart) with the n floats of vector j of x (vectors ldx floats apart). It is the
// shape of attention: rows are cached keys (or, stored transposed, value elements), vectors are the
// query heads (or their softmax weights) that share them. With AVX2 each row is converted once for four
// vectors at a time. It panics when the slices are too short, a bug in the caller.
func DotF16Rows(w []byte, ldw, rows int, x []float32, ldx, nx, n int, out []float32, ldo int) {
	active.dotF16Rows(w, ldw, rows, x, ldx, nx, n, out, ldo)
}

// dotF16Rows is DotF16Rows on the kernels k.
func (k *impl) dotF16Rows(w []byte, ldw, rows int, x []float32, ldx, nx, n int, out []float32, ldo int) {
	if rows < 0 || nx < 0 || n < 0 || (rows > 0 && (ldw < 2*n || len(w) < (rows-1)*ldw+2*n)) ||
		(nx > 0 && (ldx < n || len(x) < (nx-1)*ldx+n || ldo < rows || len(out) < (nx-1)*ldo+rows)) {
		panic(fmt.Sprintf("kernels: DotF16Rows of %d rows (stride %d, %d bytes) by %d vectors (stride %d, %d floats) of %d into %d floats (stride %d)",
			rows, ldw, len(w), nx, ldx, len(x), n, len(out), ldo))
	}
	if rows == 0 || nx == 0 {
		return
	}
	j := 0
	if rows4 := k.f16Rows4; rows4 != nil && n >= 8 {
		n8 := n &^ 7
		for ; j+4 <= nx; j += 4 {
			rows4(w, ldw, rows, x[j*ldx:], ldx, n8, out[j*ldo:], ldo)
		}
		if n8 < n {
			for jj := 0; jj < j; jj++ {
				for r := range rows {
					out[jj*ldo+r] += k.dotF16F32(w[r*ldw+2*n8:][:2*(n-n8)], x[jj*ldx+n8:][:n-n8])
				}
			}
		}
	}
	for ; j < nx; j++ {
		for r := range rows {
			out[j*ldo+r] += k.dotF16F32(w[r*ldw:][:2*n], x[j*ldx:][:n])
		}
	}
}
