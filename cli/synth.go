package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"smolchat/model/gguf"
	"smolchat/model/quant"
	"smolchat/model/synth"
)

func init() {
	var (
		preset, out, vocabFrom *string
		seed                   *uint64
		layers                 *int
	)
	register(&Command{
		Name:    "synth",
		Summary: "write a random-weight GGUF model (SmolLM3, Qwen3 or Llama 3 shape) (Q4_K_M mix) for tests and benchmarks",
		Usage:   "--preset " + synth.PresetNames() + " --out FILE [--layers N] [--seed N] [--vocab-from FILE.gguf]",
		Flags: func(fs *flag.FlagSet) {
			preset = fs.String("preset", "", "model shape: "+synth.PresetNames())
			out = fs.String("out", "", "GGUF file to write (replaced if it exists)")
			seed = fs.Uint64("seed", 1, "random seed; the same seed gives the same file")
			layers = fs.Int("layers", 0, "transformer blocks, if not the preset's: a short model of the full widths and tensor-type mix, for benchmarks")
			vocabFrom = fs.String("vocab-from", "", "copy the BPE vocabulary from this GGUF (e.g. Llama-3's) instead of the built-in one")
		},
		Run: func(env *Env, args []string) error {
			if len(args) != 0 {
				return usageErr("synth takes no positional arguments, got %q", strings.Join(args, " "))
			}
			if *preset == "" || *out == "" {
				return usageErr("--preset and --out are required")
			}
			p, err := synth.PresetByName(*preset)
			if err != nil {
				return usageErr("unknown preset %q (want %s)", *preset, synth.PresetNames())
			}
			switch {
			case *layers < 0:
				return usageErr("--layers %d: want a positive count, or 0 for the preset's %d", *layers, p.Layers)
			case *layers > 0:
				// The Q4_K_M rule and the NoPE layers follow the layer count, as they would in a real file
				// of that depth; the name says the file is cut down.
				p.Layers = *layers
				p.Name = fmt.Sprintf("%s-%dlayers", p.Name, p.Layers)
			}
			opts := synth.Options{Seed: *seed, Log: env.Log}
			if *vocabFrom != "" {
				f, err := gguf.Open(*vocabFrom)
				if err != nil {
					return err
				}
				opts.Vocab, err = synth.VocabFromGGUF(f, p.Vocab)
				f.Close()
				if err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			start := time.Now()
			env.Log.Info("synth: writing", "preset", p.Name, "seed", *seed, "out", *out)
			size, err := writeAtomically(*out, func(f *os.File) error { return synth.Write(ctx, f, p, opts) })
			if err != nil {
				return err
			}
			env.Log.Info("synth: done", "out", *out, "bytes", size, "elapsed", time.Since(start).Round(time.Millisecond))
			plan := p.Tensors()
			fmt.Fprintf(env.Stdout, "%s: preset %s, seed %d, %d bytes, %d tensors (%s)\n",
				*out, p.Name, *seed, size, len(plan), typeHistogram(synth.TypeCounts(plan)))
			return nil
		},
	})
}

// writeAtomically writes path through a temporary file in the same directory, renamed into place only when
// write succeeds, so an interrupted run never leaves a truncated model under the requested name.
func writeAtomically(path string, write func(*os.File) error) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file private (0600); a model file is ordinary data.
	if err := tmp.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("create %s: %w", path, err)
	}
	if err := write(tmp); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return st.Size(), nil
}

// typeHistogram renders type counts as "216 Q4_K, 37 Q6_K, 73 F32", most common first.
func typeHistogram(n map[quant.Type]int) string {
	types := make([]quant.Type, 0, len(n))
	for t := range n {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool {
		if n[types[i]] != n[types[j]] {
			return n[types[i]] > n[types[j]]
		}
		return types[i] < types[j]
	})
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%d %s", n[t], t)
	}
	return strings.Join(parts, ", ")
}
