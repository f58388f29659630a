package cpu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"smolchat/engine"
	"smolchat/model"
	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// A small random smollm3-architecture model with F32 weights, built in memory, so that the forward pass
// can be checked against an independent float64 implementation without any fixture: 4 layers (layer 3
// is NoPE), GQA 2:1, tied embeddings, RoPE over all head dims at base 10000.
const (
	synDim, synLayers, synHeads, synKVHeads, synHeadDim, synFF, synVocab, synContext = 32, 4, 4, 2, 8, 48, 50, 64
)

// syntheticModel writes the model as GGUF and opens it through the same code path as a file.
func syntheticModel(t testing.TB) *model.Model {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 13))
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	w.AddKV("general.architecture", "smollm3")
	for _, kv := range []struct {
		k string
		v uint32
	}{{"embedding_length", synDim}, {"block_count", synLayers}, {"attention.head_count", synHeads},
		{"attention.head_count_kv", synKVHeads}, {"feed_forward_length", synFF}, {"context_length", synContext}} {
		w.AddKV("smollm3."+kv.k, kv.v)
	}
	w.AddKV("smollm3.rope.freq_base", float32(10000))
	w.AddKV("smollm3.attention.layer_norm_rms_epsilon", float32(1e-5))
	type tensor struct {
		name       string
		rows, cols int
		std, mean  float64
	}
	ts := []tensor{{"token_embd.weight", synVocab, synDim, 1, 0}, {"output_norm.weight", 1, synDim, 0.2, 1}}
	qdim, kvdim := synHeads*synHeadDim, synKVHeads*synHeadDim
	for l := range synLayers {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tensor{p + "attn_norm.weight", 1, synDim, 0.2, 1},
			tensor{p + "attn_q.weight", qdim, synDim, 1 / math.Sqrt(synDim), 0},
			tensor{p + "attn_k.weight", kvdim, synDim, 1 / math.Sqrt(synDim), 0},
			tensor{p + "attn_v.weight", kvdim, synDim, 1 / math.Sqrt(synDim), 0},
			tensor{p + "attn_output.weight", synDim, qdim, 1 / math.Sqrt(float64(qdim)), 0},
			tensor{p + "ffn_norm.weight", 1, synDim, 0.2, 1},
			tensor{p + "ffn_gate.weight", synFF, synDim, 1 / math.Sqrt(synDim), 0},
			tensor{p + "ffn_up.weight", synFF, synDim, 1 / math.Sqrt(synDim), 0},
			tensor{p + "ffn_down.weight", synDim, synFF, 1 / math.Sqrt(synFF), 0})
	}
	for _, x := range ts {
		dims := []uint64{uint64(x.cols), uint64(x.rows)}
		if x.rows == 1 {
			dims = dims[:1]
		}
		if err := w.AddTensor(x.name, quant.F32, dims); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		data := make([]byte, 4*x.rows*x.cols)
		for i := 0; i < len(data); i += 4 {
			binary.LittleEndian.PutUint32(data[i:], math.Float32bits(float32(x.mean+x.std*rng.NormFloat64())))
		}
		if err := w.WriteTensor(x.name, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes(), "synthetic.gguf")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// referenceForward is an independent, plain float64 forward pass of m over tokens from position 0,
// returning every position's logits. It follows the HF/llama.cpp definition of the block, with the
// backend's documented rounding: keys, values and queries pass through half precision before attention.
func referenceForward(m *model.Model, tokens []int32, halfQuery bool) [][]float64 {
	c := m.Config
	get := func(t model.Tensor) [][]float64 {
		rows := make([][]float64, t.Rows)
		for r := range rows {
			rows[r] = make([]float64, t.Cols)
			for i := range rows[r] {
				rows[r][i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*(r*t.Cols+i):])))
			}
		}
		return rows
	}
	matvec := func(w [][]float64, x []float64) []float64 {
		y := make([]float64, len(w))
		for r := range w {
			for i, v := range x {
				y[r] += w[r][i] * v
			}
		}
		return y
	}
	norm := func(x []float64, w []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(len(x))+float64(c.RMSEps))
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * s * w[i]
		}
		return y
	}
	half := func(x []float64) []float64 {
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = float64(quant.F16ToF32(quant.F32ToF16(float32(v))))
		}
		return y
	}
	rope := func(x []float64, pos int) {
		for h := 0; h < len(x); h += c.HeadDim {
			for i := 0; i < c.RopeDim/2; i++ {
				theta := float64(pos) * math.Pow(float64(c.RopeBase), -2*float64(i)/float64(c.RopeDim))
				s, co := math.Sincos(theta)
				a, b := x[h+2*i], x[h+2*i+1]
				x[h+2*i], x[h+2*i+1] = a*co-b*s, a*s+b*co
			}
		}
	}
	W := m.Weights
	embed := get(W.Embed)
	type cache struct{ k, v [][]float64 }
	caches := make([]cache, c.Layers)
	var logits [][]float64
	for pos, tok := range tokens {
		x := append([]float64(nil), embed[tok]...)
		for l, L := range W.Layers {
			xn := norm(x, get(L.AttnNorm)[0])
			q, k, v := matvec(get(L.Q), xn), matvec(get(L.K), xn), matvec(get(L.V), xn)
			if !c.NoRope[l] {
				rope(q, pos)
				rope(k, pos)
			}
			caches[l].k = append(caches[l].k, half(k))
			caches[l].v = append(caches[l].v, half(v))
			if halfQuery {
				q = half(q)
			}
			att := make([]float64, c.QDim())
			for h := range c.Heads {
				kvh := h / (c.Heads / c.KVHeads)
				qh := q[h*c.HeadDim : (h+1)*c.HeadDim]
				w := make([]float64, pos+1)
				peak := math.Inf(-1)
				for p := range w {
					for i, qv := range qh {
						w[p] += qv * caches[l].k[p][kvh*c.HeadDim+i]
					}
					w[p] /= math.Sqrt(float64(c.HeadDim))
					peak = max(peak, w[p])
				}
				var sum float64
				for p := range w {
					w[p] = math.Exp(w[p] - peak)
					sum += w[p]
				}
				for p := range w {
					for i := range c.HeadDim {
						att[h*c.HeadDim+i] += w[p] / sum * caches[l].v[p][kvh*c.HeadDim+i]
					}
				}
			}
			for i, v := range matvec(get(L.O), att) {
				x[i] += v
			}
			xn = norm(x, get(L.FFNNorm)[0])
			g, u := matvec(get(L.Gate), xn), matvec(get(L.Up), xn)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			for i, v := range matvec(get(L.Down), g) {
				x[i] += v
			}
		}
		logits = append(logits, matvec(get(W.Output), norm(x, get(W.OutputNorm)[0])))
	}
	return logits
}

