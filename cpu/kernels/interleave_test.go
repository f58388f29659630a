package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// TestInterleavedMatMulMatchesDot checks that the kernels on interleaved matrices compute exactly what
// the dot product of the original rows does: one activation row (the matrix-vector kernel), two to
// eight (the small-batch kernels, in passes of four, two and one, over spans of groups when they take
// more than one pass), more (the small-batch kernels where the CPU has AVX-512, else the unpacked
// multi-row kernel, which runs here with SmallBatch as the limit as well) and the tokens left over
// after the last four.
func TestInterleavedMatMulMatchesDot(t *testing.T) {
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		if !Interleaves(typ) {
			t.Skipf("skipping: %s cannot be interleaved on this CPU or build", typ)
		}
		inUse, _ := active.interleavedKernels(typ)
		unpacked := inUse
		unpacked.fewMax = SmallBatch
		for ci, c := range []matMulCase{
			{256, 4, 1, 4}, {512, 8, 3, 9}, {2048, 16, 4, 16}, {768, 12, 7, 12}, {11008, 4, 5, 6}, {256, 4, 9, 4},
			{256, 8, 2, 8}, {512, 40, 6, 41}, {256, 36, 8, 36}, {256, 44, 3, 44}, {1024, 4, 12, 4}, {512, 8, 19, 8},
		} {
			w, a := matMulInputs(t, typ, c, uint64(100+ci))
			ab := mustRowBytes(t, quant.Q8_K, c.n)
			il := interleaved(t, typ, w, c.rows, c.n)
			for _, path := range []struct {
				name string
				mul  func(out []float32)
			}{
				{"in use", func(out []float32) { InterleavedMatMulFunc(typ)(il, a, c.n, c.rows, c.cols, out, c.ldo, nil) }},
				{"unpacked beyond SmallBatch", func(out []float32) {
					unpacked.mul(il, a, ab, c.cols, out, c.ldo, c.n/quant.QK_K, c.rows/4, nil)
				}},
			} {
				out := make([]float32, (c.cols-1)*c.ldo+c.rows)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				path.mul(out)
				checkProducts(t, active, typ, c, w, a, quant.Q8_K, out, path.name)
			}
		}
	}
}

// interleaved returns rows rows of n elements of type t, w, interleaved.
func interleaved(t testing.TB, typ quant.Type, w []byte, rows, n int) []byte {
	t.Helper()
	size, err := InterleavedSize(typ, rows, n)
	if err != nil {
		t.Fatal(err)
	}
	il := make([]byte, size)
	if err := Interleave(typ, w, n, il); err != nil {
		t.Fatal(err)
	}
	return il
}

func TestInterleaveErrors(t *testing.T) {
	if !Interleaves(quant.Q4_K) {
		t.Skip("skipping: Q4_K cannot be interleaved on this CPU or build")
	}
	tests := []struct {
		name    string
		typ     quant.Type
		src     int
		n       int
		dst     int
		wantErr string
	}{
		{"rows not a multiple of four", quant.Q4_K, 3 * 144, 256, 608, "whole number of groups"},
		{"partial block", quant.Q4_K, 4 * 144, 200, 608, "not a multiple"},
		{"destination size", quant.Q4_K, 4 * 144, 256, 600, "take 608 bytes interleaved, got 600"},
		{"type", quant.Q8_0, 4 * 34, 32, 0, "cannot be interleaved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Interleave(tt.typ, make([]byte, tt.src), tt.n, make([]byte, tt.dst))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Interleave = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := InterleavedSize(quant.Q6_K, 6, 256); err == nil {
		t.Error("InterleavedSize of 6 rows: no error")
	}
	if InterleavedMatMulFunc(quant.Q5_K) != nil {
		t.Error("InterleavedMatMulFunc(Q5_K) is not nil")
	}
	if generic.interleaves(quant.Q4_K) {
		t.Error("Interleaves(Q4_K) with the generic kernels")
	}
}

// BenchmarkGemv is the matrix-vector product of generation over 16 rows, interleaved ("4rows") and as
// one dot product per row ("dots"), with the weights in cache. ns/blk is the cost of one row's block.
func BenchmarkGemv(b *testing.B) {
	const rows = 16
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		if !Interleaves(typ) {
			b.Skipf("skipping: %s cannot be interleaved", typ)
		}
		for _, n := range []int{2048, 11008} {
			r := quanttest.Rand(3)
			w := make([]byte, rows*mustRowBytes(b, typ, n))
			if err := quant.QuantizeRow(typ, quanttest.Gaussian(r, rows*n, 1), w); err != nil {
				b.Fatal(err)
			}
			a := make([]byte, mustRowBytes(b, quant.Q8_K, n))
			quant.QuantizeRowQ8K(quanttest.Gaussian(r, n, 1), a)
			size, _ := InterleavedSize(typ, rows, n)
			il := make([]byte, size)
			if err := Interleave(typ, w, n, il); err != nil {
				b.Fatal(err)
			}
			out := make([]float32, rows)
			mm, dot := InterleavedMatMulFunc(typ), DotFunc(typ)
			wb := len(w) / rows
			blocks := float64(rows * n / quant.QK_K)
			b.Run(fmt.Sprintf("%s/n=%d/4rows", typ, n), func(b *testing.B) {
				for b.Loop() {
					mm(il, a, n, rows, 1, out, rows, nil)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*blocks), "ns/blk")
			})
			b.Run(fmt.Sprintf("%s/n=%d/dots", typ, n), func(b *testing.B) {
				for b.Loop() {
					for i := range rows {
						out[i] = dot(w[i*wb:][:wb], a, n)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*blocks), "ns/blk")
			})
		}
	}
}

// BenchmarkInterleavedFew is the product of an interleaved matrix with 1 to 8 activation rows on one
// thread, the decode step of that many sequences: 256 rows of 2048 (in the L2 cache: the kernels' own
// cost) and 32768 (larger than the caches). ns/blk is the cost of one row's block, for all the
// activation rows together, in the fastest call (the least disturbed by other load).
func BenchmarkInterleavedFew(b *testing.B) {
	const n = 2048
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		if !Interleaves(typ) {
			b.Skipf("skipping: %s cannot be interleaved", typ)
		}
		for _, rows := range []int{256, 32768} {
			r := quanttest.Rand(5)
			il := interleaved(b, typ, quanttest.RandomBlocks(r, typ, rows*n/quant.QK_K), rows, n)
			mm := InterleavedMatMulFunc(typ)
			blocks := float64(rows * n / quant.QK_K)
			for _, cols := range []int{1, 2, 3, 4, 8, 16, 64} {
				a := make([]byte, cols*mustRowBytes(b, quant.Q8_K, n))
				quant.QuantizeRowQ8K(quanttest.Gaussian(r, cols*n, 1), a)
				out := make([]float32, cols*rows)
				b.Run(fmt.Sprintf("%s/rows=%d/cols=%d", typ, rows, cols), func(b *testing.B) {
					fastest := time.Duration(math.MaxInt64)
					for b.Loop() {
						t0 := time.Now()
						mm(il, a, n, rows, cols, out, rows, nil)
						fastest = min(fastest, time.Since(t0))
					}
					b.ReportMetric(float64(fastest.Nanoseconds())/blocks, "ns/blk")
				})
			}
		}
	}
}
