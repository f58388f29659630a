package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"smolchat/gpu/ref"
	"smolchat/model/quant"
)

// matCase is one weight shape for the mat-vec and mat-mat tests. Rows are chosen not to be multiples of
// the rows per workgroup (4 for mat-vec, 8 for the K-quant mat-vecs, 16 for their few-token variants, 64
// for mat-mat), and the F32/F16 K not a multiple of the 32-wide K tile. The K-quant mat-vec threads take
// 64 elements at a time, one such unit a thread for rows of up to 2048 elements (8 to 32 threads, fewer
// than the few-token variants' 16 rows for K 512), else 64 threads (matvecShapeFor): the long rows (4352
// and 4864 elements: 68 and 76 units) leave some threads a second unit and others none. Q6_K rows of an
// odd block count (768, 4864) start at byte offsets 2 mod 4.
type matCase struct {
	typ  quant.Type
	m, k int
}

var matCases = []matCase{
	{quant.F32, 37, 172},
	{quant.F16, 70, 100},
	{quant.Q8_0, 37, 96},
	{quant.Q4_K, 70, 512},
	{quant.Q6_K, 37, 512},
	{quant.Q4_K, 13, 4352},
	{quant.Q6_K, 21, 768},
	{quant.Q6_K, 10, 4864},
}

// Products a test runs: plain y = W x, y += W x (NewMatMulAdd), y = silu(y) * W x (NewMatMulGLU).
const (
	plainProduct = iota
	addProduct
	gluProduct
)

// testMatMul uploads random weights of c and checks the product of kind for T tokens against
// ref.MatVec, over a y that starts with random values: the elements outside the product's rows must
// keep theirs. A positive maxBinding forces the weights into chunks of that many bytes.
func testMatMul(t *testing.T, d *device, c matCase, T int, maxBinding uint64, kind int) float64 {
	return testMatMulTol(t, d, c, T, maxBinding, kind, 1e-4)
}

// testMatMulTol is testMatMul with the largest relative error tol allows.
func testMatMulTol(t *testing.T, d *device, c matCase, T int, maxBinding uint64, kind int, tol float64) float64 {
	r := rand.New(rand.NewPCG(uint64(c.m), uint64(c.k*T)))
	raw, deq := quantized(t, r, c.typ, c.m, c.k)
	if maxBinding > 0 {
		limitBinding(t, d, maxBinding)
	}
	w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
	if maxBinding > 0 && len(w.Chunks) < 2 {
		t.Fatalf("binding cap %d left %d chunk(s)", maxBinding, len(w.Chunks))
	}
	// x rows are padded to a stride beyond K, y rows carry an offset, as the backend's buffers do.
	xStride := c.k + 4
	yStride, yOff := c.m+3, 2
	x := randF32(r, T*xStride, 1)
	xb := must[*buffer](t)(d.UploadF32("x", x))
	y0 := randF32(r, T*yStride, 1)
	yb := must[*buffer](t)(d.UploadF32("y", y0))
	newOp := map[int]func(*weights, bufRange, int, bufRange, int, int) (*matMulOp, error){
		plainProduct: d.NewMatMul, addProduct: d.NewMatMulAdd, gluProduct: d.NewMatMulGLU}[kind]
	op := must[*matMulOp](t)(newOp(w, whole(xb), xStride, whole(yb), yStride, yOff))
	if (op.mm == nil) != d.prefillMatVec {
		t.Fatalf("the op has a mat-mat: %v, on a device whose steps take the mat-vec: %v", op.mm != nil, d.prefillMatVec)
	}
	run(t, d, T, 0, func(e *encoder) { op.Record(e, T) })
	y := mustF32(t, d, yb, 0, T*yStride)
	var worst float64
	for tok := range T {
		want := ref.MatVec(deq, c.m, c.k, x[tok*xStride:tok*xStride+c.k])
		switch before := y0[tok*yStride+yOff : tok*yStride+yOff+c.m]; kind {
		case addProduct:
			for i := range want {
				want[i] += before[i]
			}
		case gluProduct:
			want = ref.SiluMul(before, want)
		}
		for i := range yStride {
			if (i < yOff || i >= yOff+c.m) && y[tok*yStride+i] != y0[tok*yStride+i] {
				t.Fatalf("token %d: element %d outside the product's rows changed", tok, i)
			}
		}
		got := y[tok*yStride+yOff : tok*yStride+yOff+c.m]
		e := relErr(got, want)
		worst = max(worst, e)
		if e > tol {
			t.Errorf("token %d: max relative error %.3g > %.3g", tok, e, tol)
		}
	}
	return worst
}