func synTokens(n int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(rng.IntN(synVocab))
	}
	return toks
}

func TestForwardMatchesReference(t *testing.T) {
	m := syntheticModel(t)
	if !m.Config.TiedOutput || !m.Config.NoRope[3] || m.Config.NoRope[0] {
		t.Fatalf("synthetic config %+v: want tied output and NoPE layer 3", m.Config)
	}
	tokens := synTokens(synContext, 1) // fills the context; crosses the batch boundary
	// The reference rounds the query to half as Fast and Llama numerics do; Exact keeps it float32.
	want := referenceForward(m, tokens, true)
	wantExact := referenceForward(m, tokens, false)
	// The limit leaves room for the odd value whose half rounding (in the KV cache) differs between the
	// float32 and float64 computations: one half ulp is 5e-4 relative. Llama numerics add llama.cpp's
	// half-precision attention accumulator, which rounds after every position (measured 0.002 here). A
	// real fault is orders of magnitude larger, as the mutated cases show.
	tests := []struct {
		name    string
		threads int
		num     Numerics
		pieces  []int            // lengths of the successive Forward calls
		mutate  func(b *Backend) // a deliberate fault the comparison must catch
	}{
		{"one call, 1 thread", 1, Fast, []int{synContext}, nil},
		{"one call, 3 threads", 3, Fast, []int{synContext}, nil},
		{"token by token", 2, Fast, nil, nil},
		{"uneven pieces", 2, Fast, []int{1, 5, 17, 2, 39}, nil},
		{"llama, one call", 2, Llama, []int{synContext}, nil},
		{"llama, token by token", 2, Llama, nil, nil},
		{"exact, one call", 2, Exact, []int{synContext}, nil},
		{"exact, uneven pieces", 2, Exact, []int{1, 5, 17, 2, 39}, nil},
		{"fault: RoPE on the NoPE layer", 2, Fast, []int{synContext}, func(b *Backend) { b.layers[3].rope = true }},
		{"fault: no RoPE on layer 1", 2, Fast, []int{synContext}, func(b *Backend) { b.layers[1].rope = false }},
		{"fault (llama): RoPE on the NoPE layer", 2, Llama, []int{synContext}, func(b *Backend) { b.layers[3].rope = true }},
		{"fault (exact): RoPE on the NoPE layer", 2, Exact, []int{synContext}, func(b *Backend) { b.layers[3].rope = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, want := 1e-3, want
			switch tt.num {
			case Llama:
				limit = 5e-3
			case Exact:
				want = wantExact
			}
			b := newBackend(t, m, Options{Threads: tt.threads, Numerics: tt.num})
			if tt.mutate != nil {
				tt.mutate(b)
			}
			pieces := tt.pieces
			if pieces == nil {
				for range tokens {
					pieces = append(pieces, 1)
				}
			}
			var worstErr float64
			off := 0
			for _, n := range pieces {
				got, err := b.Forward(context.Background(), tokens[off:off+n], allRows(n))
				if err != nil {
					t.Fatal(err)
				}
				for i, row := range got {
					ref := want[off+i]
					var scale float64
					for _, v := range ref {
						scale = max(scale, math.Abs(v))
					}
					for j, v := range row {
						worstErr = max(worstErr, math.Abs(float64(v)-ref[j])/scale)
					}
				}
				off += n
			}
			t.Logf("worst |Δlogit| / max|logit| = %.2g", worstErr)
			if tt.mutate == nil && worstErr > limit {
				t.Errorf("logits differ from the float64 reference by %.2g of their range", worstErr)
			}
			if tt.mutate != nil && worstErr < 10*limit {
				t.Errorf("the fault moved the logits by only %.2g of their range: the comparison cannot see it", worstErr)
			}
		})
	}
}

