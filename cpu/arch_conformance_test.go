package cpu

import (
	"context"
	"testing"

	"smolchat/internal/conformance"
	"smolchat/model"
)

// TestArchConformance compares teacher-forced logits with llama.cpp's (internal/conformance: golden
// figures on this project's synthetic qwen3-tiny, llama3-tiny and smollm3-tiny with YaRN ×2) in every
// numerics mode, and checks that each family's feature is what the agreement rests on: the same run
// with the feature taken away must miss by far more than the limit.
func TestArchConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("synthesizes three models")
	}
	faults := map[string]func(c *model.Config){
		"qwen3-tiny":        func(c *model.Config) { c.Rope = model.RopeNorm },                 // adjacent pairs instead of NEOX
		"llama3-tiny":       func(c *model.Config) { c.RopeFreqs = nil },                       // no rope_freqs
		"smollm3-tiny-yarn": func(c *model.Config) { c.RopeScaling = model.RopeScalingLinear }, // linear instead of YaRN
		"smollm3-tiny-320":  func(c *model.Config) { c.RopeBase *= 2 },                         // another RoPE base
	}
	for _, c := range conformance.Cases {
		t.Run(c.Name, func(t *testing.T) {
			m := conformance.Open(t, c)
			for _, num := range []Numerics{Llama, Fast, Exact} {
				conformance.Check(t, archErrors(t, m, c, num, nil), c.Limits, num == Llama, num.String()+" numerics")
			}
			w, _ := conformance.Worst(archErrors(t, m, c, Llama, faults[c.Name]))
			t.Logf("fault: worst error %.3f", w)
			if w < 2*c.Limits.Llama {
				t.Errorf("without its feature the family still agrees with llama.cpp (error %.4f): the test cannot see it", w)
			}
		})
	}
}

// archErrors runs c's tokens through a CPU backend over m (its config changed by fault, if any) and
// measures the rows from c.From against llama.cpp's.
func archErrors(t *testing.T, m *model.Model, c conformance.Case, num Numerics, fault func(*model.Config)) []float64 {
	t.Helper()
	mm := *m
	if fault != nil {
		fault(&mm.Config)
	}
	b := newBackend(t, &mm, Options{Threads: 2, Numerics: num, Context: c.Context()})
	defer b.Close()
	logits, err := b.Forward(context.Background(), c.Tokens, conformance.Want(c))
	if err != nil {
		t.Fatal(err)
	}
	return conformance.Errors(logits, c)
}
