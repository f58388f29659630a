package gpu

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/engine"
	"smolchat/engine/backendtest"
	"smolchat/internal/testutil"
	"smolchat/model/quant"
)

// loadEngine loads the model at path on the GPU (any adapter, lavapipe included), skipping when there is
// none.
func loadEngine(t testing.TB, path string, ctx, parallel int) *engine.Engine {
	t.Helper()
	return loadEngineWith(t, engine.LoadOptions{Path: path, Context: ctx, Parallel: parallel})
}

// loadEngineWith is loadEngine with more options (the backend is the GPU).
func loadEngineWith(t testing.TB, o engine.LoadOptions) *engine.Engine {
	t.Helper()
	o.Backend = "gpu"
	e, err := engine.Load(context.Background(), o)
	if errors.Is(err, errNoAdapter) {
		t.Skipf("no WebGPU adapter: install mesa-vulkan-drivers (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// nearTie is the gap between a greedy token's log probability and the runner-up's below which a
// batched and a solo run may pick differently: the GPU's batched logits differ from solo ones by up to
// 1e-4 of their scale (TestSeqContract), a few 1e-3 here.
const nearTie = 0.02

// TestEngineBatchedMatchesSolo generates greedily for several prompts at once on the GPU (continuous
// batching, --parallel 4: prompts evaluated beside other sequences' decode steps, two prompts sharing a
// prefix) and for each prompt alone on a fresh engine. The tokens must be the same up to the first near
// tie of the solo run (two candidates within nearTie), where rounding may pick either; the test reports
// how many tokens it compared.
func TestEngineBatchedMatchesSolo(t *testing.T) {
	path := backendtest.WriteSynth(t, "smollm3-tiny", 7)
	e := loadEngine(t, path, 512, 4)
	prompts := backendtest.BatchPrompts(e)
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 20}
	batched := backendtest.GenerateTogether(t, e, prompts, params)
	solo := loadEngine(t, path, 512, 1)
	soloParams := params
	soloParams.Logprobs, soloParams.TopLogprobs = true, 2
	for i, p := range prompts {
		t.Run(fmt.Sprint("prompt ", i), func(t *testing.T) {
			r, err := solo.Generate(context.Background(), p, soloParams, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			n, ok := backendtest.SameUpToTie(batched[i], r, nearTie)
			t.Logf("compared %d tokens (a near tie or the end after them)", n)
			if !ok {
				t.Errorf("batched %v\nalone   %v", batched[i], r.Tokens)
			}
		})
	}
}

// TestEngineLostMidBatch loses the GPU while three generations decode together: each gets an error
// wrapping engine.ErrBackendLost, the engine re-creates the backend, and the next request runs on it.
func TestEngineLostMidBatch(t *testing.T) {
	e := loadEngine(t, backendtest.WriteSynth(t, "smollm3-tiny", 7), 256, 4)
	lost, ok := e.Backend().(*backend)
	if !ok {
		t.Fatalf("the engine runs on %T, want the GPU backend", e.Backend())
	}
	// Each generation's first token parks it in emit until the loss: then all three are running, and
	// the next decode step is a batch of all of them.
	arrived, release := make(chan int, 3), make(chan struct{})
	type result struct {
		res engine.Result
		err error
	}
	results := make(chan result, 3)
	for i := range 3 {
		first := true
		emit := func(engine.Delta) error {
			if first {
				first = false
				arrived <- i
				<-release
			}
			return nil
		}
		go func() {
			r, err := e.Generate(context.Background(), backendtest.EngineTokens(e, 8, uint64(20+i)), engine.GenParams{MaxTokens: 10}, false, emit)
			results <- result{r, err}
		}()
	}
	for range 3 {
		select {
		case <-arrived:
		case r := <-results:
			t.Fatalf("a generation ended before the loss: %v, %d tokens", r.err, len(r.res.Tokens))
		}
	}
	lost.d.onLost(wgpu.DeviceLostReasonUnknown, "simulated driver reset")
	close(release)
	for range 3 {
		if r := <-results; !errors.Is(r.err, engine.ErrBackendLost) {
			t.Errorf("err = %v, want ErrBackendLost", r.err)
		}
	}
	if e.Backend() == engine.Backend(lost) {
		t.Fatal("the lost backend was not replaced")
	}
	r, err := e.Generate(context.Background(), backendtest.EngineTokens(e, 8, 30), engine.GenParams{MaxTokens: 3}, false, nil)
	if err != nil || len(r.Tokens) == 0 {
		t.Errorf("after the loss: %v, %d tokens", err, len(r.Tokens))
	}
}

// BenchmarkStreams is the aggregate generation speed of 1 and 4 greedy streams (backendtest.Streams) on
// the GPU: four decode rows take the few-token mat-vec, which reads each weight once for up to
// matvecMaxT rows. It loads $SMOLCHAT_BENCH_MODEL when set, else the shared tiny SmolLM3-shaped file;
// for interleaved samples run each count in a process of its own (see backendtest.Streams). With
// $SMOLCHAT_BENCH_TUNE_FILE set it tunes the kernels (--gpu-tune auto with that file), as serve does by
// default. (cpu.BenchmarkStreams is its CPU twin.)
func BenchmarkStreams(b *testing.B) {
	o := engine.LoadOptions{Path: benchModel(b), Context: 1024, Parallel: 4}
	if f := os.Getenv("SMOLCHAT_BENCH_TUNE_FILE"); f != "" {
		o.Tune, o.TuneFile, o.TuneBudget = "auto", f, 10*time.Minute
	}
	backendtest.Streams(b, loadEngineWith(b, o))
}

// benchModel is $SMOLCHAT_BENCH_MODEL when set, else the shared tiny SmolLM3-shaped file.
func benchModel(b *testing.B) string {
	if path := os.Getenv("SMOLCHAT_BENCH_MODEL"); path != "" {
		return path
	}
	return testutil.SharedFile(b, "smollm3-tiny-synthetic-Q4_K_M.gguf")
}

// BenchmarkArrival is the time to first token of a prompt that arrives while 3 streams decode, against
// its prefill alone and the decode step (backendtest.Arrival), on the GPU. Model as in BenchmarkStreams.
// (cpu.BenchmarkArrival is its CPU twin.)
func BenchmarkArrival(b *testing.B) {
	path := os.Getenv("SMOLCHAT_BENCH_MODEL")
	if path == "" {
		path = testutil.SharedFile(b, "smollm3-tiny-synthetic-Q4_K_M.gguf")
	}
	backendtest.Arrival(b, func(b *testing.B, ctx int) *engine.Engine { return loadEngine(b, path, ctx, 4) })
}

// BenchmarkDecodeRows is the least CPU time per weight of the decode mat-vec for 1 to 8 rows (the
// few-token variant, matvecMaxT), on the shapes of the tiny SmolLM3-shaped file: its Q6_K output
// projection (16,384 of its 128,256 rows) and a Q4_K feed-forward weight. Where the device is bound by
// memory, four rows cost about one; on lavapipe, whose kernels are CPU code, the arithmetic per row
// decides, and BenchmarkStreams follows it. Where the output projection reads its input from a texture
// (device.headTex), the xtex/ lines time the products from one.
func BenchmarkDecodeRows(b *testing.B) {
	d := testDevice(b)
	for _, c := range []struct {
		typ  quant.Type
		m, k int
	}{{quant.Q6_K, 16384, 512}, {quant.Q4_K, 1536, 512}} {
		r := rand.New(rand.NewPCG(1, 2))
		raw, _ := quantized(b, r, c.typ, c.m, c.k)
		w := must[*weights](b)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
		xb := must[*buffer](b)(d.UploadF32("x", randF32(r, matvecMaxT*c.k, 1)))
		yb := must[*buffer](b)(d.NewStorage("y", uint64(4*matvecMaxT*c.m)))
		type input struct {
			name string // in the sub-benchmark's name
			x    *buffer
		}
		inputs := []input{{"", xb}}
		if d.headTex() {
			// The output projection's input on this device: the activations in a texture.
			xt := must[*buffer](b)(d.NewActivationTexture("x", c.k, matvecMaxT))
			e := must[*encoder](b)(d.NewEncoder("x texture"))
			for tok := range matvecMaxT {
				e.CopyToTexture(xb, uint64(4*tok*c.k), xt, tok)
			}
			if err := e.Submit(); err != nil {
				b.Fatal(err)
			}
			inputs = append(inputs, input{"xtex/", xt})
		}
		shape := matvecShapeFor(kernelTypes[c.typ].suffix, c.k)
		for _, int8 := range []bool{false, true} {
			if int8 && !d.dot4 {
				continue
			}
			shape.int8 = int8
			for _, in := range inputs {
				op := must[*matMulOp](b)(d.newMatMulShape(w, whole(in.x), c.k, whole(yb), c.m, 0, matOptions{}, shape))
				path := map[bool]string{false: "", true: "int8/"}[int8] + in.name
				for _, T := range []int{1, 2, 4, 8} {
					b.Run(fmt.Sprintf("%s/%dx%d/%srows%d", c.typ, c.m, c.k, path, T), func(b *testing.B) {
						if err := d.SetStep(T, 0); err != nil {
							b.Fatal(err)
						}
						best := leastCPU(b, d, func(e *encoder) { op.Record(e, T) })
						b.ReportMetric(best*1e9/float64(c.m*c.k), "mincpu-ns/weight")
					})
				}
			}
		}
	}
}
