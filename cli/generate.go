package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"

	"smolchat/engine"
	"smolchat/engine/constrain"
)

func init() {
	var (
		mf               *modelFlags
		prompt           *string
		raw, asJSON      *bool
		think, noThink   *bool
		n, topK          *int
		temp, topP, minP *float64
		repeat           *float64
		seed             *int64
		schema           *string
	)
	register(&Command{
		Name:    "generate",
		Summary: "generate text from a prompt (chat-templated unless --raw)",
		Usage:   "--model FILE --prompt TEXT [--raw] [--n N] [--temp T] [--top-p P] [--top-k K] [--seed S] [--think|--no-think] [--json-schema FILE] [--json]",
		Flags: func(fs *flag.FlagSet) {
			mf = addModelFlags(fs)
			prompt = fs.String("prompt", "", "the prompt: one user message, or raw text with --raw")
			raw = fs.Bool("raw", false, "tokenize the prompt as is (BOS and EOS per the model's rules) instead of using the chat template")
			asJSON = fs.Bool("json", false, "print one JSON object with ids, text, finish reason and timings")
			think = fs.Bool("think", false, "SmolLM3 reasoning mode on (/think)")
			noThink = fs.Bool("no-think", false, "SmolLM3 reasoning mode off (/no_think)")
			n = fs.Int("n", 256, "maximum tokens to generate")
			d := engine.DefaultSamplerParams()
			temp = fs.Float64("temp", flagFloat(d.Temperature), "temperature (0 = greedy)")
			topP = fs.Float64("top-p", flagFloat(d.TopP), "nucleus sampling threshold (1 = off)")
			topK = fs.Int("top-k", d.TopK, "keep the K most likely tokens (0 = off)")
			minP = fs.Float64("min-p", flagFloat(d.MinP), "drop tokens below this fraction of the top probability (0 = off)")
			repeat = fs.Float64("repeat-penalty", flagFloat(d.RepeatPenalty), "repetition penalty (1 = off)")
			seed = fs.Int64("seed", -1, "sampling seed (-1 = random)")
			schema = fs.String("json-schema", "", "constrain the answer to the JSON schema in this `file` (as response_format json_schema does)")
		},
		Run: func(env *Env, args []string) error {
			if *prompt == "" && len(args) == 1 {
				*prompt = args[0]
			} else if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			if *prompt == "" {
				return usageErr("--prompt is required")
			}
			th, err := thinkFlag(*think, *noThink)
			if err != nil {
				return err
			}
			e, err := mf.load(env)
			if err != nil {
				return err
			}
			defer e.Close()
			sp := engine.DefaultSamplerParams()
			sp.Temperature, sp.TopP, sp.TopK, sp.MinP = float32(*temp), float32(*topP), *topK, float32(*minP)
			sp.RepeatPenalty = float32(*repeat)
			sp.Seed = uint64(*seed)
			if *seed < 0 {
				sp.Seed = rand.Uint64()
			}
			p := engine.GenParams{SamplerParams: sp, MaxTokens: *n}
			if *schema != "" {
				data, err := os.ReadFile(*schema)
				if err != nil {
					return fmt.Errorf("reading the JSON schema: %w", err)
				}
				if p.Grammar, err = constrain.CompileSchema(data); err != nil {
					return fmt.Errorf("--json-schema %s: %w", *schema, err)
				}
			}

			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			var emit func(engine.Delta) error
			if !*asJSON {
				thinking := false
				emit = func(d engine.Delta) error {
					if d.Thinking != "" {
						if !thinking {
							fmt.Fprint(env.Stdout, dim)
							thinking = true
						}
						fmt.Fprint(env.Stdout, d.Thinking)
					}
					if d.Answer != "" {
						if thinking {
							fmt.Fprint(env.Stdout, reset+"\n")
							thinking = false
						}
						fmt.Fprint(env.Stdout, d.Answer)
					}
					return nil
				}
			}
			var res engine.Result
			if *raw {
				res, err = e.Complete(ctx, *prompt, p, emit)
			} else {
				res, err = e.Chat(ctx, engine.ChatRequest{Messages: []engine.Message{{Role: "user", Content: *prompt}},
					Think: th, Params: p}, emit)
			}
			if err != nil {
				return err
			}
			info := e.Info()
			if *asJSON {
				out := generateJSON{PromptTokens: nonNil(res.PromptTokens), Tokens: nonNil(res.Tokens), Text: res.Text,
					Thinking: res.Thinking, Answer: res.Answer, FinishReason: res.FinishReason, Backend: info.Backend,
					Device: info.Device}
				out.Timings.PromptTPS = res.Timings.PromptTPS
				out.Timings.TPS = res.Timings.GenTPS
				out.Timings.TTFTMillis = float64(res.Timings.TimeToFirstToken.Microseconds()) / 1000
				out.Timings.CachedTokens = res.Timings.CachedTokens
				out.Timings.ConstrainMS = float64(res.Timings.ConstrainDuration.Microseconds()) / 1000
				return json.NewEncoder(env.Stdout).Encode(out)
			}
			fmt.Fprintln(env.Stdout)
			env.Log.Info("generated", "prompt_tokens", len(res.PromptTokens), "tokens", len(res.Tokens),
				"prompt_tok_s", fmtRate(res.Timings.PromptTPS), "tok_s", fmtRate(res.Timings.GenTPS),
				"finish", res.FinishReason, "backend", info.Backend)
			return nil
		},
	})
}

const (
	dim   = "\x1b[2m"
	reset = "\x1b[0m"
)

type generateJSON struct {
	PromptTokens []int32 `json:"prompt_tokens"`
	Tokens       []int32 `json:"tokens"`
	Text         string  `json:"text"`
	Thinking     string  `json:"thinking"`
	Answer       string  `json:"answer"`
	FinishReason string  `json:"finish_reason"`
	Backend      string  `json:"backend"`
	Device       string  `json:"device"`
	Timings      struct {
		PromptTPS    float64 `json:"prompt_tokens_per_second"`
		TPS          float64 `json:"tokens_per_second"`
		TTFTMillis   float64 `json:"time_to_first_token_ms"`
		CachedTokens int     `json:"cached_prompt_tokens"`
		ConstrainMS  float64 `json:"constrain_ms,omitempty"` // --json-schema: masking and matching, within the above
	} `json:"timings"`
}

func nonNil(x []int32) []int32 {
	if x == nil {
		return []int32{}
	}
	return x
}
