package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"smolchat/gpu/ref"
	"smolchat/model"
	"smolchat/model/quant"
)

func TestRMSNorm(t *testing.T) {
	d := testDevice(t)
	for _, c := range []struct{ dim, stride, T int }{{64, 64, 1}, {300, 304, 3}, {2048, 2048, 2}} {
		t.Run(fmt.Sprintf("dim%d/T%d", c.dim, c.T), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(c.dim)))
			x := randF32(r, c.T*c.stride, 3)
			g := randF32(r, c.dim, 1)
			xb := must[*buffer](t)(d.UploadF32("x", x))
			gb := must[*buffer](t)(d.UploadF32("g", g))
			yb := must[*buffer](t)(d.NewStorage("y", uint64(4*len(x))))
			op := must[*op](t)(d.NewRMSNorm(whole(xb), whole(gb), whole(yb), c.dim, c.stride, 1e-6))
			run(t, d, c.T, 0, func(e *encoder) { op.Record(e, c.T) })
			y := mustF32(t, d, yb, 0, len(x))
			for tok := range c.T {
				want := ref.RMSNorm(x[tok*c.stride:tok*c.stride+c.dim], g, 1e-6)
				e := relErr(y[tok*c.stride:tok*c.stride+c.dim], want)
				t.Logf("token %d: max rel err %.2e", tok, e)
				if e > 1e-5 {
					t.Errorf("token %d: max relative error %.3g", tok, e)
				}
			}
		})
	}
}

// ropeTable is what the backend uploads for a step: (cos, sin) per token and pair.
func ropeTable(pos0, T, ropeDim int, base float64) []float32 {
	var cs []float32
	for tok := range T {
		cs = append(cs, ref.RopeAngles(pos0+tok, ropeDim, base)...)
	}
	return cs
}

// f16Round rounds values to half precision, as an f16 cache stores them.
func f16Round(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = quant.F16ToF32(quant.F32ToF16(x))
	}
	return out
}

