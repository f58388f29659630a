// Package conformance holds what the CPU and GPU backends' tests share to check a model family against
// llama.cpp: the synthetic models this project writes (model/synth presets, deterministic), llama.cpp's
// teacher-forced top-5 logits on them (golden.go, with their provenance), and the error metric.
package conformance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"smolchat/model"
	"smolchat/model/synth"
)

// TokenLogit is one of llama.cpp's top-5 at a position.
type TokenLogit struct {
	ID    int32
	Logit float32
}

// Case is a synthetic model and llama.cpp's logits for a token sequence on it.
type Case struct {
	Name   string
	Preset string // synth preset, seed 1, built-in vocabulary
	// Rope is the scaling smolchat applies at load (model.ScaleRope); llama.cpp's run reads the same from
	// keys written into a copy of the file (RopeKeys).
	Rope   model.RopeOptions
	Tokens []int32
	// From is the first position compared: a long sequence (YaRN beyond the original context) keeps
	// only the top-5 of positions From.. in Top.
	From int
	// Limits: see Cases.
	Limits Limits

	SHA256 string          // of the synthesized file the golden figures were made from (golden.go)
	Top    [][5]TokenLogit // llama.cpp's top-5 at positions From.. (golden.go)
}

// pseudo is n token ids below vocab from a linear congruential sequence (cpu/live_test.go's).
func pseudo(n, vocab int, seed uint32) []int32 {
	out := make([]int32, n)
	for i := range out {
		seed = seed*1664525 + 1013904223
		out[i] = int32(seed % uint32(vocab))
	}
	return out
}

// Limits are the errors allowed over the first 20 positions compared and over all of them, with the CPU's
// llama numerics (the closest to llama.cpp's roundings) and with float32 attention sums (the CPU's fast and
// exact numerics, and the GPU).
type Limits struct {
	Llama20, Llama, Float20, Float float64
}

// The limits of cpu/conformance_test.go for SmolLM3's synthetic model: random weights make these models
// chaotic, so that a one-ulp difference in a rounding can grow into a logit difference of several
// percent at a single position (the measured errors are mostly under 0.02 with isolated peaks; a family
// feature taken away gives 0.2 to 2, cpu's TestArchConformance).
var limits = Limits{Llama20: 0.03, Llama: 0.08, Float20: 0.15, Float: 0.3}

// longLimits are for the 320-position SmolLM3 sequences, where the chaos has had longer to grow, and
// which llama.cpp evaluates in one batch of 320: over 64 tokens its CPU attention takes a tiled float32
// path rather than the half-precision sums that llama numerics repeat. Without RoPE scaling these tokens
// measure 0.17 (llama numerics, 0.065 over the first 20), 0.22 (fast) and 0.35 (exact), as much as with
// YaRN: 0.16, 0.22 and 0.45 (CPU, AVX2, 2026-12-05).
var longLimits = Limits{Llama20: 0.08, Llama: 0.2, Float20: 0.15, Float: 0.5}

// Cases are the families' conformance sequences: Qwen3 (QK-norm, NEOX RoPE), Llama 3 (rope_freqs) and
// SmolLM3 with YaRN ×4 over an original context of 256 positions (the file's own 4096 would need
// sequences too long for a test), 320 positions, beside the same tokens without scaling as its baseline.
var Cases = func() []Case {
	cs := []Case{
		{Name: "qwen3-tiny", Preset: "qwen3-tiny", Tokens: append([]int32{128011, 882, 198}, pseudo(29, 128000, 7)...), Limits: limits},
		{Name: "llama3-tiny", Preset: "llama3-tiny", Tokens: append([]int32{128000}, pseudo(31, 128000, 5)...), Limits: limits},
		{Name: "smollm3-tiny-320", Preset: "smollm3-tiny", Tokens: pseudo(320, 128000, 3), Limits: longLimits},
		{Name: "smollm3-tiny-yarn", Preset: "smollm3-tiny", Rope: model.RopeOptions{Scaling: model.RopeScalingYaRN, Factor: 4, OrigContext: 256},
			Tokens: pseudo(320, 128000, 3), Limits: longLimits},
	}
	for i := range cs {
		g := golden[cs[i].Name]
		cs[i].SHA256, cs[i].Top = g.sha256, g.top
	}
	return cs
}()