func TestMatVec(t *testing.T) {
	d := testDevice(t)
	for _, m := range reductionModes(d) {
		for _, c := range matCases {
			for _, T := range []int{1, 2, 3, 5, 8} { // decode; a few tokens per workgroup (matvecFewNT)
				t.Run(fmt.Sprintf("%s/%dx%d/T%d/reduce=%s", c.typ, c.m, c.k, T, m), func(t *testing.T) {
					useReduction(t, d, m)
					e := testMatMul(t, d, c, T, 0, plainProduct)
					if m != reduceTree && !d.subgroups {
						t.Fatal("the subgroup variant failed to build and the device fell back")
					}
					t.Logf("max rel err %.2e", e)
				})
			}
		}
	}
}

// eachMatVecShape runs fn as a subtest for each of matCases with its built-in mat-vec shape on the float
// path and, where the device has it, the integer one, over random weights uploaded as w (r made them).
func eachMatVecShape(t *testing.T, d *device, fn func(t *testing.T, c matCase, shape matvecShape, r *rand.Rand, w *weights)) {
	for _, c := range matCases {
		wt := kernelTypes[c.typ].suffix
		for _, int8 := range []bool{false, true} {
			if int8 && !(d.dot4 && ownKernels(wt)) {
				continue
			}
			shape := matvecShapeFor(wt, c.k)
			shape.int8 = int8
			t.Run(fmt.Sprintf("%s/%dx%d/%s", c.typ, c.m, c.k, shape), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(c.m), uint64(c.k)))
				raw, _ := quantized(t, r, c.typ, c.m, c.k)
				fn(t, c, shape, r, must[*weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil)))
			})
		}
	}
}

// TestMatVecFewMatchesOne checks that a token's product from a few-token mat-vec variant (matvecFewNT:
// the weights unpacked once for all the workgroup's tokens, other rows per workgroup, tokens past the
// step's in the last workgroup) is the one-token variant's up to rounding, on the float and the integer
// path: a sequence's logits must hardly depend on how many others share its step (backendtest's
// SeqContract allows 1e-4 of their scale on the GPU; this holds the products to 1e-5).
func TestMatVecFewMatchesOne(t *testing.T) {
	d := testDevice(t)
	eachMatVecShape(t, d, func(t *testing.T, c matCase, shape matvecShape, r *rand.Rand, w *weights) {
		x := randF32(r, matvecMaxT*c.k, 1)
		xb := must[*buffer](t)(d.UploadF32("x", x))
		yb := must[*buffer](t)(d.NewStorage("y", uint64(4*matvecMaxT*c.m)))
		op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xb), c.k, whole(yb), c.m, 0, matOptions{}, shape))
		// Each token alone, then 2..matvecMaxT of them in one step.
		one := productsAlone(t, d, w, c, shape, x, yb)
		for T := 2; T <= matvecMaxT; T++ {
			checkFewMatchesOne(t, d, op, c, T, yb, one)
		}
	})
}