// TestAttention fills a paged cache for one or more sequences (their blocks shuffled in the pool) with
// a kv store of their cached positions, then runs the step under test: the kv store of every sequence's
// new rows and the attention of each (prefill for sequences of several rows, split decode for those of
// one, in one dispatch each). Every new row is checked against ref.Attention over its own sequence, and
// the cache's new rows against the step's keys and values.
func TestAttention(t *testing.T) {
	d := testDevice(t)
	type seq struct{ pos0, T int }
	type attnCase struct {
		heads, kvHeads, headDim int
		seqs                    []seq
		f16                     bool
	}
	var cases []attnCase
	for _, f16 := range []bool{false, true} {
		cases = append(cases,
			attnCase{8, 4, 8, []seq{{0, 1}}, f16},     // stories260K, first token
			attnCase{8, 4, 8, []seq{{70, 1}}, f16},    // decode past one 64-key tile, across a block
			attnCase{4, 1, 128, []seq{{5, 9}}, f16},   // SmolLM3 head size, GQA 4:1, causal prefill
			attnCase{4, 2, 160, []seq{{100, 3}}, f16}, // more than 64 dim pairs per head
			// Prefill blocks (attention.wgsl: 64/GQ rows a workgroup, tiles of 1024/HD positions):
			attnCase{16, 4, 128, []seq{{7, 40}}, f16}, // SmolLM3's heads: blocks of 16 rows, the last one partial
			attnCase{8, 4, 8, []seq{{70, 33}}, f16},   // GQ 2: blocks of 32, tiles of 128 positions
			attnCase{6, 2, 160, []seq{{3, 25}}, f16},  // GQ 3: blocks of 21 (63 of 64 threads), tiles of 6
			attnCase{8, 1, 64, []seq{{0, 20}}, f16},   // GQ 8: blocks of 8 rows, from an empty cache
			// Split decode (attention_decode.wgsl, chunks of 64 positions):
			attnCase{4, 1, 128, []seq{{0, 1}}, f16},     // one position, four heads per workgroup
			attnCase{4, 4, 8, []seq{{127, 1}}, f16},     // two whole chunks, one head per kv head
			attnCase{6, 2, 160, []seq{{64, 1}}, f16},    // a chunk and one position, three heads per workgroup
			attnCase{8, 1, 64, []seq{{130, 1}}, f16},    // eight heads per kv head: two workgroups of four
			attnCase{16, 4, 128, []seq{{4099, 1}}, f16}, // SmolLM3's heads over a long cache, 65 chunks
			// Several sequences a step: decode rows of different lengths, prefill rows beside them.
			attnCase{16, 4, 128, []seq{{200, 1}, {3, 1}, {64, 1}}, f16},
			attnCase{8, 4, 8, []seq{{10, 1}, {0, 17}, {129, 1}, {70, 5}}, f16},
		)
	}
	const blockLen = 64 // the least the kernels take, so that small caches span several blocks
	for _, c := range cases {
		t.Run(fmt.Sprintf("h%d/kv%d/hd%d/%v/f16=%v", c.heads, c.kvHeads, c.headDim, c.seqs, c.f16), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(c.headDim*1000+c.seqs[0].pos0)))
			kvDim, qDim := c.kvHeads*c.headDim, c.heads*c.headDim
			// Each sequence's blocks, taken from a shuffled pool.
			blocks, maxCtx := 0, 0
			for _, s := range c.seqs {
				blocks += ceilDiv(s.pos0+s.T, blockLen)
				maxCtx = max(maxCtx, s.pos0+s.T)
			}
			ids := r.Perm(blocks)
			var spans []seqSpan
			var keys, vals [][]float32 // by sequence: every position's
			var newK, newV, q []float32
			var oldK, oldV []float32
			var oldSlots, newSlots []uint32
			row := 0
			for _, s := range c.seqs {
				n := ceilDiv(s.pos0+s.T, blockLen)
				sp := seqSpan{row0: row, n: s.T, pos0: s.pos0}
				for _, id := range ids[:n] {
					sp.blocks = append(sp.blocks, int32(id))
				}
				ids = ids[n:]
				spans = append(spans, sp)
				row += s.T
				k, v := randF32(r, (s.pos0+s.T)*kvDim, 1), randF32(r, (s.pos0+s.T)*kvDim, 1)
				keys, vals = append(keys, k), append(vals, v)
				oldK, oldV = append(oldK, k[:s.pos0*kvDim]...), append(oldV, v[:s.pos0*kvDim]...)
				newK, newV = append(newK, k[s.pos0*kvDim:]...), append(newV, v[s.pos0*kvDim:]...)
				q = append(q, randF32(r, s.T*qDim, 1)...)
				for p := range s.pos0 + s.T {
					slot := uint32(int(sp.blocks[p/blockLen])*blockLen + p%blockLen)
					if p < s.pos0 {
						oldSlots = append(oldSlots, slot)
					} else {
						newSlots = append(newSlots, slot)
					}
				}
			}
			T := row
			scale := float32(1 / math.Sqrt(float64(c.headDim)))
			shape := attnShape{Heads: c.heads, KVHeads: c.kvHeads, HeadDim: c.headDim, QStride: qDim, OutStride: qDim, KVStride: kvDim, Scale: scale, F16: c.f16}
			batch := must[*attnBatch](t)(d.newAttnBatch(shape, blockLen, max(T, len(oldSlots)), len(c.seqs), maxCtx))
			shape.Batch = batch
			elt := uint64(cacheElt(c.f16))
			kc := must[*buffer](t)(d.NewStorage("kc", elt*uint64(blocks*blockLen*kvDim)))
			vc := must[*buffer](t)(d.NewStorage("vc", elt*uint64(blocks*blockLen*kvDim)))
			if len(oldSlots) > 0 {
				kb := must[*buffer](t)(d.UploadF32("old k", oldK))
				vb := must[*buffer](t)(d.UploadF32("old v", oldV))
				if err := d.Write(batch.slots, 0, u32Bytes(oldSlots)); err != nil {
					t.Fatal(err)
				}
				st := must[*op](t)(d.NewKVStore(whole(kb), whole(vb), whole(kc), whole(vc), whole(batch.slots), kvDim, kvDim, c.f16))
				run(t, d, len(oldSlots), 0, func(e *encoder) { st.Record(e, len(oldSlots)) })
			}
			kb := must[*buffer](t)(d.UploadF32("k", newK))
			vb := must[*buffer](t)(d.UploadF32("v", newV))
			qb := must[*buffer](t)(d.UploadF32("q", q))
			ob := must[*buffer](t)(d.NewStorage("out", uint64(4*T*qDim)))
			at := must[*attentionOp](t)(d.NewAttention(whole(qb), whole(kb), whole(vb), whole(kc), whole(vc), whole(ob), shape))
			if err := batch.write(d, spans); err != nil {
				t.Fatal(err)
			}
			run(t, d, T, 0, func(e *encoder) { at.Record(e, T) })
			got := mustF32(t, d, ob, 0, T*qDim)
			for name, cache := range map[string]struct {
				buf  *buffer
				want []float32
			}{"key": {kc, newK}, "value": {vc, newV}} {
				want := cache.want
				if c.f16 {
					want = f16Round(want)
				}
				for i, slot := range newSlots {
					got := readCache(t, d, cache.buf, int(slot)*kvDim, kvDim, c.f16)
					if e := relErr(got, want[i*kvDim:(i+1)*kvDim]); e != 0 {
						t.Errorf("the new %s row %d differs from the step's, max relative error %.3g", name, i, e)
					}
				}
			}
			for i, s := range c.seqs {
				wk, wv := keys[i], vals[i]
				if c.f16 {
					wk, wv = f16Round(wk), f16Round(wv)
				}
				for tok := range s.T {
					r := spans[i].row0 + tok
					want := ref.Attention(q[r*qDim:(r+1)*qDim], wk, wv, c.heads, c.kvHeads, c.headDim, s.pos0+tok+1, scale)
					e := relErr(got[r*qDim:(r+1)*qDim], want)
					if e > 1e-4 {
						t.Errorf("sequence %d, row %d: max relative error %.3g", i, tok, e)
					}
				}
			}
		})
	}
}