// RopeKeys are the metadata keys that give llama.cpp c.Rope (for a file of architecture arch and
// trained context n).
func RopeKeys(c Case, arch string, n int) map[string]any {
	if c.Rope.Scaling == "" {
		return nil
	}
	orig := c.Rope.OrigContext
	if orig == 0 {
		orig = n
	}
	return map[string]any{arch + ".rope.scaling.type": string(c.Rope.Scaling), arch + ".rope.scaling.factor": float32(c.Rope.Factor),
		arch + ".rope.scaling.original_context_length": uint32(orig)}
}

type goldenFigures struct {
	sha256 string
	top    [][5]TokenLogit
}

var (
	filesMu sync.Mutex
	files   = map[string]string{}
)

// Context is the KV cache a backend needs for c.
func (c Case) Context() int { return len(c.Tokens) }

// File returns the synthetic model of c's preset, written once into a cache in the temporary directory
// (smolchat-conformance/, checked by its sha256 at every use). It fails t when synth no longer writes the
// file the golden figures were made from.
func File(t testing.TB, c Case) string {
	t.Helper()
	filesMu.Lock()
	defer filesMu.Unlock()
	if p, ok := files[c.Preset]; ok {
		return p
	}
	dir := filepath.Join(os.TempDir(), "smolchat-conformance")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, c.Preset+".gguf")
	if c.SHA256 != "" && fileSHA(path) == c.SHA256 {
		files[c.Preset] = path
		return path
	}
	p, err := synth.PresetByName(c.Preset)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, c.Preset+"-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	if err := synth.Write(context.Background(), io.MultiWriter(f, h), p, synth.Options{Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); c.SHA256 != "" && got != c.SHA256 {
		t.Fatalf("synth --preset %s --seed 1 wrote a file with sha256 %s, but the golden figures are for %s: "+
			"regenerate them (internal/conformance/generate_test.go says how)", c.Preset, got, c.SHA256)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
	files[c.Preset] = path
	return path
}

// fileSHA is the hex sha256 of the file at path, or "" when it cannot be read.
func fileSHA(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Open opens c's model with its RoPE options applied.
func Open(t testing.TB, c Case) *model.Model {
	t.Helper()
	m, err := model.Open(File(t, c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.ScaleRope(c.Rope); err != nil {
		t.Fatal(err)
	}
	return m
}

// Errors measures logits (one row per position from c.From) against llama.cpp's top-5: at each position
// the worst |Δlogit| over llama.cpp's top-5 tokens, divided by max(1, |llama.cpp's top-1 logit|), the
// metric of cpu/conformance_test.go.
func Errors(logits [][]float32, c Case) []float64 {
	errs := make([]float64, len(c.Top))
	for i, ref := range c.Top {
		norm := max(1, math.Abs(float64(ref[0].Logit)))
		for _, r := range ref {
			errs[i] = max(errs[i], math.Abs(float64(logits[i][r.ID]-r.Logit))/norm)
		}
	}
	return errs
}

// Check fails t when errs (from Errors) exceed the limits: llama is whether the errors are those of
// the CPU's llama numerics.
func Check(t testing.TB, errs []float64, l Limits, llama bool, what string) {
	t.Helper()
	lim20, lim := l.Float20, l.Float
	if llama {
		lim20, lim = l.Llama20, l.Llama
	}
	w20, at20 := Worst(errs[:min(20, len(errs))])
	w, at := Worst(errs)
	t.Logf("%s: %d positions, worst error %.4f at %d (limit %g), first 20 %.4f at %d (limit %g); by position: %.3f",
		what, len(errs), w, at, lim, w20, at20, lim20, errs)
	if w20 > lim20 || w > lim {
		t.Errorf("%s: error %.4f at %d (limit %g), first 20 %.4f at %d (limit %g)", what, w, at, lim, w20, at20, lim20)
	}
}

// Worst is the largest error and its index.
func Worst(errs []float64) (float64, int) {
	w, at := 0.0, 0
	for i, e := range errs {
		if e > w {
			w, at = e, i
		}
	}
	return w, at
}

// Want lists the rows to ask a backend for: positions From..len(Tokens)-1.
func Want(c Case) []int {
	w := make([]int, 0, len(c.Tokens)-c.From)
	for i := c.From; i < len(c.Tokens); i++ {
		w = append(w, i)
	}
	return w
}