// productsAlone returns the products of the tokens in x (k floats each) through shape's one-token
// variant, a token at a time, using yb for the outputs.
func productsAlone(t *testing.T, d *device, w *weights, c matCase, shape matvecShape, x []float32, yb *buffer) []float32 {
	T := len(x) / c.k
	one := make([]float32, T*c.m)
	for tok := range T {
		xt := must[*buffer](t)(d.UploadF32("x1", x[tok*c.k:(tok+1)*c.k]))
		op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xt), c.k, whole(yb), c.m, 0, matOptions{}, shape))
		run(t, d, 1, 0, func(e *encoder) { op.Record(e, 1) })
		copy(one[tok*c.m:], mustF32(t, d, yb, 0, c.m))
		d.free(xt)
	}
	return one
}

// checkFewMatchesOne runs op on a step of T tokens (outputs in yb) and checks each token's product
// against one's (productsAlone) to 1e-5.
func checkFewMatchesOne(t *testing.T, d *device, op *matMulOp, c matCase, T int, yb *buffer, one []float32) {
	t.Helper()
	run(t, d, T, 0, func(e *encoder) { op.Record(e, T) })
	y := mustF32(t, d, yb, 0, T*c.m)
	for tok := range T {
		if e := relErr(y[tok*c.m:(tok+1)*c.m], one[tok*c.m:(tok+1)*c.m]); e > 1e-5 {
			t.Errorf("T=%d token %d: max relative error %.3g to the token alone > 1e-5", T, tok, e)
		}
	}
}

// TestActivationTexture checks the mat-vecs that read their activations from a texture (matvec_io.wgsl's
// XTEX: the output projection's input where every step takes the mat-vec, device.headTex) against the
// same products from a buffer, bit for bit, for one token, a few and a prompt's worth, on every kernel
// and numeric path; and that a device whose long steps take the mat-mat refuses such activations.
func TestActivationTexture(t *testing.T) {
	d := testDevice(t)
	usePrefillPath(t, d, true)
	eachMatVecShape(t, d, func(t *testing.T, c matCase, shape matvecShape, r *rand.Rand, w *weights) {
		const T = 33
		width := (c.k + 63) / 64 * 64 // the texture's rows and the buffer's stride
		xb := must[*buffer](t)(d.UploadF32("x", randF32(r, T*width, 1)))
		xt := must[*buffer](t)(d.NewActivationTexture("x", width, T))
		run(t, d, T, 0, func(e *encoder) {
			for tok := range T {
				e.CopyToTexture(xb, uint64(4*tok*width), xt, tok)
			}
		})
		product := func(x *buffer, n int) []float32 {
			yb := must[*buffer](t)(d.NewStorage("y", uint64(4*T*c.m)))
			op := must[*matMulOp](t)(d.newMatMulShape(w, whole(x), width, whole(yb), c.m, 0, matOptions{}, shape))
			run(t, d, n, 0, func(e *encoder) { op.Record(e, n) })
			return mustF32(t, d, yb, 0, n*c.m)
		}
		for _, n := range []int{1, 2, 4, 5, T} {
			if got, want := product(xt, n), product(xb, n); !slices.Equal(got, want) {
				t.Errorf("%d tokens: the product from the texture differs from the buffer's", n)
			}
		}
	})
	t.Run("mat-mat device", func(t *testing.T) {
		usePrefillPath(t, d, false)
		c := matCases[3]
		r := rand.New(rand.NewPCG(1, 2))
		raw, _ := quantized(t, r, c.typ, c.m, c.k)
		w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
		xt := must[*buffer](t)(d.NewActivationTexture("x", c.k, 4))
		yb := must[*buffer](t)(d.NewStorage("y", uint64(4*4*c.m)))
		_, err := d.NewMatMul(w, whole(xt), c.k, whole(yb), c.m, 0)
		if err == nil || !strings.Contains(err.Error(), "texture") {
			t.Fatalf("activations in a texture on a device with the mat-mat: got %v, want an error naming the texture", err)
		}
	})
}

