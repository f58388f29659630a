package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"smolchat/engine"
)

func init() {
	var (
		mf             *modelFlags
		system         *string
		think, noThink *bool
		n              *int
		temp           *float64
	)
	register(&Command{
		Name:    "chat",
		Summary: "chat in the terminal (/help lists its commands)",
		Usage:   "--model FILE [--system TEXT] [--think|--no-think]",
		Flags: func(fs *flag.FlagSet) {
			mf = addModelFlags(fs)
			system = fs.String("system", "", "system prompt")
			think = fs.Bool("think", false, "start with reasoning on (/think)")
			noThink = fs.Bool("no-think", false, "start with reasoning off (/no_think)")
			n = fs.Int("n", 2048, "maximum tokens per answer")
			temp = fs.Float64("temp", flagFloat(engine.DefaultSamplerParams().Temperature), "temperature (0 = greedy)")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
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
			return chatLoop(env, e, *system, th, *n, float32(*temp))
		},
	})
}

// chatHelp lists the terminal chat's commands. Any other line, one starting with a slash included, is a
// message to the model.
const chatHelp = `  /think      reasoning on (models with a reasoning mode)
  /no_think   reasoning off
  /reset      forget the conversation
  /quit       leave (also /exit, or Ctrl-D); Ctrl-C stops an answer
  /help       this list
`

func chatLoop(env *Env, e *engine.Engine, system string, think *bool, maxTokens int, temp float32) error {
	info := e.Info()
	out := env.Stdout
	fmt.Fprintf(out, "smolchat — %s on %s (%s). /help lists the commands.\n", info.Model, info.Backend, info.Device)
	var history []engine.Message
	if system != "" {
		history = append(history, engine.Message{Role: "system", Content: system})
	}
	base := len(history)
	in := bufio.NewScanner(env.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	sp := engine.DefaultSamplerParams()
	sp.Temperature = temp
	reasoning := e.Template().Reasoning()
	for {
		switch {
		case !reasoning:
			fmt.Fprint(out, "\n> ")
		case think != nil && !*think:
			fmt.Fprint(out, "\n[no_think] > ")
		default:
			fmt.Fprint(out, "\n[think] > ")
		}
		if !in.Scan() {
			fmt.Fprintln(out)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/quit", "/exit":
			return nil
		case "/reset":
			history = history[:base]
			fmt.Fprintln(out, "(conversation cleared)")
			continue
		case "/help":
			fmt.Fprint(out, chatHelp)
			continue
		case "/think", "/no_think":
			if !reasoning {
				fmt.Fprintf(out, "(%s has no reasoning mode: %s changes nothing)\n", info.Model, line)
				continue
			}
			v := line == "/think"
			think = &v
			fmt.Fprintf(out, "(reasoning %s)\n", map[bool]string{true: "on", false: "off"}[v])
			continue
		}
		history = append(history, engine.Message{Role: "user", Content: line})
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		inThink := false
		res, err := e.Chat(ctx, engine.ChatRequest{Messages: history, Think: think,
			Params: engine.GenParams{SamplerParams: sp, MaxTokens: maxTokens}}, func(d engine.Delta) error {
			if d.Thinking != "" {
				if !inThink {
					fmt.Fprint(out, dim)
					inThink = true
				}
				fmt.Fprint(out, d.Thinking)
			}
			if d.Answer != "" {
				if inThink {
					fmt.Fprint(out, reset+"\n\n")
					inThink = false
				}
				fmt.Fprint(out, d.Answer)
			}
			return nil
		})
		stop()
		if inThink {
			fmt.Fprint(out, reset)
		}
		if err != nil {
			fmt.Fprintf(out, "\nerror: %v\n", err)
			history = history[:len(history)-1]
			continue
		}
		history = append(history, engine.Message{Role: "assistant", Content: res.Answer})
		t := res.Timings
		fmt.Fprintf(out, "\n%s[%d tokens · %s tok/s · prompt %d (%d cached) at %s tok/s · first token %s · %s]%s\n", dim,
			t.GeneratedTokens, fmtRate(t.GenTPS), t.PromptTokens, t.CachedTokens, fmtRate(t.PromptTPS),
			t.TimeToFirstToken.Round(1e6), res.FinishReason, reset)
	}
}
