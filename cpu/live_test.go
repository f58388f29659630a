package cpu

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model"
	"smolchat/model/synth"
)

// TestConformanceLive compares teacher-forced logits with llama.cpp run now (../shared/reference), on the
// shared fixtures and on a freshly synthesized SmolLM3 model. It needs node and the reference install, so
// it runs only with SMOLCHAT_LIVE_REFERENCE=1 (`task conformance`); the committed golden tests cover CI.
func TestConformanceLive(t *testing.T) {
	ref := testutil.LiveReference(t)

	tinySynth := filepath.Join(t.TempDir(), "synth-tiny.gguf")
	p, err := synth.PresetByName("smollm3-tiny")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(tinySynth)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Write(context.Background(), f, p, synth.Options{Seed: 11}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	seq := func(ids ...int32) []int32 { return ids }
	pseudo := func(n, vocab int, seed uint32) []int32 {
		out := make([]int32, n)
		for i := range out {
			seed = seed*1664525 + 1013904223
			out[i] = int32(seed % uint32(vocab))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		path   string
		tokens []int32
		tol    float64 // Llama numerics
		fast   float64 // Fast numerics
	}{
		{"stories260K F32", filepath.Join(testutil.SharedDir(), "stories260K.gguf"),
			seq(1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292), 0.005, 0.005},
		{"smollm3 tiny synthetic Q4_K_M (shared)", filepath.Join(testutil.SharedDir(), "smollm3-tiny-synthetic-Q4_K_M.gguf"),
			seq(128000, 12805, 5304, 264, 892, 44930, 77100, 93651, 93010, 103220, 36417, 49139, 49139, 112994, 80634, 83832, 113143, 88816, 48116, 97726), 0.03, 0.15},
		{"smollm3 tiny synth (this project's synth)", tinySynth, append(seq(128011, 882, 198), pseudo(17, 128000, 7)...), 0.03, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skipf("%s: %v", tc.path, err)
			}
			ids := make([]string, len(tc.tokens))
			for i, id := range tc.tokens {
				ids[i] = strconv.Itoa(int(id))
			}
			cmd := exec.Command("node", ref, "score", tc.path, strings.Join(ids, ","), "--k", "5", "--json")
			raw, err := cmd.Output()
			if err != nil {
				t.Fatalf("ref score: %v", err)
			}
			var golden struct {
				Positions []struct {
					Top [][2]float64 `json:"top"`
				} `json:"positions"`
			}
			if err := json.Unmarshal(raw, &golden); err != nil {
				t.Fatalf("ref output: %v\n%s", err, raw)
			}
			m, err := model.Open(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// Llama numerics are held to the tolerance; the default (Fast) numerics, whose
			// float32 attention sums are more accurate than llama.cpp's half ones, and Exact (float32
			// throughout, as the GPU) to TestConformance's limit for Fast.
			for _, mode := range []struct {
				num Numerics
				tol float64
			}{{Llama, tc.tol}, {Fast, tc.fast}, {Exact, tc.fast}} {
				b, err := New(m, Options{Context: 256, Numerics: mode.num})
				if err != nil {
					t.Fatal(err)
				}
				want := make([]int, len(tc.tokens))
				for i := range want {
					want[i] = i
				}
				logits, err := b.Forward(context.Background(), tc.tokens, want)
				b.Close()
				if err != nil {
					t.Fatal(err)
				}
				worst, at := 0.0, 0
				profile := make([]string, len(golden.Positions))
				for pos, g := range golden.Positions {
					scale := math.Max(1, math.Abs(g.Top[0][1]))
					posWorst := 0.0
					for _, pair := range g.Top {
						e := math.Abs(float64(logits[pos][int(pair[0])])-pair[1]) / scale
						posWorst = math.Max(posWorst, e)
						if e > worst {
							worst, at = e, pos
						}
					}
					profile[pos] = strconv.FormatFloat(posWorst, 'f', 4, 64)
				}
				t.Logf("%s, %s numerics: error %.5f (worst at position %d of %d; tolerance %g); by position: %s",
					tc.name, mode.num, worst, at, len(golden.Positions), mode.tol, strings.Join(profile, " "))
				if worst > mode.tol {
					t.Errorf("%s numerics: error %.5f exceeds %g", mode.num, worst, mode.tol)
				}
			}
		})
	}
}