// TestMatMulPrefill checks steps of more tokens than the mat-vec's few-token variants hold, through the
// tiled mat-mat and through the few-token mat-vec in as many workgroups as it takes (prefillMatVec, what
// CPU-type adapters run).
func TestMatMulPrefill(t *testing.T) {
	d := testDevice(t)
	for _, c := range matCases {
		for _, T := range []int{matvecMaxT + 1, 33} {
			for _, matVec := range prefillPaths(T) {
				t.Run(fmt.Sprintf("%s/%dx%d/T%d/%s", c.typ, c.m, c.k, T, pathName(T, matVec)), func(t *testing.T) {
					usePrefillPath(t, d, matVec)
					e := testMatMul(t, d, c, T, 0, plainProduct)
					t.Logf("max rel err %.2e", e)
				})
			}
		}
	}
}

func TestMatMulSplitBindings(t *testing.T) {
	d := testDevice(t)
	for _, c := range matCases {
		rb, _ := deviceRowBytes(c.typ, c.k)
		for _, T := range []int{1, 6, 33} {
			for _, matVec := range prefillPaths(T) {
				t.Run(fmt.Sprintf("%s/T%d/%s", c.typ, T, pathName(T, matVec)), func(t *testing.T) {
					// Seven rows' worth per binding, six once uploads keep row pairs together: chunks whose
					// row counts are not multiples of 4 or 64.
					useStepPath(t, d, T, matVec)
					e := testMatMul(t, d, c, T, uint64(7*rb), plainProduct)
					t.Logf("max rel err %.2e", e)
				})
			}
		}
	}
}

// TestMatMulFused checks the products that combine with what their output holds: adding into it (the
// residual connections) and finishing SwiGLU on it (the up projection), as mat-vec (T ≤ matvecMaxT, both
// reductions) and as mat-mat, with the weights split across bindings too.
func TestMatMulFused(t *testing.T) {
	d := testDevice(t)
	for _, kind := range []int{addProduct, gluProduct} {
		for _, c := range matCases {
			rb, _ := deviceRowBytes(c.typ, c.k)
			name := map[int]string{addProduct: "add", gluProduct: "glu"}[kind]
			eachProductShape(t, d, fmt.Sprintf("%s/%s", name, c.typ), uint64(7*rb), func(t *testing.T, T int, split uint64) {
				t.Logf("max rel err %.2e", testMatMul(t, d, c, T, split, kind))
			})
		}
	}
}

// eachProductShape runs f as a subtest for every way a product is recorded: mat-vec (T 1, 3 and
// matvecMaxT, with each reduction the device has) and mat-mat (T 33), with the weights whole and split
// into bindings of split bytes.
func eachProductShape(t *testing.T, d *device, name string, split uint64, f func(t *testing.T, T int, split uint64)) {
	modes := reductionModes(d)
	for _, m := range modes {
		for _, T := range []int{1, 3, matvecMaxT, 33} {
			for _, matVec := range prefillPaths(T) {
				if T > matvecMaxT && !matVec && m != modes[0] {
					continue // the mat-mat has no subgroup variant
				}
				for _, sp := range []uint64{0, split} {
					t.Run(fmt.Sprintf("%s/T%d/%s/split=%v/reduce=%s", name, T, pathName(T, matVec), sp > 0, m), func(t *testing.T) {
						useReduction(t, d, m)
						useStepPath(t, d, T, matVec)
						f(t, T, sp)
					})
				}
			}
		}
	}
}