// cancelAfter is a context whose Err turns to Canceled after it has been asked n times.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestCancel(t *testing.T) {
	m := syntheticModel(t)
	b := newBackend(t, m, Options{Threads: 2})
	tokens := synTokens(6, 2)
	if _, err := b.Forward(context.Background(), tokens[:2], nil); err != nil {
		t.Fatal(err)
	}
	for _, asks := range []int{0, 1, 3, synLayers} {
		ctx := &cancelAfter{Context: context.Background(), n: asks}
		if _, err := b.Forward(ctx, tokens[2:], []int{3}); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d checks: err = %v, want context.Canceled", asks, err)
		}
		if b.Len() != 2 {
			t.Fatalf("cancelled after %d checks: Len = %d, want the 2 positions from before", asks, b.Len())
		}
	}
	got, err := b.Forward(context.Background(), tokens[2:], []int{3})
	if err != nil {
		t.Fatal(err)
	}
	fresh := newBackend(t, m, Options{Threads: 1})
	want, err := fresh.Forward(context.Background(), tokens, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(got[0], want[0]); d > 1e-5 {
		t.Errorf("after the cancelled calls the logits differ from a fresh run by %g", d)
	}
}

func TestForwardErrors(t *testing.T) {
	m := syntheticModel(t)
	b := newBackend(t, m, Options{Threads: 1, Context: 8})
	ctx := context.Background()
	if _, err := b.Forward(ctx, []int32{1, 2, 3}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tokens []int32
		want   []int
		is     error
		msg    string
	}{
		{"negative token", []int32{5, -1}, nil, nil, "token -1 at index 1"},
		{"token past the vocabulary", []int32{synVocab}, nil, nil, fmt.Sprintf("outside the vocabulary of %d", synVocab)},
		{"row past the tokens", []int32{5}, []int{1}, nil, "wanted row 1"},
		{"rows not ascending", []int32{5, 6}, []int{1, 0}, nil, "ascending"},
		{"context full", []int32{5, 6, 7, 8, 9, 10}, nil, engine.ErrContextFull, "3 cached + 6 new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Forward(ctx, tt.tokens, tt.want)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want it to wrap %v", err, tt.is)
			}
			if b.Len() != 3 {
				t.Fatalf("Len = %d after a failed call, want 3", b.Len())
			}
		})
	}
	if got, err := b.Forward(ctx, nil, nil); err != nil || len(got) != 0 || b.Len() != 3 {
		t.Errorf("empty Forward = %v, %v, Len %d; want nothing, no error, Len 3", got, err, b.Len())
	}
	if _, err := b.Forward(ctx, []int32{5, 6, 7, 8, 9}, nil); err != nil {
		t.Errorf("filling the context exactly: %v", err)
	}
	// (Truncate's bounds are backendtest's: TestBackendContract.)
	b.Close()
	if _, err := b.Forward(ctx, []int32{1}, nil); err == nil {
		t.Error("Forward after Close succeeded")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	m := syntheticModel(t)
	for _, tt := range []struct {
		name string
		opts Options
		msg  string
	}{
		{"negative threads", Options{Threads: -1}, "threads"},
		{"negative context", Options{Context: -5}, "context"},
		{"context past the model's", Options{Context: synContext + 1}, "exceeds the model's trained context"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := New(m, tt.opts); err == nil || !strings.Contains(err.Error(), tt.msg) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("err = %v, want one mentioning %q", err, tt.msg)
			}
		})
	}
	b := newBackend(t, m, Options{Threads: 3})
	if b.Name() != "cpu" || !strings.HasPrefix(b.Device(), "CPU (3 threads") || b.MaxContext() != synContext {
		t.Errorf("Name %q, Device %q, MaxContext %d", b.Name(), b.Device(), b.MaxContext())
	}
	var _ engine.Backend = b
}
