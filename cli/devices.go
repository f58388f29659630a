package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"smolchat/gpu"
)

// devicesReport is `devices --json`: every adapter, and what the automatic policy and --gpu would pick.
type devicesReport struct {
	Adapters []gpu.AdapterInfo `json:"adapters"`
	// Auto is the adapter a plain run uses; Index -1 means the CPU backend.
	Auto pick `json:"auto"`
	// Forced is what --gpu would use (the auto policy allowing CPU-type adapters).
	Forced pick `json:"forced"`
}

type pick struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

func init() {
	var asJSON bool
	register(&Command{
		Name:    "devices",
		Summary: "list the WebGPU adapters and which one a run would use",
		Usage:   "[--json]",
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			adapters, err := gpu.Adapters()
			if err != nil {
				return err
			}
			rep := devicesReport{Adapters: adapters}
			for _, p := range []struct {
				dst   *pick
				force bool
			}{{&rep.Auto, false}, {&rep.Forced, true}} {
				c, err := gpu.Choose(adapters, "auto", p.force)
				if err != nil {
					return err
				}
				*p.dst = pick{Index: c.Index, Reason: c.Reason}
			}
			if rep.Adapters == nil {
				rep.Adapters = []gpu.AdapterInfo{}
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printDevices(env, rep)
			return nil
		},
	})
}

func printDevices(env *Env, rep devicesReport) {
	if len(rep.Adapters) > 0 {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\t#\tNAME\tTYPE\tBACKEND\tFEATURES\tMAX BINDING\tMAX BUFFER\tWG MEMORY\tWG THREADS")
		for _, a := range rep.Adapters {
			mark := ""
			if a.Index == rep.Auto.Index {
				mark = "*"
			}
			features := strings.Join(a.Features, ",")
			if features == "" {
				features = "-"
			}
			l := a.Limits
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", mark, a.Index, a.Name, a.Type, a.Backend, features,
				fmtBytes(l.MaxStorageBufferBindingSize), fmtBytes(l.MaxBufferSize), fmtBytes(uint64(l.MaxComputeWorkgroupStorageSize)),
				l.MaxComputeInvocationsPerWorkgroup)
		}
		tw.Flush()
		fmt.Fprintln(env.Stdout)
	}
	if rep.Auto.Index >= 0 {
		a := rep.Adapters[rep.Auto.Index]
		fmt.Fprintf(env.Stdout, "auto: #%d %s (%s)\n", a.Index, a.Name, rep.Auto.Reason)
		return
	}
	fmt.Fprintf(env.Stdout, "auto: CPU backend: %s\n", rep.Auto.Reason)
	if rep.Forced.Index >= 0 {
		a := rep.Adapters[rep.Forced.Index]
		fmt.Fprintf(env.Stdout, "--gpu would use #%d %s (%s, %s)\n", a.Index, a.Name, a.Type, a.Backend)
	}
}

// fmtBytes prints a byte count in binary units, exact when it is a whole number of them.
func fmtBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(uint64(v)) {
		return fmt.Sprintf("%d %s", uint64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}