// TestMatVecRopeRows checks the fused RoPE of the one-token mat-vec in workgroups of 8 threads for row
// counts a tuned shape may name (tune.go's cache): on a device with subgroups of 8 the lanes store their
// own totals (LANE_STORE), pairing rows within a lane (16, 32) or across two (8), and a count they
// cannot pair (24, three rows a lane) goes through workgroup memory.
func TestMatVecRopeRows(t *testing.T) {
	d := testDevice(t)
	const heads, headDim, k, pos0, base = 2, 128, 256, 17, 5e6
	m := heads * headDim
	r := rand.New(rand.NewPCG(3, 4))
	raw, deq := quantized(t, r, quant.Q4_K, m, k)
	w := must[*weights](t)(d.UploadWeights("w", quant.Q4_K, k, m, raw, nil))
	x := randF32(r, k, 1)
	xb := must[*buffer](t)(d.UploadF32("x", x))
	cb := must[*buffer](t)(d.UploadF32("cs", ropeTable(pos0, 1, headDim, base)))
	want := ref.MatVec(deq, m, k, x)
	ref.Rope(want, headDim, headDim, pos0, base)
	for _, rows := range []int{8, 16, 24, 32} {
		t.Run(fmt.Sprintf("rows%d", rows), func(t *testing.T) {
			yb := must[*buffer](t)(d.NewStorage("y", uint64(4*m)))
			shape := matvecShape{file: "matvec_q4_k.wgsl", wg: 8, rows: rows}
			op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xb), k, whole(yb), m, 0,
				matOptions{rope: true, cs: whole(cb), headDim: headDim, ropeDim: headDim}, shape))
			run(t, d, 1, pos0, func(e *encoder) { op.Record(e, 1) })
			if e := relErr(mustF32(t, d, yb, 0, m), want); e > 1e-4 {
				t.Errorf("max relative error %.3g > 1e-4", e)
			}
		})
	}
}

// TestMatMulRope checks the query and key projections that rotate their heads as they store them: the
// product of random weights, then ref.Rope per token at its position, as mat-vec (both reductions) and
// mat-mat, with whole and partial rotation, at SmolLM3's head size and a large position, and with the
// weights split across bindings in pairs of rows. A split that would part a pair is refused.
func TestMatMulRope(t *testing.T) {
	d := testDevice(t)
	base := 5e6
	for _, c := range []struct {
		typ                     quant.Type
		heads, headDim, ropeDim int
		k, pos0                 int
	}{
		{quant.F32, 3, 8, 6, 36, 5},
		{quant.Q4_K, 2, 128, 128, 256, 4000},
		{quant.Q6_K, 5, 16, 16, 256, 17},
	} {
		m := c.heads * c.headDim
		rb, _ := deviceRowBytes(c.typ, c.k)
		name := fmt.Sprintf("%s/%dx%d/rot%d", c.typ, c.heads, c.headDim, c.ropeDim)
		eachProductShape(t, d, name, uint64(6*rb), func(t *testing.T, T int, split uint64) {
			r := rand.New(rand.NewPCG(uint64(m), uint64(T)))
			raw, deq := quantized(t, r, c.typ, m, c.k)
			if split > 0 {
				limitBinding(t, d, split)
			}
			w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, m, raw, nil))
			if split > 0 && len(w.Chunks) < 2 {
				t.Fatalf("binding cap %d left %d chunk(s)", split, len(w.Chunks))
			}
			xStride, yStride := c.k+4, m+2
			x := randF32(r, T*xStride, 1)
			xb := must[*buffer](t)(d.UploadF32("x", x))
			yb := must[*buffer](t)(d.NewStorage("y", uint64(4*T*yStride)))
			cb := must[*buffer](t)(d.UploadF32("cs", ropeTable(c.pos0, T, c.ropeDim, base)))
			op := must[*matMulOp](t)(d.NewMatMulRope(w, whole(xb), xStride, whole(yb), yStride, whole(cb), c.headDim, c.ropeDim))
			run(t, d, T, c.pos0, func(e *encoder) { op.Record(e, T) })
			y := mustF32(t, d, yb, 0, T*yStride)
			var worst float64
			for tok := range T {
				want := ref.MatVec(deq, m, c.k, x[tok*xStride:tok*xStride+c.k])
				ref.Rope(want, c.headDim, c.ropeDim, c.pos0+tok, base)
				e := relErr(y[tok*yStride:tok*yStride+m], want)
				worst = max(worst, e)
				if e > 1e-4 {
					t.Errorf("token %d: max relative error %.3g > 1e-4", tok, e)
				}
			}
			t.Logf("max rel err %.2e", worst)
		})
		t.Run(fmt.Sprintf("%s/odd-split", c.typ), func(t *testing.T) {
			// Uploads keep row pairs together; weights chunked otherwise are refused.
			limitBinding(t, d, uint64(7*rb))
			r := rand.New(rand.NewPCG(1, 2))
			raw, _ := quantized(t, r, c.typ, m, c.k)
			w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, m, raw, nil))
			for _, ch := range w.Chunks {
				if ch.Row0%2 != 0 || ch.Rows%2 != 0 {
					t.Fatalf("upload chunk of rows %d+%d parts a pair", ch.Row0, ch.Rows)
				}
			}
			odd := *w
			odd.Chunks = []weightChunk{{Buf: w.Chunks[0].Buf, Row0: 0, Rows: 3}, {Buf: w.Chunks[1].Buf, Row0: 3, Rows: m - 3}}
			buf := must[*buffer](t)(d.NewStorage("b", 4*uint64(max(m, c.k))))
			if _, err := d.NewMatMulRope(&odd, whole(buf), c.k, whole(buf), m, whole(buf), c.headDim, c.ropeDim); err == nil || !strings.Contains(err.Error(), "splits a pair") {
				t.Errorf("chunks of 3 and %d rows: err = %v, want a refusal", m-3, err)
			}
		})
	}
}