// readCache reads n elements of a KV cache from element off, f32 or packed halves.
func readCache(t *testing.T, d *device, b *buffer, off, n int, f16 bool) []float32 {
	t.Helper()
	if !f16 {
		return mustF32(t, d, b, off, n)
	}
	raw := must[[]byte](t)(d.Read(b, uint64(2*off), uint64(2*n)))
	out := make([]float32, n)
	for i := range out {
		out[i] = quant.F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return out
}

// TestAttnDecodeGrid checks how the split decode pass spreads over the cache: SmolLM3 (16 heads, 4 per
// kv head) gets at least 256 workgroups at 4096 positions, as issue #13 asks.
func TestAttnDecodeGrid(t *testing.T) {
	for _, c := range []struct {
		heads, kvHeads, n int
		x, y              uint32
	}{
		{16, 4, 1, 4, 1},
		{16, 4, 64, 4, 1},
		{16, 4, 65, 4, 2},
		{16, 4, 4096, 4, 64},
		{16, 4, 4100, 4, 65},
		{8, 1, 130, 2, 3}, // eight heads a kv head: two workgroups of four
		{6, 2, 10, 2, 1},  // three a kv head: one workgroup of three
		{4, 4, 10, 4, 1},  // no grouping
	} {
		x, y := attnShape{Heads: c.heads, KVHeads: c.kvHeads, HeadDim: 128}.decodeGrid(c.n)
		if x != c.x || y != c.y {
			t.Errorf("%d heads over %d kv heads, %d positions: grid (%d, %d), want (%d, %d)", c.heads, c.kvHeads, c.n, x, y, c.x, c.y)
		}
	}
}

func TestEmbed(t *testing.T) {
	d := testDevice(t)
	for _, c := range matCases {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", c.typ, split), func(t *testing.T) {
				r := rand.New(rand.NewPCG(5, uint64(c.k)))
				raw, deq := quantized(t, r, c.typ, c.m, c.k)
				if split {
					rb, _ := deviceRowBytes(c.typ, c.k)
					limitBinding(t, d, uint64(5*rb))
				}
				w := must[*weights](t)(d.UploadWeights("embd", c.typ, c.k, c.m, raw, nil))
				toks := []uint32{0, uint32(c.m - 1), uint32(6 % c.m), uint32(5 % c.m), uint32(17 % c.m)}
				tb := must[*buffer](t)(d.Upload("tok", u32Bytes(toks)))
				ob := must[*buffer](t)(d.NewStorage("out", uint64(4*len(toks)*c.k)))
				op := must[*embedOp](t)(d.NewEmbed(w, whole(tb), whole(ob)))
				run(t, d, len(toks), 0, func(e *encoder) { op.Record(e, len(toks)) })
				got := mustF32(t, d, ob, 0, len(toks)*c.k)
				for i, id := range toks {
					want := deq[int(id)*c.k : int(id+1)*c.k]
					if e := relErr(got[i*c.k:(i+1)*c.k], want); e != 0 {
						t.Errorf("token %d (id %d): max relative error %.3g, want exact", i, id, e)
					}
				}
			})
		}
	}
}

