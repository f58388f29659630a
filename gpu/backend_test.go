package gpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"smolchat/cpu"
	"smolchat/engine"
	"smolchat/engine/backendtest"
	"smolchat/gpu/ref"
	"smolchat/internal/conformance"
	"smolchat/internal/testutil"
	"smolchat/model"
)

// Figures from llama.cpp (node-llama-cpp 3.22.1, CPU backend) on the shared fixtures; see
// ../shared/testdata/README.md.
var (
	storiesPrompt = []int32{1, 403, 407, 261, 378} // "Once upon a time" with BOS
	storiesGreedy = []int32{432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
		410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394}
	storiesTop5 = []tokenLogit{{432, 17.7979}, {383, 14.2824}, {322, 9.7103}, {353, 9.5862}, {323, 9.1381}}

	tinyPrompt = []int32{128000, 12805, 5304, 264, 892}
	tinyTop5   = []tokenLogit{{44930, 110.4432}, {39486, 107.6652}, {59911, 97.2317}, {104517, 96.6924}, {892, 95.9408}}
)

type tokenLogit struct {
	id    int32
	logit float32
}

func openModel(t *testing.T, name string) *model.Model {
	t.Helper()
	m, err := model.Open(testutil.SharedFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// openTestBackend opens a backend on any adapter (lavapipe included), skipping when there is none.
func openTestBackend(t *testing.T, m *model.Model, opts options) *backend {
	t.Helper()
	opts.Force = true
	b, err := newBackend(m, opts)
	if errors.Is(err, errNoAdapter) {
		t.Skipf("no WebGPU adapter: install mesa-vulkan-drivers (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// greedyIDs decodes n tokens after prompt with ForwardArgmax, checking that every decode step is one
// submit.
func greedyIDs(t *testing.T, b *backend, prompt []int32, n int) []int32 {
	t.Helper()
	ctx := context.Background()
	next, err := b.ForwardArgmax(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	out := []int32{next}
	for len(out) < n {
		if next, err = b.ForwardArgmax(ctx, []int32{next}); err != nil {
			t.Fatalf("step %d: %v", len(out), err)
		}
		if s := b.LastStep(); s.Submits != 1 {
			t.Fatalf("decode step %d took %d submits, want 1", len(out), s.Submits)
		}
		out = append(out, next)
	}
	return out
}

func TestGreedyStories260K(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	// stories260K's largest tensor is 128 KiB; 20000-byte bindings split token_embd and output.weight
	// (512 rows) and every layer's matrices into several chunks.
	for _, c := range []struct {
		name string
		opts options
	}{
		{"default", options{}},
		{"f32-kv/no-subgroups", options{KV: "f32", deviceOptions: deviceOptions{NoSubgroups: true}}},
		{"split-bindings/batch2", options{Batch: 2, deviceOptions: deviceOptions{MaxBindingSize: 20000}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := openTestBackend(t, m, c.opts)
			start := time.Now()
			got := greedyIDs(t, b, storiesPrompt, len(storiesGreedy))
			el := time.Since(start)
			if !slices.Equal(got, storiesGreedy) {
				t.Errorf("greedy ids\n got %v\nwant %v", got, storiesGreedy)
			}
			s := b.LastStep()
			t.Logf("%s: %d tokens in %v (%.1f tok/s incl. prefill); decode step: %d dispatches, %d submit(s)",
				b.Device(), len(got), el.Round(time.Millisecond), float64(len(got))/el.Seconds(), s.Dispatches, s.Submits)
			// Issue #13's budget: 11 dispatches a layer and 5 more (401 for SmolLM3-3B's 36 layers) with
			// every weight in one binding; the decode step's kv store is the split attention's.
			if want := 11*m.Config.Layers + 5; c.opts.MaxBindingSize == 0 && s.Dispatches > want {
				t.Errorf("decode step: %d dispatches, want at most %d", s.Dispatches, want)
			}
		})
	}
}

// checkTop compares logits with llama.cpp's top-5, relative to the top logit.
func checkTop(t *testing.T, logits []float32, top []tokenLogit, tol float64) {
	t.Helper()
	norm := math.Max(1, math.Abs(float64(top[0].logit)))
	worst := 0.0
	for _, r := range top {
		worst = math.Max(worst, math.Abs(float64(logits[r.id]-r.logit))/norm)
	}
	t.Logf("worst |Δlogit| over llama.cpp's top-5: %.5f of the top logit", worst)
	if worst > tol {
		got := make([]string, len(top))
		for i, r := range top {
			got[i] = fmt.Sprintf("%d:%.4f (want %.4f)", r.id, logits[r.id], r.logit)
		}
		t.Errorf("logits differ from llama.cpp by %.4f > %g: %v", worst, tol, got)
	}
}

func TestStep0LogitsStories260K(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	b := openTestBackend(t, m, options{})
	logits, err := b.Forward(context.Background(), storiesPrompt, []int{len(storiesPrompt) - 1})
	if err != nil {
		t.Fatal(err)
	}
	checkTop(t, logits[0], storiesTop5, 1e-3)
	ids, vals, err := b.ForwardTopK(context.Background(), []int32{storiesGreedy[0]}, 5)
	if err != nil {
		t.Fatal(err)
	}
	// The device top-k of the next step must agree with a host sort of the same logits.
	b.Truncate(len(storiesPrompt))
	full, err := b.Forward(context.Background(), []int32{storiesGreedy[0]}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if full[0][id] != vals[i] {
			t.Errorf("top-k rank %d: id %d value %v, but Forward gives %v", i, id, vals[i], full[0][id])
		}
		if i > 0 && vals[i] > vals[i-1] {
			t.Errorf("top-k not descending at rank %d", i)
		}
	}
	if ids[0] != storiesGreedy[1] {
		t.Errorf("top-1 after the first greedy token = %d, want %d", ids[0], storiesGreedy[1])
	}
}

func TestStep0LogitsSmolLM3Tiny(t *testing.T) {
	m := openModel(t, "smollm3-tiny-synthetic-Q4_K_M.gguf")
	b := openTestBackend(t, m, options{Context: 64})
	logits, err := b.Forward(context.Background(), tinyPrompt, []int{len(tinyPrompt) - 1})
	if err != nil {
		t.Fatal(err)
	}
	// llama.cpp's CPU path quantizes activations to 8 bits and its own backends differ by up to ~2 on
	// this ~100 scale (README), so a few percent is the meaningful bound.
	checkTop(t, logits[0], tinyTop5, 0.03)
}

// TestBackendContract runs engine.Backend's contract (backendtest) on the GPU backend, in submits of 7
// tokens so that its 24-token prompt spans several. The cache is f32: with f16, the last-bit
// differences between the mat-mat and mat-vec sums can round a cached key or value to a neighbouring
// half, which moves logits by a few 1e-4.
func TestBackendContract(t *testing.T) {
	m := synthModel(t)
	backendtest.Contract(t, backendtest.Model{Vocab: m.Config.Vocab, Tol: 1e-4}, func(t *testing.T, ctx int) engine.Backend {
		return openTestBackend(t, m, options{Context: ctx, Batch: 7, KV: "f32"})
	})
}

// TestSeqContract runs engine.SeqBackend's contract (backendtest) on the GPU backend. Batching is not
// bit for bit invariant here: a row's matrix products run as the mat-vec (alone in its submit), the
// few-token mat-vec (up to matvecMaxT rows) or the tiled mat-mat (more), whose sums add in different
// orders, so a row's logits depend on how many rows share its submit by a rounding. The tolerance is
// TestBackendContract's, for the same reason; the cache is f32 as there.
func TestSeqContract(t *testing.T) {
	m := synthModel(t)
	backendtest.SeqContract(t, backendtest.Model{Vocab: m.Config.Vocab}, func(t *testing.T, ctx int, kvMemory int64) engine.SeqBackend {
		return openTestBackend(t, m, options{Context: ctx, KV: "f32", KVMemory: kvMemory})
	}, 1e-4)
}

// TestForwardContract checks what the GPU adds to the contract: how a long call splits into submits,
// the top-k bound, and a closed backend.
func TestForwardContract(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	// Batch 20 splits the 24 tokens below into two submits, and 20 wanted rows in the first exceed the
	// 16 logits rows one read-back holds, so an output-only submit follows it.
	b := openTestBackend(t, m, options{Context: 40, Batch: 20, KV: "f32"})
	ctx := context.Background()
	tokens := append(slices.Clone(storiesPrompt), storiesGreedy[:19]...)
	want := make([]int, len(tokens))
	for i := range want {
		want[i] = i
	}
	if _, err := b.Forward(ctx, tokens, want); err != nil {
		t.Fatal(err)
	}
	if s := b.LastStep(); s.Submits != 3 {
		t.Errorf("24 tokens in batches of 20 with 24 wanted rows took %d submits, want 3", s.Submits)
	}
	if _, _, err := b.ForwardTopK(ctx, []int32{1}, maxTopK+1); err == nil {
		t.Error("top-k beyond MaxTopK accepted")
	}

	// After Close every call fails with ErrDeviceLost.
	b.Close()
	if _, err := b.Forward(ctx, []int32{1}, []int{0}); !errors.Is(err, ErrDeviceLost) {
		t.Errorf("forward after close: err = %v, want ErrDeviceLost", err)
	}
}

var _ engine.SeqBackend = (*backend)(nil)
var _ engine.Argmaxer = (*backend)(nil)

// synthModel opens synth's smollm3-tiny preset (SmolLM3's architecture: Q4_K/Q6_K mix, tied Q6_K
// embeddings over 128256 tokens, GQA 4:1, a NoPE layer), so the whole-model tests below need no shared
// fixtures.
func synthModel(t *testing.T) *model.Model { return backendtest.OpenSynth(t, "smollm3-tiny", 7) }

// rowErr is max |got - want| over the row divided by max |want|.
func rowErr(got, want []float32) float64 { return relErr(got, want) }

// TestAgainstReference runs a prompt teacher-forced through the GPU and through ref.Model, whose float
// math has no activation quantization, and compares every position's logits.
func TestAgainstReference(t *testing.T) {
	m := synthModel(t)
	r, err := ref.NewModel(m)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int32{128000, 12805, 5304, 264, 892, 17, 99999, 3, 128255}
	var all [][]float32
	for _, tok := range tokens {
		all = append(all, r.Step(tok))
	}
	// The 128256-row LM head dominates the cost on a software adapter, so three positions are compared:
	// the first, one inside the second prefill chunk of the batch-4 case, and the last.
	rows := []int{0, 5, 8}
	var want [][]float32
	for _, i := range rows {
		want = append(want, all[i])
	}
	for _, c := range []struct {
		name string
		opts options
		tol  float64
	}{
		// 4 MiB bindings split the 27 MiB Q6_K token_embd (the tied LM head) into 7 chunks.
		{"f32-kv/batch4/split", options{KV: "f32", Context: 32, Batch: 4, deviceOptions: deviceOptions{MaxBindingSize: 4 << 20}}, 1e-3},
		{"f16-kv", options{KV: "f16", Context: 32}, 1e-2},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := openTestBackend(t, m, c.opts)
			got, err := b.Forward(context.Background(), tokens, rows)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range rows {
				worst = math.Max(worst, rowErr(got[i], want[i]))
				if ga, wa := ref.Argmax(got[i]), ref.Argmax(want[i]); ga != wa {
					t.Errorf("position %d: argmax %d, reference %d", rows[i], ga, wa)
				}
			}
			t.Logf("max |Δlogit| / max |logit| over positions %v: %.2e", rows, worst)
			if worst > c.tol {
				t.Errorf("logits differ from the float reference by %.3g > %g", worst, c.tol)
			}
		})
	}
}

// TestSplitDecodeWholeModel checks the split decode attention (chunks of 64 cached positions, merged by a
// second pass) against the prefill kernel, which walks the cache in one workgroup, in the whole model:
// the last of 150 tokens decoded alone after 149 must give the logits that one prefill of all 150 gives
// for its last row.
func TestSplitDecodeWholeModel(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	b := openTestBackend(t, m, options{Context: 160, KV: "f32"})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	tokens := make([]int32, 150)
	for i := range tokens {
		tokens[i] = int32(1 + r.IntN(m.Config.Vocab-1))
	}
	all, err := b.Forward(ctx, tokens, []int{len(tokens) - 1})
	if err != nil {
		t.Fatal(err)
	}
	b.Truncate(len(tokens) - 1)
	one, err := b.Forward(ctx, tokens[len(tokens)-1:], []int{0})
	if err != nil {
		t.Fatal(err)
	}
	e := relErr(one[0], all[0])
	t.Logf("decode after 149 positions vs prefill: max rel err %.2e", e)
	if e > 1e-4 {
		t.Errorf("split decode and prefill logits of the 150th token differ by %.3g", e)
	}
}

// conformanceModel opens the synthetic model of an internal/conformance case, with its RoPE scaling.
func conformanceModel(name string) func(t *testing.T) *model.Model {
	return func(t *testing.T) *model.Model {
		for _, c := range conformance.Cases {
			if c.Name == name {
				return conformance.Open(t, c)
			}
		}
		t.Fatalf("no conformance case %s", name)
		return nil
	}
}

// TestAgainstCPUBackend compares whole-model logits with the project's CPU backend. Against its Exact
// numerics, which compute in float32 as this backend does (no activation quantization, float32 query),
// they must agree to 1e-3 of the logit scale on the trained stories260K, on a synthetic SmolLM3, and on
// the families' conformance models (Qwen3's QK-norm and NEOX RoPE, Llama 3's rope_freqs, YaRN).
// The CPU's default (Fast) numerics quantize activations to 8 bits as llama.cpp does, which a
// random-weight model amplifies: that comparison is reported, with a bound only a broken kernel would
// cross (0.15, the CPU's own bound for fast numerics against llama.cpp; measured up to 0.095, on the
// YaRN case).
func TestAgainstCPUBackend(t *testing.T) {
	for _, c := range []struct {
		name   string
		open   func(t *testing.T) *model.Model
		tokens []int32
		rows   []int
	}{
		{"stories260K", func(t *testing.T) *model.Model { return openModel(t, "stories260K.gguf") },
			[]int32{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338}, []int{0, 4, 9, 16}},
		{"synthetic smollm3", synthModel, []int32{128000, 12805, 5304, 264, 892, 17}, []int{0, 3, 5}},
		{"qwen3-tiny", conformanceModel("qwen3-tiny"), []int32{128011, 882, 198, 5000, 77, 9000, 42}, []int{0, 3, 6}},
		{"llama3-tiny", conformanceModel("llama3-tiny"), []int32{128000, 9906, 1917, 0, 220, 1013, 5000}, []int{0, 3, 6}},
		{"smollm3-tiny, yarn", conformanceModel("smollm3-tiny-yarn"), []int32{128000, 12805, 5304, 264, 892, 17}, []int{0, 3, 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := c.open(t)
			b := openTestBackend(t, m, options{Context: 32})
			got, err := b.Forward(context.Background(), c.tokens, c.rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []struct {
				num cpu.Numerics
				tol float64
			}{{cpu.Exact, 1e-3}, {cpu.Fast, 0.15}} {
				cb, err := cpu.New(m, cpu.Options{Threads: 2, Context: 32, Numerics: mode.num})
				if err != nil {
					t.Fatal(err)
				}
				want, err := cb.Forward(context.Background(), c.tokens, c.rows)
				cb.Close()
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for i := range c.rows {
					worst = math.Max(worst, rowErr(got[i], want[i]))
				}
				t.Logf("max |Δlogit| / max |logit| vs the CPU backend (%s numerics): %.2e", mode.num, worst)
				if worst > mode.tol {
					t.Errorf("GPU and CPU backends (%s numerics) differ by %.3g of the logit scale, more than %g", mode.num, worst, mode.tol)
				}
			}
		})
	}
}

// TestHeadCountsItsRows asks for 2 and then 6 rows of a 9-token step and checks that the output
// projection wrote only those rows of its logits buffer: its kernels count the rows they are given, not
// the step's tokens (which would store rows past the wanted ones, and past the buffer's end when the
// step has more tokens than the buffer has rows).
func TestHeadCountsItsRows(t *testing.T) {
	m := synthModel(t)
	b := openTestBackend(t, m, options{Context: 32, Batch: 16})
	vocab := m.Config.Vocab
	for _, want := range [][]int{{3, 8}, {0, 1, 2, 4, 6, 8}} {
		sentinel := make([]float32, b.maxOut*vocab)
		for i := range sentinel {
			sentinel[i] = 12345
		}
		if err := b.d.Write(b.logits, 0, f32Bytes(sentinel)); err != nil {
			t.Fatal(err)
		}
		b.Truncate(0)
		if _, err := b.Forward(context.Background(), []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, want); err != nil {
			t.Fatal(err)
		}
		got := mustF32(t, b.d, b.logits, 0, b.maxOut*vocab)
		for r := len(want); r < b.maxOut; r++ {
			if v := got[r*vocab]; v != 12345 {
				t.Errorf("%d wanted rows: logits row %d was written (%g)", len(want), r, v)
				break
			}
		}
	}
}