// f16Tolerance bounds the relative error of the mat-mat with half-precision tiles: weights and
// activations rounded to 11 significant bits (2^-11 ≈ 4.9e-4 each, so up to ~1e-3 per product), errors
// of independent sign that add in quadrature over K, measured against the largest output. The f32
// tiles keep 1e-4, as the mat-vec.
const f16Tolerance = 2e-3

// TestMatMulTiles checks the shapes tuning may choose (f32 and f16-pair tiles) against ref.MatVec on awkward shapes: T below one tile, above one and not a
// multiple of any, M not a multiple of the rows per workgroup, K that ends mid-tile (F32/F16) and Q6_K
// rows at byte offsets 2 mod 4, and the residual add with split bindings. The first shape runs all of
// matCases; the others, whose code differs only in its constants, one case per weight tile file.
func TestMatMulTiles(t *testing.T) {
	d := testDevice(t)
	for i, s := range matmulTuned() {
		cases := matCases
		if i > 0 {
			cases = []matCase{{quant.F32, 37, 172}, {quant.Q4_K, 70, 512}, {quant.Q6_K, 21, 768}}
		}
		tol := 1e-4
		if s.f16 {
			tol = f16Tolerance
		}
		t.Run(s.String(), func(t *testing.T) {
			if err := s.check(d, "q4_k"); err != nil {
				t.Skip(err)
			}
			useMatmulTile(t, d, s)
			for _, c := range cases {
				for _, T := range []int{5, 70} {
					t.Run(fmt.Sprintf("%s/%dx%d/T%d", c.typ, c.m, c.k, T), func(t *testing.T) {
						t.Logf("max rel err %.2e", testMatMulTol(t, d, c, T, 0, plainProduct, tol))
					})
				}
				rb, _ := deviceRowBytes(c.typ, c.k)
				t.Run(fmt.Sprintf("%s/add/split", c.typ), func(t *testing.T) {
					t.Logf("max rel err %.2e", testMatMulTol(t, d, c, 33, uint64(7*rb), addProduct, tol))
				})
			}
		})
	}
}