func readPairs(t *testing.T, d *device, b *buffer, n int) (vals []float32, idx []int) {
	raw, err := d.Read(b, 0, uint64(8*n))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(raw[8*i:])))
		idx = append(idx, int(int32(binary.LittleEndian.Uint32(raw[8*i+4:]))))
	}
	return vals, idx
}

// logitsWithTies returns n random logits where the maximum appears twice and several values repeat.
func logitsWithTies(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(6, seed))
	x := randF32(r, n, 3)
	top := ref.Argmax(x)
	x[n-1] = x[top]           // a later duplicate of the maximum
	x[n/2], x[n/3] = 7.5, 7.5 // a repeated value that ranks high
	return x
}

func TestArgmax(t *testing.T) {
	d := testDevice(t)
	for _, n := range []int{1, 300, 4096, 10007, 128256} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x := logitsWithTies(uint64(n), n)
			if n == 1 {
				x = []float32{-2}
			}
			// The row sits after 8 other floats, as a later row of a logits buffer would.
			xb := must[*buffer](t)(d.UploadF32("logits", append(make([]float32, 8), x...)))
			op := must[*argmaxOp](t)(d.NewArgmax(whole(xb), n, 8))
			run(t, d, 1, 0, func(e *encoder) { op.Record(e) })
			raw, err := d.Read(op.Result, 0, 8)
			if err != nil {
				t.Fatal(err)
			}
			got := int(binary.LittleEndian.Uint32(raw))
			if want := ref.Argmax(x); got != want {
				t.Errorf("argmax = %d, want %d", got, want)
			}
			if v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4:])); v != x[ref.Argmax(x)] {
				t.Errorf("max value = %v, want %v", v, x[ref.Argmax(x)])
			}
		})
	}
}

func TestTopK(t *testing.T) {
	d := testDevice(t)
	for _, c := range []struct{ n, k int }{{5, 5}, {1000, 1}, {3000, 40}, {20000, 64}} {
		t.Run(fmt.Sprintf("n%d/k%d", c.n, c.k), func(t *testing.T) {
			x := logitsWithTies(uint64(c.n), c.n)
			xb := must[*buffer](t)(d.UploadF32("logits", x))
			op := must[*topKOp](t)(d.NewTopK(whole(xb), c.n, 0, c.k))
			run(t, d, 1, 0, func(e *encoder) { op.Record(e) })
			vals, idx := readPairs(t, d, op.Result, c.k)
			want := ref.TopK(x, c.k)
			for i := range c.k {
				if idx[i] != want[i] || vals[i] != x[want[i]] {
					t.Fatalf("rank %d: got (%d, %v), want (%d, %v)", i, idx[i], vals[i], want[i], x[want[i]])
				}
			}
		})
	}
	if _, err := d.NewTopK(bufRange{}, 10, 0, maxTopK+1); err == nil {
		t.Error("k beyond MaxTopK accepted")
	}
}

