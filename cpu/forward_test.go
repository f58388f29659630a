package cpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"smolchat/cpu/kernels"
	"smolchat/internal/conformance"
	"testing"

	"smolchat/gpu/ref"
	"smolchat/model"
	"smolchat/model/quant"
)

func TestRoPEHandComputed(t *testing.T) {
	// One pair at position 1, base 10000: θ = 1 rad, so (1, 0) turns into (cos 1, sin 1).
	var r ropeTable
	r.fill(&model.Config{RopeDim: 2, RopeBase: 10000, RopeScaling: model.RopeScalingNone}, 1)
	x := []float32{1, 0}
	r.rope(x, 2, false)
	if math.Abs(float64(x[0])-0.5403023059) > 1e-7 || math.Abs(float64(x[1])-0.8414709848) > 1e-7 {
		t.Errorf("rotating (1, 0) by 1 rad gave %v, want (0.5403023, 0.8414710)", x)
	}
}

// TestRoPE checks the CPU's rotation (angles from model.Config.RopeAngles, pairs NORM or NEOX, QK-norm
// first when asked) against gpu/ref's float64 one, for each scaling.
func TestRoPE(t *testing.T) {
	llama3 := make([]float32, 4) // rope_freqs of a rope dim of 8: the slow pairs divided by up to 8
	for i := range llama3 {
		llama3[i] = []float32{1, 1, 2.5, 8}[i]
	}
	plain := func(base float32, ropeDim int) model.Config {
		return model.Config{RopeBase: base, RopeDim: ropeDim, RopeScaling: model.RopeScalingNone, RopeFactor: 1, RopeAttnFactor: 1}
	}
	with := func(c model.Config, f func(*model.Config)) model.Config { f(&c); return c }
	tests := []struct {
		name           string
		pos            int
		c              model.Config
		headDim, heads int
		neox, qkNorm   bool
	}{
		{"position 0 is the identity", 0, plain(5e6, 128), 128, 2, false, false},
		{"position 1", 1, plain(10000, 8), 8, 3, false, false},
		{"position 7 smollm3", 7, plain(5e6, 128), 128, 4, false, false},
		{"position 4095 smollm3", 4095, plain(5e6, 128), 128, 1, false, false},
		{"partial rotation leaves the tail alone", 300, plain(10000, 8), 16, 2, false, false},
		{"neox", 37, plain(1e6, 64), 64, 3, true, false},
		{"neox, partial", 300, plain(10000, 8), 16, 2, true, false},
		{"neox with qk-norm", 1000, plain(1e6, 128), 128, 2, true, true},
		{"llama3 frequency factors", 2000, with(plain(500000, 8), func(c *model.Config) { c.RopeFreqs = llama3 }), 8, 2, false, false},
		{"linear scaling", 3000, with(plain(10000, 64), func(c *model.Config) { c.RopeScaling, c.RopeFactor = model.RopeScalingLinear, 4 }), 64, 2, false, false},
		{"yarn", 100000, with(plain(5e6, 128), func(c *model.Config) {
			c.RopeScaling, c.RopeFactor, c.RopeOrigContext = model.RopeScalingYaRN, 2, 65536
		}), 128, 2, false, false},
		{"yarn, neox, attn factor", 40000, with(plain(1e6, 128), func(c *model.Config) {
			c.RopeScaling, c.RopeFactor, c.RopeOrigContext, c.RopeAttnFactor = model.RopeScalingYaRN, 4, 32768, 0.9
		}), 128, 2, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.pos)))
			x := make([]float32, tt.heads*tt.headDim)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			g := make([]float32, tt.headDim)
			for i := range g {
				g[i] = float32(0.5 + rng.Float64())
			}
			want := append([]float32(nil), x...)
			if tt.qkNorm {
				ref.HeadNorm(want, g, tt.headDim, 1e-6)
				headNorm(x, g, tt.headDim, 1e-6)
			}
			ref.Rotate(want, tt.headDim, tt.neox, ref.Angles(&tt.c, tt.pos))
			var r ropeTable
			r.fill(&tt.c, tt.pos)
			r.rope(x, tt.headDim, tt.neox)
			// The angles are built as float32 products, as ggml does, so they drift from the exact ones
			// by about pos·2⁻²⁴ radians, times the magnitude of the values rotated.
			var mag float64
			for _, v := range want {
				mag = max(mag, math.Abs(float64(v)))
			}
			tol := 2e-6 + 4*float64(tt.pos)*0x1p-24*max(1, mag)
			for i := range x {
				if d := math.Abs(float64(x[i]) - float64(want[i])); d > tol {
					t.Fatalf("element %d (head %d, dim %d): got %v, want %v (|Δ| %.2g > %.2g)",
						i, i/tt.headDim, i%tt.headDim, x[i], want[i], d, tol)
				}
			}
		})
	}
}