// TestMatmulTileFor checks the choice of the default shape against the adapter's workgroup memory:
// the 32 KiB K-quant tile where it fits, else one that fits WebGPU's default 16 KiB (never f16 tiles,
// which round differently), else a refusal naming the limit.
func TestMatmulTileFor(t *testing.T) {
	d := testDevice(t)
	small := matmulShape{tm: 32, tn: 32, rm: 8, rn: 8}
	for _, c := range []struct {
		mem  uint32
		want matmulShape
		err  string
	}{
		{32768, matmulPreferred[0], ""},
		{16384, small, ""},
		{8192, matmulShape{}, "workgroup memory"},
	} {
		t.Run(fmt.Sprint(c.mem), func(t *testing.T) {
			old := d.limits.MaxComputeWorkgroupStorageSize
			d.limits.MaxComputeWorkgroupStorageSize = c.mem
			t.Cleanup(func() { d.limits.MaxComputeWorkgroupStorageSize = old })
			if c.mem > old {
				t.Skipf("the adapter has %d bytes of workgroup memory", old)
			}
			got, err := matmulTileFor(d, "q4_k")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one naming %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
		})
	}
}

// useMatmulTile makes the device build mat-mat kernels of shape s for one test.
func useMatmulTile(t testing.TB, d *device, s matmulShape) {
	old := d.matmulTile
	d.matmulTile = s
	t.Cleanup(func() { d.matmulTile = old })
	usePrefillPath(t, d, false)
}

// usePrefillPath makes the device build products whose steps of more than matvecMaxT tokens take the
// few-token mat-vec (matVec) or the tiled mat-mat, for one test, whatever the adapter's type.
func usePrefillPath(t testing.TB, d *device, matVec bool) {
	old := d.prefillMatVec
	d.prefillMatVec = matVec
	t.Cleanup(func() { d.prefillMatVec = old })
}

// useStepPath is usePrefillPath for a step of T tokens: steps of up to matvecMaxT take the mat-vec
// either way, so the device's path stays as it is (forcing the mat-mat would only compile kernels the
// test never runs).
func useStepPath(t testing.TB, d *device, T int, matVec bool) {
	if T > matvecMaxT {
		usePrefillPath(t, d, matVec)
	}
}

// prefillPaths are the ways a step of T tokens can be computed: for more than matvecMaxT, the tiled
// mat-mat (false) and the few-token mat-vec (true, device.prefillMatVec); for fewer, the mat-vec only.
func prefillPaths(T int) []bool {
	if T > matvecMaxT {
		return []bool{false, true}
	}
	return []bool{false}
}

// pathName names a prefill path in subtest names.
func pathName(T int, matVec bool) string {
	switch {
	case T <= matvecMaxT:
		return "mat-vec"
	case matVec:
		return "mat-vec-prefill"
	}
	return "mat-mat"
}

// BenchmarkMatMulTiles times one prefill product of SmolLM3-3B's widths (a 2048x2048 Q4_K or Q6_K
// projection over 64 tokens) for each candidate shape: on lavapipe it says which shape does the least
// work per weight.
//
//	go test ./gpu -run '^$' -bench MatMulTiles -benchtime 3x
func BenchmarkMatMulTiles(b *testing.B) {
	d := testDevice(b)
	const T, m, k = 64, 2048, 2048
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		r := rand.New(rand.NewPCG(1, 2))
		raw, _ := quantized(b, r, typ, m, k)
		w, err := d.UploadWeights("w", typ, k, m, raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		xb, err := d.UploadF32("x", randF32(r, T*k, 1))
		if err != nil {
			b.Fatal(err)
		}
		yb, err := d.NewStorage("y", uint64(4*T*m))
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range matmulTuned() {
			b.Run(fmt.Sprintf("%s/%s", typ, s), func(b *testing.B) {
				useMatmulTile(b, d, s)
				op, err := d.NewMatMul(w, whole(xb), k, whole(yb), m, 0)
				if err != nil {
					b.Skip(err)
				}
				if err := d.SetStep(T, 0); err != nil {
					b.Fatal(err)
				}
				best := leastCPU(b, d, func(e *encoder) { op.Record(e, T) })
				b.ReportMetric(2*T*m*k/b.Elapsed().Seconds()*float64(b.N)/1e9, "GFLOP/s")
				b.ReportMetric(best*1e3, "mincpu-ms")
			})
		}
	}
}

