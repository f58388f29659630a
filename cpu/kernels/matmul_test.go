package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// matMulCase is one shape for the MatMulFunc tests: rows weight rows and cols activation rows of n
// elements, written with output stride ldo.
type matMulCase struct{ n, rows, cols, ldo int }

var matMulCases = []matMulCase{
	{256, 4, 4, 4}, {512, 3, 5, 7}, {2048, 16, 8, 16}, {768, 9, 11, 13}, {256, 2, 3, 2}, {1024, 0, 4, 0},
	{256, 8, 1, 8}, {11008, 4, 4, 4},
}

// matMulInputs returns random weights (every code used) and activations for c. For Q8_K activations
// the first block of the first row is saturated at -128 and 127, which no quantizer writes but the
// kernels must handle; Q8_0 activations stay within ±127, the documented input range of their kernels.
func matMulInputs(t testing.TB, typ quant.Type, c matMulCase, seed uint64) (w, a []byte) {
	r := quanttest.Rand(seed)
	at := VecDotType(typ)
	switch typ {
	case quant.F32, quant.F16, quant.BF16:
		w = make([]byte, c.rows*mustRowBytes(t, typ, c.n))
		if err := quant.QuantizeRow(typ, quanttest.Gaussian(r, c.rows*c.n, 1), w); err != nil {
			t.Fatal(err)
		}
		return w, quanttest.FloatBytes(quanttest.Gaussian(r, c.cols*c.n, 1))
	}
	w = quanttest.RandomBlocks(r, typ, c.rows*c.n/typ.BlockSize())
	a = quanttest.RandomBlocks(r, at, c.cols*c.n/at.BlockSize())
	switch at {
	case quant.Q8_K:
		if len(a) >= quant.Q8KBytes {
			for i := 4; i < 260; i++ {
				a[i] = byte(0x80 - i%2)
			}
			fixBsums(at, a[:quant.Q8KBytes])
		}
	case quant.Q8_0:
		for i := range a {
			if i%quant.Q8_0Bytes >= 2 && a[i] == 0x80 {
				a[i] = 0x81
			}
		}
	}
	return w, a
}

// TestMatMulMatchesDot checks that MatMulFunc computes exactly what Dot does, for every supported type
// and kernel set, including the edges: weight rows and activation rows beyond the last multiple of four,
// an output stride wider than the rows, one activation row, and no weight rows. Nothing outside the
// rows of each output column may be written.
func TestMatMulMatchesDot(t *testing.T) {
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K, quant.Q5_K, quant.Q8_0, quant.Q4_0, quant.F32, quant.F16} {
		at := VecDotType(typ)
		for ci, c := range matMulCases {
			if c.n%typ.BlockSize() != 0 {
				continue
			}
			w, a := matMulInputs(t, typ, c, uint64(ci))
			var scratch Scratch
			for _, k := range kernelSets() {
				out := make([]float32, max(0, (c.cols-1)*c.ldo+c.rows)+3)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				k.matMulFunc(typ)(w, a, c.n, c.rows, c.cols, out, c.ldo, &scratch)
				checkProducts(t, k, typ, c, w, a, at, out, k.name)
			}
		}
	}
}

// checkProducts checks that out (NaN before the product) holds the dot product on the kernels k of every
// weight row of w with every activation row of a (type at) as matMulCase c lays them out, and nothing
// beyond the rows of a column.
func checkProducts(t testing.TB, k *impl, typ quant.Type, c matMulCase, w, a []byte, at quant.Type, out []float32, label string) {
	t.Helper()
	wb, ab := mustRowBytes(t, typ, c.n), mustRowBytes(t, at, c.n)
	for j := range c.cols {
		for i := range c.ldo {
			if j*c.ldo+i >= len(out) {
				break
			}
			got := out[j*c.ldo+i]
			if i >= c.rows {
				if !math.IsNaN(float64(got)) {
					t.Errorf("%s %+v (%s): wrote %g to out[%d][%d], beyond the rows", typ, c, label, got, j, i)
				}
				continue
			}
			want := k.dot(typ, w[i*wb:][:wb], a[j*ab:][:ab], c.n)
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("%s %+v (%s): out[%d][%d] = %.9g, Dot = %.9g", typ, c, label, j, i, got, want)
			}
		}
	}
}