// testBackend is a Backend with a config and cache but no weights, for exercising attention alone.
func testBackend(t *testing.T, c model.Config, threads int) *Backend {
	b := &Backend{cfg: c, threads: threads, pool: newPool(threads), kv: newKVPool(c.Layers, c.KVDim(), 1<<20)}
	b.s.attn = make([]attnScratch, threads)
	t.Cleanup(b.pool.close)
	return b
}

// fillSeq makes a sequence in b's pool holding keys[p] and vals[p] at each position p of layer 0.
func fillSeq(b *Backend, keys, vals [][]float32) *kvSeq {
	s := &kvSeq{}
	b.kv.grow(s, len(keys))
	for p := range keys {
		b.kv.store(s, 0, p, keys[p], vals[p])
	}
	s.N = len(keys)
	return s
}

// slots are the batch rows of positions pos0..pos0+T-1 of s.
func slots(s *kvSeq, pos0, T int) []kvSlot {
	at := make([]kvSlot, T)
	for t := range at {
		at[t] = kvSlot{s, pos0 + t}
	}
	return at
}

// TestAttentionGQA checks attention in each numerics mode on a batch that follows cached positions. Fast
// and Exact are compared with a float64 computation from the half-rounded cache (with and without the
// query rounded to half); Llama, bit for bit, with a scalar twin of ggml's flash-attention recurrence
// (half query, online softmax, half accumulator rounded after every position). All must read KV head
// h/group for query head h.
func TestAttentionGQA(t *testing.T) {
	for _, tc := range []struct{ headDim, pos0, T int }{
		{16, 3, 4},   // three cached positions, then a batch of four tokens
		{40, 300, 3}, // across a page of the cache; heads that use the 32- and 8-wide kernel paths
	} {
		t.Run(fmt.Sprintf("headDim %d, %d+%d positions", tc.headDim, tc.pos0, tc.T), func(t *testing.T) {
			testAttentionGQA(t, tc.headDim, tc.pos0, tc.T)
		})
	}
}

