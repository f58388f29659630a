package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

func init() {
	var (
		mf     *modelFlags
		tokens *string
		top    *int
		asJSON *bool
	)
	register(&Command{
		Name:    "logits",
		Summary: "teacher-force token ids in one batched forward pass and print the top-K logits after each position",
		Usage:   "--model FILE --tokens ID,ID,... [--top K] [--cpu|--gpu] [--json]",
		Flags: func(fs *flag.FlagSet) {
			mf = addModelFlags(fs)
			tokens = fs.String("tokens", "", "comma-separated token ids")
			top = fs.Int("top", 5, "how many logits to show per position")
			asJSON = fs.Bool("json", false, `print JSON: {"tokens":[...],"positions":[{"pos":0,"top":[[id,logit],...]},...]}`)
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected arguments %q", args)
			}
			ids, err := parseIDs(*tokens)
			if err != nil {
				return err
			}
			if *top < 1 {
				return usageErr("--top must be at least 1")
			}
			e, err := mf.load(env)
			if err != nil {
				return err
			}
			defer e.Close()
			vocab := e.Tokenizer().VocabSize()
			for i, id := range ids {
				if id < 0 || int(id) >= vocab {
					return fmt.Errorf("token %d at index %d is outside the vocabulary of %d", id, i, vocab)
				}
			}
			b := e.Backend()
			if len(ids) > b.MaxContext() {
				return fmt.Errorf("%d tokens do not fit in the context of %d (raise --ctx)", len(ids), b.MaxContext())
			}
			want := make([]int, len(ids))
			for i := range want {
				want[i] = i
			}
			rows, err := b.Forward(context.Background(), ids, want)
			if err != nil {
				return err
			}
			type position struct {
				Pos int          `json:"pos"`
				Top [][2]float64 `json:"top"`
			}
			out := struct {
				Tokens    []int32    `json:"tokens"`
				Backend   string     `json:"backend"`
				Positions []position `json:"positions"`
			}{Tokens: ids, Backend: b.Name()}
			for i, row := range rows {
				out.Positions = append(out.Positions, position{Pos: i, Top: topK(row, *top)})
			}
			if *asJSON {
				return json.NewEncoder(env.Stdout).Encode(out)
			}
			for _, p := range out.Positions {
				fmt.Fprintf(env.Stdout, "pos %d (token %d):", p.Pos, ids[p.Pos])
				for _, t := range p.Top {
					fmt.Fprintf(env.Stdout, " %d:%.4f", int(t[0]), t[1])
				}
				fmt.Fprintln(env.Stdout)
			}
			return nil
		},
	})
}

func parseIDs(s string) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, usageErr("--tokens is required")
	}
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, usageErr("--tokens: %q is not a token id", f)
		}
		ids = append(ids, int32(v))
	}
	return ids, nil
}

// topK returns the k largest logits as [id, logit] pairs, largest first (ties: lower id first).
func topK(row []float32, k int) [][2]float64 {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	k = min(k, len(idx))
	out := make([][2]float64, k)
	for i := 0; i < k; i++ {
		out[i] = [2]float64{float64(idx[i]), float64(row[idx[i]])}
	}
	return out
}
