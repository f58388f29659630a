package model

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"smolchat/internal/craft"
	"smolchat/internal/testutil"
	"smolchat/model/quant"
)

// writeModel writes a tiny model of architecture arch with matrices of type typ, without tensor skip.
func writeModel(t *testing.T, arch string, typ quant.Type, skip string) string {
	return craft.Model(arch, typ).RemoveTensor(skip).Write(t, "m.gguf")
}

func TestOpenErrors(t *testing.T) {
	good := writeModel(t, "llama", quant.F32, "")
	m, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Heads != 4 || c.KVHeads != 2 || c.HeadDim != 8 || c.RopeBase != 10000 || !c.TiedOutput || c.Vocab != 16 {
		t.Errorf("config %+v", c)
	}
	if m.Weights.Output.Name != "token_embd.weight" {
		t.Errorf("tied output is %q", m.Weights.Output.Name)
	}
	m.Close()

	truncated := filepath.Join(t.TempDir(), "t.gguf")
	data, _ := os.ReadFile(good)
	os.WriteFile(truncated, data[:len(data)-100], 0o644)
	noRead := filepath.Join(t.TempDir(), "noread.gguf")
	os.WriteFile(noRead, data, 0o000)

	cases := []struct{ name, path, want string }{
		{"wrong architecture", writeModel(t, "gpt2", quant.F32, ""), `architecture "gpt2" is not supported (supported: llama, qwen3, smollm3)`},
		{"missing tensor", writeModel(t, "llama", quant.F32, "blk.0.ffn_up.weight"), "tensor blk.0.ffn_up.weight is missing"},
		{"unsupported quant", writeModel(t, "llama", quant.Q4_1, ""), "type Q4_1, which this project cannot compute with"},
		{"directory", t.TempDir(), "is a directory"},
		{"truncated", truncated, "truncated file"},
		{"missing file", filepath.Join(t.TempDir(), "none.gguf"), "no such file"},
	}
	if os.Geteuid() != 0 { // root reads anything
		cases = append(cases, struct{ name, path, want string }{"no permission", noRead, "permission denied"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestFamilyRefusesUnimplemented checks that a family with a fact no backend implements is refused naming
// the fact. No family smolchat lists has one, so no crafted file can reach these messages; the check runs
// on Family values.
func TestFamilyRefusesUnimplemented(t *testing.T) {
	ok := Family{Rope: RopeNorm, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1}
	tests := []struct {
		name string
		edit func(*Family)
		want string // "" means accepted
	}{
		{"llama-like", func(*Family) {}, ""},
		{"NEOX RoPE, QK-norm, NoPE layers, rope_freqs", func(f *Family) {
			f.Rope, f.QKNorm, f.NoRopeStep, f.HasRopeFreqs = RopeNeox, true, 4, true
		}, ""},
		{"attention biases (Qwen2)", func(f *Family) { f.AttnBias = true }, "needs attention biases, which smolchat does not implement yet"},
		{"feed-forward biases", func(f *Family) { f.FFNBias = true }, "needs feed-forward biases"},
		{"GELU-GLU (Gemma)", func(f *Family) { f.Act = "gelu-glu" }, `needs activation "gelu-glu"`},
		{"post-norm", func(f *Family) { f.Norm = "post" }, `needs norm placement "post"`},
		{"embedding scale (Gemma)", func(f *Family) { f.EmbedScale = 48 }, "needs embedding scale 48"},
		{"other RoPE pairs", func(f *Family) { f.Rope = "glm" }, `needs RoPE style "glm" ("norm" and "neox" pairs are implemented)`},
		{"two at once", func(f *Family) { f.AttnBias, f.EmbedScale = true, 2 }, "needs attention biases and embedding scale 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			tt.edit(&f)
			err := f.check("m.gguf", "x")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}

func TestSharedModels(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Config
		nope []int
	}{
		{"stories260K.gguf", Config{Arch: "llama", Dim: 64, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8, FF: 172,
			Vocab: 512, Context: 2048, RopeBase: 10000, RopeDim: 8, RMSEps: 1e-5,
			Family: Family{Rope: RopeNorm, HasRopeFreqs: true, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1}, TrainedContext: 2048,
			RopeScaling: RopeScalingNone, RopeFactor: 1, RopeOrigContext: 2048, RopeAttnFactor: 1}, nil},
		{"smollm3-tiny-synthetic-Q4_K_M.gguf", Config{Arch: "smollm3", Dim: 512, Layers: 8, Heads: 4, KVHeads: 1,
			HeadDim: 128, FF: 1536, Vocab: 128256, Context: 4096, RopeBase: 5e6, RopeDim: 128, RMSEps: 1e-6,
			Family:         Family{Rope: RopeNorm, NoRopeStep: 4, Act: SiLUGLU, Norm: PreNorm, EmbedScale: 1, ChatFormat: "smollm3"},
			TrainedContext: 4096, RopeScaling: RopeScalingNone, RopeFactor: 1, RopeOrigContext: 4096, RopeAttnFactor: 1,
			TiedOutput: true}, []int{3, 7}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, err := Open(testutil.SharedFile(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got := m.Config
			nope := got.NoRope
			got.NoRope = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", got, tc.want)
			}
			var gotNope []int
			for l, n := range nope {
				if n {
					gotNope = append(gotNope, l)
				}
			}
			if len(gotNope) != len(tc.nope) || (len(tc.nope) > 0 && gotNope[0] != tc.nope[0]) {
				t.Errorf("NoPE layers %v, want %v", gotNope, tc.nope)
			}
		})
	}
}

// TestScaleRope: the load options stretch the context as llama.cpp's --rope-scaling/--rope-scale do.
func TestScaleRope(t *testing.T) {
	open := func() *Model {
		m, err := Open(writeModel(t, "smollm3", quant.F32, ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := open()
	trained := m.Config.Context
	if err := m.ScaleRope(RopeOptions{Scaling: RopeScalingYaRN, Factor: 2}); err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Context != 2*trained || c.RopeOrigContext != trained || c.RopeFactor != 2 || c.RopeScaling != RopeScalingYaRN {
		t.Errorf("yarn ×2: context %d, original %d, factor %g, %s; want %d, %d, 2, yarn", c.Context, c.RopeOrigContext, c.RopeFactor, c.RopeScaling, 2*trained, trained)
	}
	if err := m.ScaleRope(RopeOptions{Scaling: RopeScalingNone}); err != nil || m.Config.Context != trained || m.Config.RopeFactor != 1 {
		t.Errorf("none after yarn: %v, context %d, factor %g", err, m.Config.Context, m.Config.RopeFactor)
	}
	for _, tc := range []struct {
		o    RopeOptions
		want string
	}{
		{RopeOptions{Scaling: RopeScalingYaRN}, "--rope-scaling yarn needs a factor above 1 (--rope-scale; 2 for"},
		{RopeOptions{Scaling: RopeScalingLinear, Factor: 0.5}, "a factor of at least 1"},
		{RopeOptions{Factor: -1}, "want a finite factor"},
	} {
		if err := open().ScaleRope(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
}