func testAttentionGQA(t *testing.T, headDim, pos0, T int) {
	c := model.Config{Layers: 1, Heads: 8, KVHeads: 2, HeadDim: headDim}
	n := pos0 + T
	rng := rand.New(rand.NewPCG(7, 7))
	randn := func(k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	keys, vals := make([][]float32, n), make([][]float32, n)
	for p := range n {
		keys[p], vals[p] = randn(c.KVDim()), randn(c.KVDim())
	}
	// Scale the queries up so that the softmax is peaked and the running maximum moves.
	q := randn(T * c.QDim())
	for i := range q {
		q[i] *= 3
	}
	run := func(num Numerics) []float32 {
		b := testBackend(t, c, 2)
		b.num = num
		s := fillSeq(b, keys, vals)
		out := make([]float32, T*c.QDim())
		b.attention(0, slots(s, pos0, T), q, out)
		return out
	}
	half := func(x float32) float32 { return quant.F16ToF32(quant.F32ToF16(x)) }
	hd := c.HeadDim
	// reference computes one head's output in float64 from the half-rounded cache, reading KV head kvh,
	// with the query rounded to half or not.
	reference := func(t, h, kvh int, halfQuery bool) []float64 {
		qh := append([]float32(nil), q[t*c.QDim()+h*hd:t*c.QDim()+(h+1)*hd]...)
		if halfQuery {
			for i := range qh {
				qh[i] = half(qh[i])
			}
		}
		m := pos0 + t + 1
		w := make([]float64, m)
		peak := math.Inf(-1)
		for p := range m {
			for i := range hd {
				w[p] += float64(qh[i]) * float64(half(keys[p][kvh*hd+i]))
			}
			w[p] /= math.Sqrt(float64(hd))
			peak = max(peak, w[p])
		}
		var sum float64
		for p := range w {
			w[p] = math.Exp(w[p] - peak)
			sum += w[p]
		}
		o := make([]float64, hd)
		for p := range m {
			for i := range hd {
				o[i] += w[p] / sum * float64(half(vals[p][kvh*hd+i]))
			}
		}
		return o
	}
	// twin is the default mode's arithmetic written out one element at a time.
	twin := func(t, h, kvh int) []float32 {
		qh := make([]float32, hd)
		for i := range qh {
			qh[i] = half(q[t*c.QDim()+h*hd+i])
		}
		scale := float32(1 / math.Sqrt(float64(hd)))
		acc := make([]float32, hd) // half values held in float32
		m, sum := float32(math.Inf(-1)), float32(0)
		for p := 0; p <= pos0+t; p++ {
			var s float32
			for i := range hd {
				s += qh[i] * half(keys[p][kvh*hd+i])
			}
			s *= scale
			ms, vs := float32(1), float32(1)
			if s > m {
				ms = float32(math.Exp(float64(m - s)))
				m = s
				for i := range acc {
					acc[i] = half(acc[i] * ms)
				}
			} else {
				vs = float32(math.Exp(float64(s - m)))
			}
			for i := range acc {
				acc[i] = half(float32(math.FMA(float64(half(vals[p][kvh*hd+i])), float64(vs), float64(acc[i]))))
			}
			sum = sum*ms + vs
		}
		for i := range acc {
			acc[i] *= 1 / sum
		}
		return acc
	}
	group := c.Heads / c.KVHeads
	fast, llama, exact := run(Fast), run(Llama), run(Exact)
	var wrongMapping, twinDiff, fromFast float64
	mismatches := 0
	for tok := range T {
		for h := range c.Heads {
			at := tok*c.QDim() + h*hd
			for _, m := range []struct {
				name string
				got  []float32
				half bool
			}{{"exact", exact[at : at+hd], false}, {"fast", fast[at : at+hd], true}} {
				want := reference(tok, h, h/group, m.half)
				other := reference(tok, h, h%c.KVHeads, m.half) // the interleaved mapping, wrong for ggml and HF
				for i, g := range m.got {
					if d := math.Abs(float64(g) - want[i]); d > 1e-5 {
						t.Fatalf("%s: token %d head %d element %d: got %v, want %v", m.name, tok, h, i, g, want[i])
					}
					wrongMapping = max(wrongMapping, math.Abs(float64(g)-other[i]))
				}
			}
			// The twin's score sums in another order than the kernel's, which can move a score by an
			// ulp and, rarely, the half accumulator by an ulp of half: such elements are counted.
			for i, w := range twin(tok, h, h/group) {
				g := llama[at+i]
				d := math.Abs(float64(g - w))
				twinDiff = max(twinDiff, d)
				if d > 1e-6*math.Max(1, math.Abs(float64(w))) {
					mismatches++
				}
				if d > 2e-3*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("llama: token %d head %d element %d: got %v, twin %v", tok, h, i, g, w)
				}
				fromFast = max(fromFast, math.Abs(float64(g-fast[at+i])))
			}
		}
	}
	t.Logf("llama numerics vs its scalar twin: max |Δ| %.2g, %d elements over 1e-6; vs fast: max |Δ| %.2g", twinDiff, mismatches, fromFast)
	if mismatches > len(llama)/100 {
		t.Errorf("%d of %d elements differ from the twin", mismatches, len(llama))
	}
	if fromFast < 1e-4 {
		t.Errorf("llama numerics are within %.2g of fast: the half-precision accumulator is not in use", fromFast)
	}
	if wrongMapping < 0.1 {
		t.Errorf("the test cannot tell KV head h/group from h%%KVHeads (max difference %g)", wrongMapping)
	}
}