// TestMatMulAssemblyMatchesGeneric compares the packed kernels with the portable dot products on rows of
// the down projection's length, where rounding differences would accumulate.
func TestMatMulAssemblyMatchesGeneric(t *testing.T) {
	if accelerated == nil {
		t.Skip("skipping: no assembly kernels on this CPU or build")
	}
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		c := matMulCase{11008, 8, 4, 8}
		w, a := matMulInputs(t, typ, c, 77)
		wb, ab := mustRowBytes(t, typ, c.n), mustRowBytes(t, quant.Q8_K, c.n)
		out := make([]float32, c.cols*c.ldo)
		accelerated.matMulFunc(typ)(w, a, c.n, c.rows, c.cols, out, c.ldo, nil)
		pure := generic.q4K
		if typ == quant.Q6_K {
			pure = generic.q6K
		}
		for j := range c.cols {
			for i := range c.rows {
				wr, ar := w[i*wb:][:wb], a[j*ab:][:ab]
				want := pure(wr, ar, c.n/quant.QK_K)
				_, mag := refDot(t, typ, wr, quant.Q8_K, ar, c.n)
				if got := out[j*c.ldo+i]; math.Abs(float64(got-want)) > 1e-6*mag {
					t.Errorf("%s: out[%d][%d] = %.9g, generic dot %.9g (Σ|w·a| = %.4g)", typ, j, i, got, want, mag)
				}
			}
		}
	}
}

// TestScratchReuse runs shapes of different sizes through one Scratch, largest last and first, so that a
// packed buffer left over from a larger call must not leak into a smaller one.
func TestScratchReuse(t *testing.T) {
	var scratch Scratch
	for _, c := range []matMulCase{{2048, 8, 4, 8}, {256, 4, 4, 4}, {4096, 12, 8, 12}, {512, 4, 8, 4}} {
		w, a := matMulInputs(t, quant.Q4_K, c, 3)
		wb, ab := mustRowBytes(t, quant.Q4_K, c.n), mustRowBytes(t, quant.Q8_K, c.n)
		out := make([]float32, c.cols*c.ldo)
		MatMulFunc(quant.Q4_K)(w, a, c.n, c.rows, c.cols, out, c.ldo, &scratch)
		for j := range c.cols {
			for i := range c.rows {
				if want := active.dot(quant.Q4_K, w[i*wb:][:wb], a[j*ab:][:ab], c.n); out[j*c.ldo+i] != want {
					t.Fatalf("%+v: out[%d][%d] = %g, want %g", c, j, i, out[j*c.ldo+i], want)
				}
			}
		}
	}
}

func TestMatMulPanicsOnBadLengths(t *testing.T) {
	mm := MatMulFunc(quant.Q4_K)
	w, a := make([]byte, 4*144), make([]byte, 4*292)
	tests := []struct {
		name string
		f    func()
	}{
		{"short weights", func() { mm(w[:500], a, 256, 4, 4, make([]float32, 16), 4, nil) }},
		{"short activations", func() { mm(w, a[:1000], 256, 4, 4, make([]float32, 16), 4, nil) }},
		{"short output", func() { mm(w, a, 256, 4, 4, make([]float32, 15), 4, nil) }},
		{"stride below rows", func() { mm(w, a, 256, 4, 4, make([]float32, 16), 3, nil) }},
		{"partial block", func() { mm(w, a, 200, 4, 4, make([]float32, 16), 4, nil) }},
		{"negative rows", func() { mm(w, a, 256, -1, 4, make([]float32, 16), 4, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "kernels: ") {
					t.Errorf("recovered %v, want a kernels panic", r)
				}
			}()
			tt.f()
		})
	}
	if MatMulFunc(quant.Q2_K) != nil {
		t.Error("MatMulFunc(Q2_K) is not nil")
	}
}

// BenchmarkMatMul is a chunk of 16 weight rows against a batch of 64 tokens, the CPU backend's prefill
// unit of work, repacking included; "dots" is the same work as one dot product per pair. ns/blk is the
// cost of one weight block for one token.
func BenchmarkMatMul(b *testing.B) {
	const rows, cols = 16, 64
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		for _, n := range []int{2048, 11008} {
			r := quanttest.Rand(3)
			w := make([]byte, rows*mustRowBytes(b, typ, n))
			if err := quant.QuantizeRow(typ, quanttest.Gaussian(r, rows*n, 1), w); err != nil {
				b.Fatal(err)
			}
			a := make([]byte, cols*mustRowBytes(b, quant.Q8_K, n))
			quant.QuantizeRowQ8K(quanttest.Gaussian(r, cols*n, 1), a)
			out := make([]float32, rows*cols)
			wb, ab := len(w)/rows, len(a)/cols
			blocks := float64(rows * cols * n / quant.QK_K)
			for _, k := range kernelSets() {
				mm, dot := k.matMulFunc(typ), k.dotFunc(typ)
				var scratch Scratch
				b.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, k.name), func(b *testing.B) {
					for b.Loop() {
						mm(w, a, n, rows, cols, out, rows, &scratch)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*blocks), "ns/blk")
				})
				b.Run(fmt.Sprintf("%s/n=%d/%s/dots", typ, n, k.name), func(b *testing.B) {
					for b.Loop() {
						for j := range cols {
							for i := range rows {
								out[j*rows+i] = dot(w[i*wb:][:wb], a[j*ab:][:ab], n)
							}
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*blocks), "ns/blk")
				})
			}
		}
	}
}
