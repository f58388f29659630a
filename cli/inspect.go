package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"smolchat/model"
	"smolchat/model/gguf"
)

func init() {
	var asJSON *bool
	register(&Command{
		Name:    "inspect",
		Summary: "show a GGUF file's metadata and tensor table",
		Usage:   "FILE [--json]",
		Flags:   func(fs *flag.FlagSet) { asJSON = fs.Bool("json", false, "print JSON instead of a table") },
		Run: func(env *Env, args []string) error {
			if len(args) != 1 {
				return usageErr("inspect takes one GGUF file")
			}
			f, err := gguf.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if *asJSON {
				return inspectJSON(env, f)
			}
			return inspectText(env, f)
		},
	})
}

// maxShown is how many elements of a long array inspect prints before summarizing.
const maxShown = 8

// summarize renders a metadata value for people: arrays longer than maxShown are cut with a count.
func summarize(v any) any {
	a, ok := v.(gguf.Array)
	if !ok {
		return v
	}
	n := a.Len()
	var head []any
	for i := 0; i < n && i < maxShown; i++ {
		head = append(head, summarize(a.Index(i)))
	}
	if n <= maxShown {
		return head
	}
	return map[string]any{"type": a.Type.String(), "len": n, "head": head}
}

// formatList prints array elements for people: strings quoted, numbers as numbers.
func formatList(xs []any) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		if s, ok := x.(string); ok {
			parts[i] = strconv.Quote(s)
		} else {
			parts[i] = fmt.Sprint(x)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

type inspectTensor struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Shape []uint64 `json:"shape"`
	Bytes uint64   `json:"bytes"`
}

func inspectJSON(env *Env, f *gguf.File) error {
	meta := map[string]any{}
	for _, kv := range f.KVs {
		meta[kv.Key] = summarize(kv.Value)
	}
	var ts []inspectTensor
	for _, t := range f.Tensors {
		ts = append(ts, inspectTensor{t.Name, t.Type.String(), t.Dims, t.Size})
	}
	counts := map[string]int{}
	for _, tc := range f.TypeCounts() {
		counts[tc.Type.String()] = tc.Count
	}
	out := map[string]any{"file": f.Path, "version": f.Version, "alignment": f.Alignment,
		"data_offset": f.DataOffset, "size": f.Size(), "metadata": meta, "tensors": ts, "type_counts": counts}
	if c, err := model.ConfigFromGGUF(f); err == nil {
		out["config"] = c
		out["quantization"] = model.FileTypeName(f)
	} else {
		out["config_error"] = err.Error()
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func inspectText(env *Env, f *gguf.File) error {
	w := env.Stdout
	fmt.Fprintf(w, "%s: GGUF v%d, %d metadata keys, %d tensors, %d bytes, alignment %d, data at %d\n\n",
		f.Path, f.Version, len(f.KVs), len(f.Tensors), f.Size(), f.Alignment, f.DataOffset)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tTYPE\tVALUE")
	for _, kv := range f.KVs {
		typ := kv.Type.String()
		if a, ok := kv.Value.(gguf.Array); ok {
			typ = fmt.Sprintf("%s[%d]", a.Type, a.Len())
		}
		var val string
		switch v := summarize(kv.Value).(type) {
		case map[string]any:
			val = fmt.Sprintf("%s … (%d elements)", formatList(v["head"].([]any)), v["len"])
		case []any:
			val = formatList(v)
		case string:
			if len(v) > 120 {
				v = v[:120] + fmt.Sprintf("… (%d bytes)", len(v))
			}
			val = strconv.Quote(v)
		default:
			val = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\n", kv.Key, typ, val)
	}
	tw.Flush()
	if len(f.Tensors) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENSOR\tTYPE\tSHAPE\tBYTES")
		for _, t := range f.Tensors {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", t.Name, t.Type, t.Dims, t.Size)
		}
		tw.Flush()
		fmt.Fprint(w, "\ntypes:")
		for _, tc := range f.TypeCounts() {
			fmt.Fprintf(w, " %s×%d", tc.Type, tc.Count)
		}
		fmt.Fprintln(w)
	}
	if c, err := model.ConfigFromGGUF(f); err == nil {
		fmt.Fprintf(w, "model: %s %s, %d layers, dim %d, heads %d/%d (head_dim %d), ff %d, vocab %d, ctx %d, rope base %g, tied output %v\n",
			c.Arch, model.FileTypeName(f), c.Layers, c.Dim, c.Heads, c.KVHeads, c.HeadDim, c.FF, c.Vocab, c.Context, c.RopeBase, c.TiedOutput)
		rope := fmt.Sprintf("rope: %s pairs over %d of %d dims, scaling %s", c.Rope, c.RopeDim, c.HeadDim, c.RopeScaling)
		if c.RopeScaling != model.RopeScalingNone {
			rope += fmt.Sprintf(" ×%g (original context %d)", c.RopeFactor, c.RopeOrigContext)
		}
		if c.HasRopeFreqs && f.Tensor("rope_freqs.weight") != nil {
			rope += ", Llama 3 frequency factors (rope_freqs.weight)"
		}
		if c.QKNorm {
			rope += "; QK-norm"
		}
		fmt.Fprintln(w, rope)
	} else {
		fmt.Fprintf(w, "model: not runnable: %v\n", err)
	}
	return nil
}
