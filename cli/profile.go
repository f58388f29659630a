package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"smolchat/engine"
	"smolchat/gpu"
)

// profiler is the GPU backend's per-kernel profiler.
type profiler interface {
	Profile(ctx context.Context, opts gpu.ProfileOptions) (*gpu.Profile, error)
	Batch() int
}

// profileJSON is bench --profile --json's output.
type profileJSON struct {
	Model   string `json:"model"`
	Quant   string `json:"quant"`
	Backend string `json:"backend"`
	Adapter string `json:"adapter"`
	*gpu.Profile
}

// runProfile is bench --profile: the time of each kernel of a decode step of seqs sequences and of a
// prefill step of min(pp, batch) tokens, after depth cached positions.
func runProfile(env *Env, info engine.Info, b engine.Backend, depth, pp, seqs, reps int, asJSON bool) error {
	g, ok := b.(profiler)
	if !ok {
		return usageErr("--profile times GPU kernels: add --gpu (the %s backend has none)", info.Backend)
	}
	if pp < 1 {
		return usageErr("--profile measures a prefill step of min(--pp, batch) tokens: --pp must be ≥ 1")
	}
	p, err := g.Profile(context.Background(), gpu.ProfileOptions{Depth: depth, Prefill: min(pp, g.Batch()), Seqs: seqs, Reps: reps})
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(env.Stdout).Encode(profileJSON{Model: info.Model, Quant: info.Quant, Backend: info.Backend, Adapter: info.Device, Profile: p})
	}
	fmt.Fprintf(env.Stdout, "model %s (%s) on %s: %s\n", info.Model, info.Quant, info.Backend, info.Device)
	fmt.Fprintf(env.Stdout, "depth %d; decode %.3f ms/token (steps of %d sequences), prefill %.3f ms/token (steps of %d tokens); %s of %d\n",
		p.Depth, 1e3*p.DecodeSeconds, p.DecodeSeqs, 1e3*p.PrefillSeconds, p.PrefillTokens, p.Method, p.Reps)
	w := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "step\tshape\tkernel (decode)\tn\tdecode ms/tok\tGB/s\tGFLOP/s\tshare\tprefill ms/tok\tGB/s\tGFLOP/s\tshare\t")
	for _, r := range p.Rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t", r.Step, r.Shape, r.KernelDecode, r.Count, phaseCells(r.Decode), phaseCells(r.Prefill))
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// phaseCells formats a phase's time per token, rates and share as tab-separated cells.
func phaseCells(s gpu.PhaseStats) string {
	return fmt.Sprintf("%.4f\t%.2f\t%.2f\t%.1f%%", 1e3*s.Seconds, s.GBps, s.GFlops, 100*s.Share)
}
