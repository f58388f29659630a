package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"smolchat/gpu"
	"sort"
	"time"
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
		Usage:   "--model FILE [--pp 512] [--tg 128] [--depth 0] [--reps 3] [--cpu|--gpu [--profile [--seqs 1]]] [--json]",
		Flags: func(fs *flag.FlagSet) {
			mf = addModelFlags(fs)
			pp = fs.Int("pp", 512, "prompt tokens evaluated in one batch (0 = skip)")
			tg = fs.Int("tg", 128, "tokens generated one at a time (0 = skip)")
			rep = fs.Int("reps", 3, "repetitions; the median is reported")
			depth = fs.Int("depth", 0, "positions cached before each measurement, like llama-bench's -d")
			profile = fs.Bool("profile", false, "GPU only: time each kernel of a decode token and of a prefill step of min(--pp, batch) tokens instead")
			seqs = fs.Int("seqs", 1, "with --profile: the profiled decode step evaluates one token of each of this many sequences, as that many streams decoding together do")
			asJSON = fs.Bool("json", false, "print JSON")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			if *rep < 1 || *pp < 0 || *tg < 0 || *depth < 0 {
				return usageErr("--reps must be ≥ 1 and --pp, --tg, --depth ≥ 0")
			}
			if *seqs < 1 || (*seqs > 1 && !*profile) {
				return usageErr("--seqs must be ≥ 1, and more than 1 only with --profile")
			}
			need := *depth + max(*pp, *tg) // each measurement starts again from the depth
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
			vocab := e.Tokenizer().VocabSize()
			rng := rand.New(rand.NewPCG(1, 2))
			randTokens := func(n int) []int32 {
				t := make([]int32, n)
				for i := range t {
					t[i] = int32(rng.IntN(vocab))
				}
				return t
			}
			ctx := context.Background()
			// toDepth empties the cache and fills it with --depth random tokens, untimed. It asks for the last
			// row's logits: a GPU forward without read-backs returns once its work is queued, and the
			// fill still running would be timed as the first measured token.
			toDepth := func() error {
				b.Truncate(0)
				if *depth == 0 {
					return nil
				}
				_, err := b.Forward(ctx, randTokens(*depth), []int{*depth - 1})
				return err
			}
			var ppRates, tgRates []float64
			for r := 0; r < *rep; r++ {
				if *pp > 0 {
					if err := toDepth(); err != nil {
						return err
					}
					toks := randTokens(*pp)
					start := time.Now()
					// One batch, like llama-bench's pp: logits for the last row only.
					if _, err := b.Forward(ctx, toks, []int{len(toks) - 1}); err != nil {
						return err
					}
					ppRates = append(ppRates, float64(*pp)/time.Since(start).Seconds())
				}
				if *tg > 0 {
					if err := toDepth(); err != nil {
						return err
					}
					tok := randTokens(1)
					start := time.Now()
					for i := 0; i < *tg; i++ {
						if _, err := b.Forward(ctx, tok, []int{0}); err != nil {
							return err
						}
					}
					tgRates = append(tgRates, float64(*tg)/time.Since(start).Seconds())
				}
			}
			info := e.Info()
			var steps *gpu.StepStats
			if g, ok := b.(interface{ LastStep() gpu.StepStats }); ok && *tg > 0 {
				st := g.LastStep() // the last decode step of the last repetition
				steps = &st
			}
			res := benchJSON{StepStats: steps, Tuning: tuning, Model: info.Model, Quant: info.Quant, Backend: info.Backend, Adapter: info.Device,
				PP: *pp, TG: *tg, Depth: *depth, Reps: *rep, PPRate: median(ppRates), TGRate: median(tgRates), PPRuns: ppRates, TGRuns: tgRates}
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
				fmt.Fprintf(env.Stdout, "tg%d: %.2f tok/s (median of %d: %v)\n", *tg, res.TGRate, *rep, roundAll(tgRates))
			}
			if steps != nil {
				fmt.Fprintf(env.Stdout, "decode step: %d dispatches, %d submit(s) per token\n", steps.Dispatches, steps.Submits)
			}
			return nil
		},
	})
}

type benchJSON struct {
	Model   string    `json:"model"`
	Quant   string    `json:"quant"`
	Backend string    `json:"backend"`
	Adapter string    `json:"adapter"`
	PP      int       `json:"pp"`
	TG      int       `json:"tg"`
	Depth   int       `json:"depth"`
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