// BenchmarkMatVec times one decode product (T = 1) of SmolLM3-3B's K-quant shapes for each mat-vec
// variant tuning may choose, the first being the built-in one: on lavapipe its mincpu-ns/weight (the
// least CPU time of a run, per weight) is the work a kernel does per weight, with less noise than the
// wall clock on a shared machine. The 16384-row Q6_K shape stands for the output projection.
//
//	go test ./gpu -run '^$' -bench 'MatVec/q6_k' -benchtime 5x
func BenchmarkMatVec(b *testing.B) {
	d := testDevice(b)
	shapes := []struct {
		typ  quant.Type
		m, k int
	}{{quant.Q4_K, 11008, 2048}, {quant.Q4_K, 2048, 11008}, {quant.Q6_K, 2048, 11008}, {quant.Q6_K, 16384, 2048}}
	for _, c := range shapes {
		r := rand.New(rand.NewPCG(1, 2))
		raw, _ := quantized(b, r, c.typ, c.m, c.k)
		w, err := d.UploadWeights("w", c.typ, c.k, c.m, raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		xb := must[*buffer](b)(d.UploadF32("x", randF32(r, c.k, 1)))
		yb := must[*buffer](b)(d.NewStorage("y", uint64(4*c.m)))
		wt := kernelTypes[c.typ].suffix
		variants := append([]matvecShape{matvecShapeFor(wt, c.k)}, matvecCandidates(d, wt)...)
		for i, s := range variants {
			name := s.String()
			if i == 0 {
				name = "built-in"
			}
			b.Run(fmt.Sprintf("%s/%dx%d/%s", wt, c.m, c.k, name), func(b *testing.B) {
				op, err := d.newMatMulShape(w, whole(xb), c.k, whole(yb), c.m, 0, matOptions{}, s)
				if err != nil {
					b.Skip(err)
				}
				if err := d.SetStep(1, 0); err != nil {
					b.Fatal(err)
				}
				best := leastCPU(b, d, func(e *encoder) { op.Record(e, 1) })
				b.ReportMetric(best*1e9/float64(c.m*c.k), "mincpu-ns/weight")
			})
		}
	}
}

// leastCPU runs rec in its own submit for each of b's iterations and returns the least CPU time one
// took, in seconds (see processCPU).
func leastCPU(b *testing.B, d *device, rec func(e *encoder)) float64 {
	best := math.Inf(1)
	for b.Loop() {
		c0 := processCPU()
		e := must[*encoder](b)(d.NewEncoder("bench"))
		rec(e)
		if err := e.Submit(); err != nil {
			b.Fatal(err)
		}
		if err := d.Wait(); err != nil {
			b.Fatal(err)
		}
		best = min(best, processCPU()-c0)
	}
	return best
}

// TestFewRowsFitWorkgroupMemory checks that every few-token variant tuning may build keeps its
// reduction within the device's workgroup memory (a kernel that does not fit fails to build, and a
// subgroup kernel that fails turns the device's subgroups off).
func TestFewRowsFitWorkgroupMemory(t *testing.T) {
	d := testDevice(t)
	for _, wt := range []string{"q4_k", "q6_k"} {
		for _, shape := range matvecCandidates(d, wt) {
			for _, nt := range matvecFewNT {
				if n := reduceBytes(d.fewShape(wt, nt, shape).rows, nt, shape.wg); n > d.limits.MaxComputeWorkgroupStorageSize {
					t.Errorf("%s %s, %d tokens: %d bytes of workgroup memory > %d", wt, shape, nt, n, d.limits.MaxComputeWorkgroupStorageSize)
				}
			}
		}
	}
}
