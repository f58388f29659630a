package kernels

import (
	"math"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// TestDotF16Rows checks DotF16Rows against one dotF16F32 per (row, vector), for each kernel set: four
// vectors and fewer, lengths with and without a tail after the last multiple of 8, strides wider than
// the data, and sums added to what out held.
func TestDotF16Rows(t *testing.T) {
	r := quanttest.Rand(9)
	for _, c := range []struct{ rows, ldw, nx, ldx, n, ldo int }{
		{5, 128, 4, 64, 64, 5}, {3, 600, 4, 300, 256, 7}, {7, 26, 4, 13, 13, 9}, {2, 10, 3, 5, 5, 2},
		{4, 512, 6, 256, 251, 4}, {1, 2, 1, 1, 1, 1}, {3, 16, 4, 8, 8, 3},
	} {
		xs := quanttest.Gaussian(r, c.rows*c.ldw/2, 1)
		w := make([]byte, c.rows*c.ldw)
		if err := quant.QuantizeRow(quant.F16, xs, w); err != nil {
			t.Fatal(err)
		}
		x := quanttest.Gaussian(r, c.nx*c.ldx, 1)
		init := quanttest.Gaussian(r, c.nx*c.ldo, 1)
		for _, k := range kernelSets() {
			out := append([]float32(nil), init...)
			k.dotF16Rows(w, c.ldw, c.rows, x, c.ldx, c.nx, c.n, out, c.ldo)
			for j := 0; j < c.nx; j++ {
				for i := 0; i < c.ldo; i++ {
					want := init[j*c.ldo+i]
					var mag float64
					if i < c.rows {
						want += k.dotF16F32(w[i*c.ldw:][:2*c.n], x[j*c.ldx:][:c.n])
						for e := 0; e < c.n; e++ {
							mag += math.Abs(float64(quant.F16ToF32(uint16(w[i*c.ldw+2*e])|uint16(w[i*c.ldw+2*e+1])<<8)) * float64(x[j*c.ldx+e]))
						}
					}
					if got := out[j*c.ldo+i]; math.Abs(float64(got-want)) > 1e-6*(mag+math.Abs(float64(init[j*c.ldo+i]))) {
						t.Errorf("%+v (%s): out[%d][%d] = %.7g, want %.7g", c, k.name, j, i, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkDotF16Rows(b *testing.B) {
	r := quanttest.Rand(2)
	const rows, n = 256, 128
	w := make([]byte, rows*2*n)
	if err := quant.QuantizeRow(quant.F16, quanttest.Gaussian(r, rows*n, 1), w); err != nil {
		b.Fatal(err)
	}
	x := quanttest.Gaussian(r, 4*n, 1)
	out := make([]float32, 4*rows)
	b.SetBytes(int64(len(w)))
	for b.Loop() {
		DotF16Rows(w, 2*n, rows, x, n, 4, n, out, rows)
	}
}