// TestNoPELayers checks that the smollm3 layers without RoPE are the ones llama.cpp skips: moving or
// dropping the NoPE set must push the error past the conformance limit (measured: 0.38 with no NoPE
// layer, 1.2 for layers 0 and 4, 1.3 for all layers, against 0.045-0.063 for the right set).
func TestNoPELayers(t *testing.T) {
	m := openModel(t, tinyFile)
	if got := m.Config.NoRope; len(got) != 8 || !got[3] || !got[7] || got[0] || got[4] {
		t.Fatalf("NoRope = %v, want layers 3 and 7", got)
	}
	b := newBackend(t, m, Options{Threads: 2, Numerics: Llama})
	const limit = 0.08 // TestConformance's full-sequence limit for this file in Llama numerics
	tests := []struct {
		name   string
		noRope []int
		bad    bool
	}{
		{"layers 3 and 7 (llama.cpp)", []int{3, 7}, false},
		{"no NoPE layers", nil, true},
		{"layers 0 and 4", []int{0, 4}, true},
		{"every layer", []int{0, 1, 2, 3, 4, 5, 6, 7}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for l := range b.layers {
				b.layers[l].rope = true
			}
			for _, l := range tt.noRope {
				b.layers[l].rope = false
			}
			defer func() {
				for l := range b.layers {
					b.layers[l].rope = !m.Config.NoRope[l]
				}
			}()
			w, at := conformance.Worst(sequenceError(t, b, smollm3TinyScore))
			t.Logf("worst error %.4f at %d", w, at)
			if tt.bad && w <= limit {
				t.Errorf("error %.4f stays within the limit %g: the conformance test cannot see this NoPE set is wrong", w, limit)
			}
			if !tt.bad && w > limit {
				t.Errorf("error %.4f exceeds %g", w, limit)
			}
		})
	}
}

func TestTiedOutput(t *testing.T) {
	m := openModel(t, tinyFile)
	if !m.Config.TiedOutput {
		t.Fatal("the smollm3 tiny file should have tied embeddings")
	}
	b := newBackend(t, m, Options{Threads: 1})
	if &b.output.Data[0] != &m.Weights.Embed.Data[0] || b.output.Rows != m.Config.Vocab {
		t.Fatal("the output projection is not token_embd")
	}
	logits, err := b.Forward(context.Background(), []int32{128000, 12805}, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	// The final normed hidden state of the wanted row is left in s.xn; the logit of token r must be its
	// product with row r of token_embd.
	dim := m.Config.Dim
	e := m.Weights.Embed
	at := kernels.VecDotType(e.Type)
	n, err := at.RowBytes(dim)
	if err != nil {
		t.Fatal(err)
	}
	act := make([]byte, n)
	if err := kernels.QuantizeActivation(at, b.s.xn[:dim], act); err != nil {
		t.Fatal(err)
	}
	dot := kernels.DotFunc(e.Type)
	for _, r := range []int{0, 1, 892, 64787, m.Config.Vocab - 1} {
		want := dot(e.Row(r), act, dim)
		if logits[0][r] != want {
			t.Errorf("logit %d = %v, want token_embd row · hidden = %v", r, logits[0][r], want)
		}
	}
}

// maxDiff is the largest |a[i]-b[i]|.
func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestKVCacheReuse(t *testing.T) {
	for _, file := range []string{storiesFile, tinyFile} {
		t.Run(file, func(t *testing.T) {
			m := openModel(t, file)
			b := newBackend(t, m, Options{Threads: 2})
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 3))
			seq := make([]int32, 150) // more than two batches
			for i := range seq {
				seq[i] = int32(rng.IntN(m.Config.Vocab))
			}
			fresh, err := b.Forward(ctx, seq, allRows(len(seq)))
			if err != nil {
				t.Fatal(err)
			}
			const tol = 1e-4
			// The same tokens in uneven pieces, each piece appended to the cache.
			b.Truncate(0)
			for off, step := 0, 1; off < len(seq); off, step = off+step, step*2+1 {
				piece := seq[off:min(off+step, len(seq))]
				got, err := b.Forward(ctx, piece, allRows(len(piece)))
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if d := maxDiff(got[i], fresh[off+i]); d > tol {
						t.Fatalf("position %d fed in a piece at %d: logits differ by %g from one Forward", off+i, off, d)
					}
				}
			}
			if b.Len() != len(seq) {
				t.Fatalf("Len = %d, want %d", b.Len(), len(seq))
			}
			// Truncate, then continue with other tokens: the result must equal a fresh run of the
			// shared prefix plus the new tokens.
			const keep = 70
			tail := []int32{seq[5], seq[9], seq[2]}
			b.Truncate(keep)
			got, err := b.Forward(ctx, tail, []int{0, 2})
			if err != nil {
				t.Fatal(err)
			}
			c := newBackend(t, m, Options{Threads: 1})
			want, err := c.Forward(ctx, append(append([]int32{}, seq[:keep]...), tail...), []int{keep, keep + 2})
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if d := maxDiff(got[i], want[i]); d > tol {
					t.Errorf("after Truncate(%d), row %d differs by %g from a fresh run", keep, i, d)
				}
			}
		})
	}
}
