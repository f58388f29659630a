package synth

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"smolchat/model/quant"
)

func TestUseMoreBits(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{
		// Spec §2.3: the Q6_K attn_v/ffn_down layers of the real SmolLM3-3B Q4_K_M file.
		{36, []int{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35}},
		// The shared 8-layer reference file, quantized by llama.cpp itself: blocks 0, 3, 6, 7.
		{8, []int{0, 3, 6, 7}},
		{4, []int{2, 3}},
	}
	for _, tt := range tests {
		var got []int
		for i := range tt.n {
			if useMoreBits(i, tt.n) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("useMoreBits over %d layers = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestPresetByName(t *testing.T) {
	for _, name := range []string{"smollm3-3b", "smollm3-tiny"} {
		p, err := PresetByName(name)
		if err != nil || p.Name != name {
			t.Errorf("PresetByName(%q) = %q, %v", name, p.Name, err)
		}
		if err := p.check(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, err := PresetByName("smollm3-7b"); err == nil || !strings.Contains(err.Error(), "smollm3-3b|smollm3-tiny") {
		t.Errorf("unknown preset: err = %v, want one listing the presets", err)
	}
}

func TestPresetCheckRejectsBadShapes(t *testing.T) {
	good, _ := PresetByName("smollm3-tiny")
	tests := []struct {
		name   string
		modify func(*Preset)
		want   string
	}{
		{"zero layers", func(p *Preset) { p.Layers = 0 }, "positive"},
		{"heads do not divide dim", func(p *Preset) { p.Heads = 3 }, "divide"},
		{"kv heads do not divide heads", func(p *Preset) { p.KVHeads = 3 }, "divide"},
		{"ff not a K-quant row", func(p *Preset) { p.FF = 700 }, "multiples of 256"},
		{"vocab too small for specials", func(p *Preset) { p.Vocab = 32000 }, "special"},
	}
	for _, tt := range tests {
		p := good
		tt.modify(&p)
		if err := p.check(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: check() = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// The 3B plan must match the real SmolLM3-3B Q4_K_M file tensor for tensor (spec §2.3).
func TestPlan3B(t *testing.T) {
	p, _ := PresetByName("smollm3-3b")
	plan := p.Tensors()
	if len(plan) != 326 {
		t.Fatalf("%d tensors, want 326", len(plan))
	}
	counts := TypeCounts(plan)
	if counts[quant.Q4_K] != 216 || counts[quant.Q6_K] != 37 || counts[quant.F32] != 73 || len(counts) != 3 {
		t.Errorf("type counts %v, want 216 Q4_K, 37 Q6_K, 73 F32", counts)
	}
	byName := map[string]TensorSpec{}
	for _, ts := range plan {
		if _, dup := byName[ts.Name]; dup {
			t.Errorf("tensor %s planned twice", ts.Name)
		}
		byName[ts.Name] = ts
	}
	if _, ok := byName["output.weight"]; ok {
		t.Error("plan has output.weight; SmolLM3's head is tied to token_embd")
	}
	q6 := map[int]bool{0: true, 1: true, 2: true, 3: true, 6: true, 9: true, 12: true, 15: true, 18: true,
		21: true, 24: true, 27: true, 30: true, 31: true, 32: true, 33: true, 34: true, 35: true}
	type want struct {
		dims []uint64
		typ  quant.Type
	}
	expect := map[string]want{
		"token_embd.weight":  {[]uint64{2048, 128256}, quant.Q6_K},
		"output_norm.weight": {[]uint64{2048}, quant.F32},
	}
	for l := range 36 {
		more := quant.Q4_K
		if q6[l] {
			more = quant.Q6_K
		}
		for name, w := range map[string]want{
			"attn_norm.weight":   {[]uint64{2048}, quant.F32},
			"attn_q.weight":      {[]uint64{2048, 2048}, quant.Q4_K},
			"attn_k.weight":      {[]uint64{2048, 512}, quant.Q4_K},
			"attn_v.weight":      {[]uint64{2048, 512}, more},
			"attn_output.weight": {[]uint64{2048, 2048}, quant.Q4_K},
			"ffn_norm.weight":    {[]uint64{2048}, quant.F32},
			"ffn_gate.weight":    {[]uint64{2048, 11008}, quant.Q4_K},
			"ffn_up.weight":      {[]uint64{2048, 11008}, quant.Q4_K},
			"ffn_down.weight":    {[]uint64{11008, 2048}, more},
		} {
			expect[fmt.Sprintf("blk.%d.%s", l, name)] = w
		}
	}
	if len(expect) != len(byName) {
		t.Errorf("plan has %d distinct tensors, want %d", len(byName), len(expect))
	}
	for name, w := range expect {
		ts, ok := byName[name]
		if !ok {
			t.Errorf("tensor %s missing", name)
			continue
		}
		if !slices.Equal(ts.Dims, w.dims) || ts.Type != w.typ {
			t.Errorf("tensor %s: %s %v, want %s %v", name, ts.Type, ts.Dims, w.typ, w.dims)
		}
	}
	// Row sizes from spec §2.3: Q4_K 2048 → 1152 B, 11008 → 6192 B; Q6_K 2048 → 1680 B, 11008 → 9030 B.
	// Per layer 2×8192 (norms) + 2359296 (q) + 589824 (k) + 2359296 (o) + 2×12681216 (gate, up), plus
	// v and down: 860160 + 18493440 on the 18 Q6_K layers, 589824 + 12681216 on the others.
	// With token_embd (128256×1680) and output_norm: 1907462144 bytes, the real file's 1.78 GiB.
	var total int64
	for _, ts := range plan {
		total += ts.Bytes()
	}
	if total != 1907462144 {
		t.Errorf("tensor data %d bytes, want 1907462144", total)
	}
}

// Every tensor of every preset has a usable spread: positive, finite, and small enough that the K-quant
// scales stay within f16.
func TestPlanScales(t *testing.T) {
	for _, p := range Presets() {
		for _, ts := range p.Tensors() {
			if ts.role == roleFixed {
				continue
			}
			if !(ts.Std > 0) || ts.Std > 10 {
				t.Errorf("%s %s: std %g", p.Name, ts.Name, ts.Std)
			}
		}
	}
}

// TestLlama3RopeFreqs: the frequency factors of Llama 3.2's rope_scaling at head width 64 and base
// 500000, as convert_hf_to_gguf.py computes them: 1 for the fast pairs, 32 for the slow, smooth between.
func TestLlama3RopeFreqs(t *testing.T) {
	f := llama3RopeFreqs(500000, 64)
	if len(f) != 32 || f[0] != 1 || f[31] != 32 {
		t.Fatalf("factors %v: want 32 of them from 1 to 32", f)
	}
	for i := 1; i < len(f); i++ {
		if f[i] < f[i-1] {
			t.Errorf("factor %d (%g) below factor %d (%g): want non-decreasing", i, f[i], i-1, f[i-1])
		}
	}
}
