package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"smolchat/gpu/ref"
	"smolchat/model/quant"
)

// matCase is one weight shape for the mat-vec and mat-mat tests. Rows are chosen not to be multiples of
// the rows per workgroup (4 for mat-vec, 64 for mat-mat), and the F32/F16 K not a multiple of the
// 32-wide K tile.
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
}

// testMatMul uploads random weights of c and checks y = W x for T tokens against ref.MatVec.
// A positive maxBinding forces the weights into chunks of that many bytes.
func testMatMul(t *testing.T, d *Device, c matCase, T int, maxBinding uint64) float64 {
	r := rand.New(rand.NewPCG(uint64(c.m), uint64(c.k*T)))
	raw, deq := quantized(t, r, c.typ, c.m, c.k)
	if maxBinding > 0 {
		limitBinding(t, d, maxBinding)
	}
	w := must[*Weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
	if maxBinding > 0 && len(w.Chunks) < 2 {
		t.Fatalf("binding cap %d left %d chunk(s)", maxBinding, len(w.Chunks))
	}
	// x rows are padded to a stride beyond K, y rows carry an offset, as the backend's buffers do.
	xStride := c.k + 4
	yStride, yOff := c.m+3, 2
	x := randF32(r, T*xStride, 1)
	xb := must[*Buffer](t)(d.UploadF32("x", x))
	yb := must[*Buffer](t)(d.NewStorage("y", uint64(4*T*yStride)))
	op := must[*MatMul](t)(d.NewMatMul(w, Whole(xb), xStride, Whole(yb), yStride, yOff))
	run(t, d, T, 0, func(e *Encoder) { op.Record(e, T) })
	y := mustF32(t, d, yb, 0, T*yStride)
	var worst float64
	for tok := range T {
		want := ref.MatVec(deq, c.m, c.k, x[tok*xStride:tok*xStride+c.k])
		got := y[tok*yStride+yOff : tok*yStride+yOff+c.m]
		e := relErr(got, want)
		worst = max(worst, e)
		if e > 1e-4 {
			t.Errorf("token %d: max relative error %.3g > 1e-4", tok, e)
		}
	}
	return worst
}

func TestMatVec(t *testing.T) {
	d := device(t)
	for _, sg := range reductionModes(d) {
		for _, c := range matCases {
			for _, T := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%dx%d/T%d/subgroups=%v", c.typ, c.m, c.k, T, sg), func(t *testing.T) {
					useSubgroups(t, d, sg)
					e := testMatMul(t, d, c, T, 0)
					if sg && !d.subgroups {
						t.Fatal("the subgroup variant failed to build and the device fell back")
					}
					t.Logf("max rel err %.2e", e)
				})
			}
		}
	}
}

func TestMatMulPrefill(t *testing.T) {
	d := device(t)
	for _, c := range matCases {
		for _, T := range []int{5, 33} {
			t.Run(fmt.Sprintf("%s/%dx%d/T%d", c.typ, c.m, c.k, T), func(t *testing.T) {
				e := testMatMul(t, d, c, T, 0)
				t.Logf("max rel err %.2e", e)
			})
		}
	}
}

func TestMatMulSplitBindings(t *testing.T) {
	d := device(t)
	for _, c := range matCases {
		rb, _ := c.typ.RowBytes(c.k)
		for _, T := range []int{1, 6} {
			t.Run(fmt.Sprintf("%s/T%d", c.typ, T), func(t *testing.T) {
				// Seven rows per binding: chunks whose row counts are not multiples of 4 or 64.
				e := testMatMul(t, d, c, T, uint64(7*rb))
				t.Logf("max rel err %.2e", e)
			})
		}
	}
}
