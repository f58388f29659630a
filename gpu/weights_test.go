package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"smolchat/model/quant"
)

// TestWeightTextures holds the kernels reading weights from textures (weights.wgsl's WTEX) to the same
// results as from storage buffers, bit for bit: the loads differ, the arithmetic does not. Shapes: the
// K-quant cases of matCases (a texture of one partial row) and two larger than one texture row of 4096
// texels (64 KiB), each whole and split into chunks of a few rows; the built-in mat-vec for T = 1 (and,
// on the larger shapes, a spread of the variants tuning may choose), the few-token mat-vec (T = 3), the mat-mat
// (T = 33), and the embedding lookup.
func TestWeightTextures(t *testing.T) {
	d := testDevice(t)
	cases := []matCase{{quant.Q4_K, 300, 1024}, {quant.Q6_K, 130, 2048}}
	for _, c := range matCases {
		if kernelTypes[c.typ].own {
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%dx%d/split=%v", c.typ, c.m, c.k, split), func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, uint64(c.m*c.k)))
				raw, _ := quantized(t, r, c.typ, c.m, c.k)
				if split {
					rb, _ := deviceRowBytes(c.typ, c.k)
					limitBinding(t, d, uint64(6*rb))
				}
				buf := must[*weights](t)(d.uploadWeights("w", c.typ, c.k, c.m, raw, nil, false))
				tex := must[*weights](t)(d.uploadWeights("w", c.typ, c.k, c.m, raw, nil, true))
				if !tex.Tex || buf.Tex || len(tex.Chunks) != len(buf.Chunks) || (split && len(tex.Chunks) < 2) {
					t.Fatalf("texture upload: Tex %v, %d chunks; buffer upload %d chunks", tex.Tex, len(tex.Chunks), len(buf.Chunks))
				}
				const T = 33
				xb := must[*buffer](t)(d.UploadF32("x", randF32(r, T*c.k, 1)))
				product := func(w *weights, shape matvecShape, n int) []float32 {
					yb := must[*buffer](t)(d.NewStorage("y", uint64(4*T*c.m)))
					op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xb), c.k, whole(yb), c.m, 0, matOptions{}, shape))
					run(t, d, n, 0, func(e *encoder) { op.Record(e, n) })
					return mustF32(t, d, yb, 0, n*c.m)
				}
				wt := kernelTypes[c.typ].suffix
				shapes := []matvecShape{matvecShapeFor(wt, c.k)}
				if c.m > 100 && !split {
					for i, s := range matvecCandidates(d, wt) {
						if i%4 == 1 { // a spread of workgroup shapes, reductions and the integer path
							shapes = append(shapes, s)
						}
					}
				}
				for i, s := range shapes {
					for _, n := range []int{1, 3, T} {
						if i > 0 && n > 1 {
							continue // the few-token and mat-mat kernels do not depend on the variant
						}
						if got, want := product(tex, s, n), product(buf, s, n); !slices.Equal(got, want) {
							t.Errorf("%s, %d tokens: the texture's product differs from the buffer's", s, n)
						}
					}
				}
				toks := []uint32{0, uint32(c.m - 1), uint32(7 % c.m), uint32(c.m / 2)}
				tb := must[*buffer](t)(d.Upload("tok", u32Bytes(toks)))
				embed := func(w *weights) []float32 {
					ob := must[*buffer](t)(d.NewStorage("out", uint64(4*len(toks)*c.k)))
					op := must[*embedOp](t)(d.NewEmbed(w, whole(tb), whole(ob)))
					run(t, d, len(toks), 0, func(e *encoder) { op.Record(e, len(toks)) })
					return mustF32(t, d, ob, 0, len(toks)*c.k)
				}
				if !slices.Equal(embed(tex), embed(buf)) {
					t.Error("the texture's embedding rows differ from the buffer's")
				}
			})
		}
	}
}

// BenchmarkWeightStorage times the built-in decode mat-vec of SmolLM3-3B's K-quant shapes (as
// BenchmarkMatVec) with the weights in storage buffers and in textures: on lavapipe, mincpu-ns/weight
// is the work per weight, which textures' vector gathers lower.
//
//	go test ./gpu -run '^$' -bench WeightStorage -benchtime 5x
func BenchmarkWeightStorage(b *testing.B) {
	d := testDevice(b)
	for _, c := range []matCase{{quant.Q4_K, 11008, 2048}, {quant.Q4_K, 2048, 11008}, {quant.Q6_K, 2048, 11008}, {quant.Q6_K, 16384, 2048}} {
		r := rand.New(rand.NewPCG(1, 2))
		raw, _ := quantized(b, r, c.typ, c.m, c.k)
		xb := must[*buffer](b)(d.UploadF32("x", randF32(r, c.k, 1)))
		yb := must[*buffer](b)(d.NewStorage("y", uint64(4*c.m)))
		for _, tex := range []bool{false, true} {
			w := must[*weights](b)(d.uploadWeights("w", c.typ, c.k, c.m, raw, nil, tex))
			name := map[bool]string{false: storageBuffer, true: storageTexture}[tex]
			b.Run(fmt.Sprintf("%s/%dx%d/%s", kernelTypes[c.typ].suffix, c.m, c.k, name), func(b *testing.B) {
				op := must[*matMulOp](b)(d.NewMatMul(w, whole(xb), c.k, whole(yb), c.m, 0))
				if err := d.SetStep(1, 0); err != nil {
					b.Fatal(err)
				}
				best := leastCPU(b, d, func(e *encoder) { op.Record(e, 1) })
				b.ReportMetric(best*1e9/float64(c.m*c.k), "mincpu-ns/weight")
			})
			for _, ch := range w.Chunks {
				d.free(ch.Buf)
			}
		}
	}
}