// TestHeadRope checks head_rope.wgsl (QK-norm and/or RoPE of NORM or NEOX pairs, in place) against
// gpu/ref's HeadNorm and Rotate, with angles of every scaling from model.Config.RopeAngles.
func TestHeadRope(t *testing.T) {
	d := testDevice(t)
	yarn := model.Config{RopeBase: 1e6, RopeDim: 128, RopeScaling: model.RopeScalingYaRN, RopeFactor: 4, RopeOrigContext: 32768, RopeAttnFactor: 1}
	plain := func(base float32, dim int) model.Config {
		return model.Config{RopeBase: base, RopeDim: dim, RopeScaling: model.RopeScalingNone, RopeFactor: 1, RopeAttnFactor: 1}
	}
	for _, c := range []struct {
		name                          string
		heads, headDim, stride, T, p0 int
		cfg                           model.Config
		norm, rope, neox              bool
	}{
		{"qwen3 q: norm + neox", 16, 128, 2048, 3, 5, plain(1e6, 128), true, true, true},
		{"qwen3 k: norm + neox, decode", 8, 128, 1024, 1, 300, plain(1e6, 128), true, true, true},
		{"norm only (NoPE layer)", 4, 64, 256, 2, 0, plain(1e4, 64), true, false, false},
		{"neox, partial rotation", 4, 16, 72, 2, 9, plain(1e4, 8), false, true, true},
		{"norm + adjacent pairs", 2, 32, 64, 4, 17, plain(1e4, 32), true, true, false},
		{"yarn neox at 100k", 4, 128, 512, 2, 100000, yarn, true, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, uint64(c.heads*c.headDim+c.p0)))
			x := randF32(r, c.T*c.stride, 3)
			g := randF32(r, c.headDim, 1)
			var cs []float32
			for tok := range c.T {
				a := make([]float32, c.cfg.RopeDim)
				c.cfg.RopeAngles(c.p0+tok, a)
				cs = append(cs, a...)
			}
			xb := must[*buffer](t)(d.UploadF32("x", x))
			gb := must[*buffer](t)(d.UploadF32("g", g))
			cb := must[*buffer](t)(d.UploadF32("cs", cs))
			op := must[*op](t)(d.NewHeadRope(whole(xb), c.heads, c.headDim, c.stride, c.cfg.RopeDim, headOptions{
				Norm: c.norm, G: whole(gb), Eps: 1e-6, Rope: c.rope, CS: whole(cb), Neox: c.neox}))
			run(t, d, c.T, c.p0, func(e *encoder) { op.Record(e, c.T) })
			y := mustF32(t, d, xb, 0, len(x))
			for tok := range c.T {
				want := append([]float32(nil), x[tok*c.stride:(tok+1)*c.stride]...)
				heads := want[:c.heads*c.headDim]
				if c.norm {
					ref.HeadNorm(heads, g, c.headDim, 1e-6)
				}
				if c.rope {
					ref.Rotate(heads, c.headDim, c.neox, ref.Angles(&c.cfg, c.p0+tok))
				}
				got := y[tok*c.stride : (tok+1)*c.stride]
				e := relErr(got, want)
				// The float32 angles drift from ref's float64 ones by about pos·2⁻²⁴ radians.
				tol := 2e-5 + 8*float64(c.p0+tok)*0x1p-24
				t.Logf("token %d: max rel err %.2e (limit %.2g)", tok, e, tol)
				if e > tol {
					t.Errorf("token %d: max relative error %.3g", tok, e)
				}
			}
		})
	}
}
