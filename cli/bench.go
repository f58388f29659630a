package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"smolchat/engine"
	"smolchat/gpu"
)

func init() {
	var (
		mf                 *modelFlags
		pp, tg, rep, depth *int
		seqs               *int
		asJSON, profile    *bool
	)
	register(&Command{
		Name:    "bench",
		Summary: "measure prompt processing and generation speed, like llama-bench",
		Usage:   "--model FILE [--pp 512] [--tg 128] [--depth 0] [--reps 3] [--seqs 1] [--cpu|--gpu [--profile]] [--json]",
		Flags: func(fs *flag.FlagSet) {
			mf = addModelFlags(fs)
			pp = fs.Int("pp", 512, "prompt tokens evaluated in one batch (0 = skip)")
			tg = fs.Int("tg", 128, "tokens generated one at a time (0 = skip)")
			rep = fs.Int("reps", 3, "repetitions; the median is reported")
			depth = fs.Int("depth", 0, "positions cached before each measurement, like llama-bench's -d")
			profile = fs.Bool("profile", false, "GPU only: time each kernel of a decode token and of a prefill step of min(--pp, batch) tokens instead")
			seqs = fs.Int("seqs", 1, "sequences decoding together: --tg's steps (and with --profile the profiled decode step) evaluate one token of each, as that many streams do; tok/s counts them all, like llama-batched-bench's S_TG")
			asJSON = fs.Bool("json", false, "print JSON")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			if *rep < 1 || *pp < 0 || *tg < 0 || *depth < 0 {
				return usageErr("--reps must be ≥ 1 and --pp, --tg, --depth ≥ 0")
			}
			if *seqs < 1 {
				return usageErr("--seqs must be ≥ 1")
			}
			mf.parallel = max(*seqs, engine.DefaultParallel) // the KV budget holds every sequence's context
			need := *depth + max(*pp, *tg)                   // each measurement starts again from the depth
			if *mf.ctx < need {
				*mf.ctx = need
			}
			e, err := mf.load(env)
			if err != nil {
				return err
			}
			defer e.Close()
			b := e.Backend()
			if need > b.MaxContext() {
				return fmt.Errorf("--depth %d + max(--pp %d, --tg %d) exceed the context of %d: lower them or raise --ctx", *depth, *pp, *tg, b.MaxContext())
			}
			var tuning *gpu.TuneReport
			if g, ok := b.(interface{ Tuning() *gpu.TuneReport }); ok {
				tuning = g.Tuning()
			}
			if tuning != nil && !*asJSON {
				printTuning(env, tuning)
			}
			if *profile {
				return runProfile(env, e.Info(), b, *depth, *pp, *seqs, *rep, *asJSON)
			}
			m := benchMeasure{b: b, vocab: e.Tokenizer().VocabSize(), depth: *depth, seqs: *seqs, rng: rand.New(rand.NewPCG(1, 2))}
			var ppRates, tgRates []float64
			for r := 0; r < *rep; r++ {
				if *pp > 0 {
					rate, err := m.prompt(*pp)
					if err != nil {
						return err
					}
					ppRates = append(ppRates, rate)
				}
				if *tg > 0 {
					rate, err := m.generate(*tg)
					if err != nil {
						return err
					}
					tgRates = append(tgRates, rate)
				}
			}
			info := e.Info()
			var steps *gpu.StepStats
			if g, ok := b.(interface{ LastStep() gpu.StepStats }); ok && *tg > 0 {
				st := g.LastStep() // the last decode step of the last repetition
				steps = &st
			}
			res := benchJSON{StepStats: steps, Tuning: tuning, Model: info.Model, Quant: info.Quant, Backend: info.Backend, Adapter: info.Device,
				PP: *pp, TG: *tg, Depth: *depth, Seqs: *seqs, Reps: *rep, PPRate: median(ppRates), TGRate: median(tgRates), PPRuns: ppRates, TGRuns: tgRates}
			if *asJSON {
				return json.NewEncoder(env.Stdout).Encode(res)
			}
			fmt.Fprintf(env.Stdout, "model %s (%s) on %s: %s\n", res.Model, res.Quant, res.Backend, res.Adapter)
			if *depth > 0 {
				fmt.Fprintf(env.Stdout, "after a prompt of %d tokens (--depth):\n", *depth)
			}
			if *pp > 0 {
				fmt.Fprintf(env.Stdout, "pp%d: %.2f tok/s (median of %d: %v)\n", *pp, res.PPRate, *rep, roundAll(ppRates))
			}
			if *tg > 0 {
				together := ""
				if *seqs > 1 {
					together = fmt.Sprintf(", %d sequences decoding together", *seqs)
				}
				fmt.Fprintf(env.Stdout, "tg%d: %.2f tok/s (median of %d: %v%s)\n", *tg, res.TGRate, *rep, roundAll(tgRates), together)
			}
			if steps != nil {
				fmt.Fprintf(env.Stdout, "decode step: %d dispatches, %d submit(s) per token\n", steps.Dispatches, steps.Submits)
			}
			return nil
		},
	})
}

