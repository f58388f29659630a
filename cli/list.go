package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"smolchat/model/hub"
)

// listEntry is one model in `list --json`.
type listEntry struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	Size         int64  `json:"size"`
	Quantization string `json:"quantization,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	Incomplete   bool   `json:"incomplete,omitempty"`
	Error        string `json:"error,omitempty"`
}

func init() {
	var asJSON bool
	var modelsDir string
	register(&Command{
		Name:    "list",
		Summary: "list the models in the models directory with size, quantization and architecture",
		Usage:   "[--json] [--models-dir DIR]",
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print a JSON array instead of a table")
			addModelsDirFlag(fs, &modelsDir)
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			if modelsDir == "" {
				return usageErr("no models directory: set --models-dir")
			}
			models, err := hub.List(modelsDir)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]listEntry, 0, len(models))
				for _, m := range models {
					e := listEntry{Name: m.Name, Path: m.Path, Size: m.Size, Quantization: m.Quantization,
						Architecture: m.Architecture, Incomplete: m.Incomplete}
					if m.Err != nil {
						e.Error = m.Err.Error()
					}
					out = append(out, e)
				}
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(models) == 0 {
				fmt.Fprintf(env.Stderr, "no models in %s; download one with: smolchat pull\n", modelsDir)
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tQUANT\tARCH\tNOTE")
			for _, m := range models {
				note := ""
				switch {
				case m.Incomplete:
					note = "incomplete download: pull it again to resume"
				case m.Err != nil:
					note = "error: " + m.Err.Error()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, hub.FormatSize(m.Size), dashIfEmpty(m.Quantization), dashIfEmpty(m.Architecture), note)
			}
			return tw.Flush()
		},
	})
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