// benchMeasure times a backend's prompt processing and generation after depth cached positions, with
// random tokens.
type benchMeasure struct {
	b     engine.Backend
	vocab int
	depth int
	seqs  int // sequences decoding together in generate
	rng   *rand.Rand
}

func (m *benchMeasure) tokens(n int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(m.rng.IntN(m.vocab))
	}
	return t
}

// toDepth empties the backend's own sequence and fills it with depth random tokens, untimed. It asks
// for the last row's logits: a GPU forward without read-backs returns once its work is queued, and the
// fill still running would be timed as the first measured token.
func (m *benchMeasure) toDepth() error {
	m.b.Truncate(0)
	if m.depth == 0 {
		return nil
	}
	_, err := m.b.Forward(context.Background(), m.tokens(m.depth), []int{m.depth - 1})
	return err
}

// prompt is the rate of one batch of n tokens after depth, like llama-bench's pp: logits for the last
// row only.
func (m *benchMeasure) prompt(n int) (float64, error) {
	if err := m.toDepth(); err != nil {
		return 0, err
	}
	toks := m.tokens(n)
	start := time.Now()
	if _, err := m.b.Forward(context.Background(), toks, []int{len(toks) - 1}); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// generate is the rate of n decode steps after depth: of the backend's own sequence, or with seqs > 1 of
// that many sequences of the backend's pool, each filled to depth with tokens of its own and given one
// token a step; the rate counts every sequence's tokens.
func (m *benchMeasure) generate(n int) (float64, error) {
	ctx := context.Background()
	if m.seqs == 1 {
		if err := m.toDepth(); err != nil {
			return 0, err
		}
		tok := m.tokens(1)
		start := time.Now()
		for range n {
			if _, err := m.b.Forward(ctx, tok, []int{0}); err != nil {
				return 0, err
			}
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	sb, ok := m.b.(engine.SeqBackend)
	if !ok {
		return 0, usageErr("--seqs %d: the %s backend runs one sequence at a time", m.seqs, m.b.Name())
	}
	batch := make([]engine.SeqEntry, m.seqs)
	defer func() {
		for _, e := range batch {
			sb.FreeSeq(e.Seq)
		}
	}()
	for i := range batch {
		batch[i].Seq = sb.NewSeq()
		if m.depth > 0 {
			fill := []engine.SeqEntry{{Seq: batch[i].Seq, Tokens: m.tokens(m.depth), Want: []int{m.depth - 1}}}
			if _, err := sb.ForwardSeqs(ctx, fill); err != nil {
				return 0, err
			}
		}
		batch[i].Tokens, batch[i].Want = m.tokens(1), []int{0}
	}
	start := time.Now()
	for range n {
		if _, err := sb.ForwardSeqs(ctx, batch); err != nil {
			return 0, err
		}
	}
	return float64(m.seqs*n) / time.Since(start).Seconds(), nil
}

type benchJSON struct {
	Model   string    `json:"model"`
	Quant   string    `json:"quant"`
	Backend string    `json:"backend"`
	Adapter string    `json:"adapter"`
	PP      int       `json:"pp"`
	TG      int       `json:"tg"`
	Depth   int       `json:"depth"`
	Seqs    int       `json:"seqs"` // sequences decoding together in tg; tg_tokens_per_second counts them all
	Reps    int       `json:"reps"`
	PPRate  float64   `json:"pp_tokens_per_second"`
	TGRate  float64   `json:"tg_tokens_per_second"`
	PPRuns  []float64 `json:"pp_runs"`
	TGRuns  []float64 `json:"tg_runs"`
	// StepStats counts one decode step's GPU work (dispatches, submits); absent on the CPU.
	StepStats *gpu.StepStats `json:"decode_step,omitempty"`
	// Tuning is what the GPU's kernel tuning did at load; absent when it was off.
	Tuning *gpu.TuneReport `json:"gpu_tuning,omitempty"`
}

// printTuning says what the GPU's kernel tuning did at load: each shape's choice, its time per
// dispatch and the built-in choice's.
func printTuning(env *Env, t *gpu.TuneReport) {
	fmt.Fprintf(env.Stdout, "GPU tuning: %d shape(s) timed, %d from %s, %d left for the next load (time budget), %.1f s\n",
		t.Timed, t.Cached, t.File, t.Left, t.Seconds)
	for _, c := range t.Choices {
		speedup := ""
		if c.Default > 0 && c.Seconds > 0 {
			speedup = fmt.Sprintf(" (built-in %.3f ms, %.2fx)", c.Default*1e3, c.Default/c.Seconds)
		}
		fmt.Fprintf(env.Stdout, "  %-32s %-30s %.3f ms of %d variants%s\n", c.Shape, c.Variant, c.Seconds*1e3, c.Tried, speedup)
	}
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(int(v*100+0.5)) / 100
	}
	return out
}
