package synth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"smolchat/model"
	"smolchat/model/chat"
	"smolchat/model/quant"
)

// tinyDir holds tinyFile's output, removed by TestMain; empty until a test asks for the file.
var tinyDir string

// tinyFile is the tiny preset written once (seed 7, built-in vocabulary, two workers) and shared by tests.
var tinyFile = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "synth-test")
	if err != nil {
		return "", err
	}
	tinyDir = dir
	path := filepath.Join(dir, "tiny.gguf")
	return path, writeFile(path, "smollm3-tiny", Options{Seed: 7, Workers: 2})
})

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyDir != "" {
		os.RemoveAll(tinyDir)
	}
	os.Exit(code)
}

func writeFile(path, preset string, opts Options) error {
	p, err := PresetByName(preset)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(context.Background(), f, p, opts); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func openTiny(t *testing.T) *model.Model {
	t.Helper()
	path, err := tinyFile()
	if err != nil {
		t.Fatalf("writing the tiny preset: %v", err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatalf("model.Open rejects the tiny preset: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestTinyOpensAsSmolLM3(t *testing.T) {
	m := openTiny(t)
	c := m.Config
	if c.Arch != "smollm3" || c.Dim != 256 || c.Layers != 4 || c.Heads != 4 || c.KVHeads != 1 || c.HeadDim != 64 ||
		c.FF != 768 || c.Vocab != 128256 || c.Context != 4096 || c.RopeDim != 64 {
		t.Errorf("config %+v", c)
	}
	if c.RopeBase != 5e6 || c.RMSEps != 1e-6 || !c.TiedOutput {
		t.Errorf("rope base %g, eps %g, tied %v; want 5e6, 1e-6, true", c.RopeBase, c.RMSEps, c.TiedOutput)
	}
	if !slices.Equal(c.NoRope, []bool{false, false, false, true}) {
		t.Errorf("NoRope %v, want layer 3 only", c.NoRope)
	}
	got := map[quant.Type]int{}
	for _, tc := range m.File.TypeCounts() {
		got[tc.Type] = tc.Count
	}
	want := map[quant.Type]int{quant.F32: 9, quant.Q4_K: 24, quant.Q6_K: 5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("type histogram %v, want %v", got, want)
	}
	for l, L := range m.Weights.Layers {
		more := quant.Q4_K
		if l >= 2 { // useMoreBits over 4 layers
			more = quant.Q6_K
		}
		if L.V.Type != more || L.Down.Type != more || L.Q.Type != quant.Q4_K || L.AttnNorm.Type != quant.F32 {
			t.Errorf("layer %d: v %s, down %s, q %s, norm %s", l, L.V.Type, L.Down.Type, L.Q.Type, L.AttnNorm.Type)
		}
	}
	if m.Weights.Embed.Type != quant.Q6_K {
		t.Errorf("token_embd is %s, want Q6_K", m.Weights.Embed.Type)
	}
}

func TestTinyMetadata(t *testing.T) {
	m := openTiny(t)
	f := m.File
	p, _ := PresetByName("smollm3-tiny")
	v, err := BuiltinVocab(p.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata(p, 7, v)
	if len(f.KVs) != len(want) {
		t.Errorf("%d metadata keys, want %d", len(f.KVs), len(want))
	}
	for i, kv := range f.KVs {
		if i < len(want) && (kv.Key != want[i].Key || kv.Type != want[i].Type) {
			t.Errorf("key %d: %s (%s), want %s (%s)", i, kv.Key, kv.Type, want[i].Key, want[i].Type)
		}
	}
	if _, ok := f.Get("tokenizer.ggml.add_bos_token"); ok {
		t.Error("file has tokenizer.ggml.add_bos_token; the real SmolLM3 file has none")
	}
	for key, w := range map[string]uint64{"general.file_type": 15, "general.quantization_version": 2,
		"tokenizer.ggml.bos_token_id": 128000, "tokenizer.ggml.eos_token_id": 128012, "tokenizer.ggml.padding_token_id": 128012} {
		if got, ok := f.Uint(key); !ok || got != w {
			t.Errorf("%s = %d (%v), want %d", key, got, ok, w)
		}
	}
	for key, w := range map[string]string{"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smaug-bpe",
		"general.architecture": "smollm3", "tokenizer.chat_template": ChatTemplate} {
		if got, _ := f.String(key); got != w {
			t.Errorf("%s = %q, want %q", key, got, w)
		}
	}
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	types, _ := f.Int32s("tokenizer.ggml.token_type")
	merges, _ := f.Strings("tokenizer.ggml.merges")
	if !slices.Equal(toks, v.Tokens) || !slices.Equal(types, v.Types) || !slices.Equal(merges, v.Merges) {
		t.Error("tokenizer arrays in the file differ from the built-in vocabulary")
	}
	desc, _ := f.String("general.description")
	if !strings.Contains(desc, "seed 7") || !strings.Contains(desc, "not a trained model") || !strings.Contains(desc, "quantized") {
		t.Errorf("description %q", desc)
	}
}

func TestChatTemplateIsRecognised(t *testing.T) {
	for _, marker := range []string{"<|im_start|>", "Reasoning Mode", "/no_think", "not Hugging Face's"} {
		if !strings.Contains(ChatTemplate, marker) {
			t.Errorf("template lacks %q", marker)
		}
	}
	// chat.ForModel must pick the SmolLM3 renderer from the template alone, whatever the architecture.
	if r := chat.ForModel("llama", ChatTemplate); fmt.Sprintf("%T", r) != fmt.Sprintf("%T", chat.SmolLM3{}) {
		t.Errorf("chat.ForModel picks %T for the stand-in template, want chat.SmolLM3", r)
	}
}

// rowStats dequantizes the given rows of a tensor and returns the mean and standard deviation.
func rowStats(t *testing.T, w model.Tensor, rows []int) (mean, std float64) {
	t.Helper()
	buf := make([]float32, w.Cols)
	var s, s2 float64
	for _, r := range rows {
		if err := quant.DequantizeRow(w.Type, w.Row(r), buf); err != nil {
			t.Fatalf("%s row %d: %v", w.Name, r, err)
		}
		for _, x := range buf {
			s += float64(x)
			s2 += float64(x) * float64(x)
		}
	}
	n := float64(len(rows) * w.Cols)
	mean = s / n
	return mean, math.Sqrt(s2/n - mean*mean)
}

// The tiny preset's weights, read back through dequantization, have the spreads the plan asks for.
func TestTinyWeightStatistics(t *testing.T) {
	m := openTiny(t)
	p, _ := PresetByName("smollm3-tiny")
	plan := map[string]TensorSpec{}
	for _, ts := range p.Tensors() {
		plan[ts.Name] = ts
	}
	all := func(n int) []int {
		r := make([]int, n)
		for i := range r {
			r[i] = i
		}
		return r
	}
	check := func(w model.Tensor, rows []int, wantStd float64) {
		t.Helper()
		mean, std := rowStats(t, w, rows)
		if math.Abs(std/wantStd-1) > 0.1 || math.Abs(mean) > 0.1*wantStd {
			t.Errorf("%s: mean %.4g std %.4g, want mean ≈0 and std ≈%.4g", w.Name, mean, std, wantStd)
		}
	}
	for _, L := range m.Weights.Layers {
		for _, w := range []model.Tensor{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down} {
			check(w, all(w.Rows), plan[w.Name].Std)
		}
		for _, w := range []model.Tensor{L.AttnNorm, L.FFNNorm} {
			// U(0.5, 1.5): mean 1, std 1/√12.
			mean, std := rowStats(t, w, []int{0})
			if math.Abs(mean-1) > 0.1 || math.Abs(std-1/math.Sqrt(12)) > 0.05 {
				t.Errorf("%s: mean %.3f std %.3f, want U(0.5,1.5)", w.Name, mean, std)
			}
		}
	}
	// Embeddings: ordinary tokens at full scale, reserved placeholders at 1/16.
	v, _ := BuiltinVocab(p.Vocab)
	var used, reserved []int
	for id := range v.Tokens {
		if v.Reserved(id) {
			if len(reserved) < 500 {
				reserved = append(reserved, id)
			}
		} else {
			used = append(used, id)
		}
	}
	e := m.Weights.Embed
	check(e, used, embedStd)
	check(e, reserved, embedStd*unusedEmbedScale)
}

// Same preset, seed and vocabulary give the same bytes however many goroutines do the work.
func TestDeterministic(t *testing.T) {
	path, err := tinyFile()
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("skipping the second write in -short mode")
	}
	p, _ := PresetByName("smollm3-tiny")
	h := sha256.New()
	if err := Write(context.Background(), h, p, Options{Seed: 7, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), sha256.Sum256(a); !bytes.Equal(got, want[:]) {
		t.Errorf("seed 7 with 1 worker: sha256 %x, with 2 workers %x", got, want)
	}
}

// A different seed gives different weights; the same seed the same ones, in both generation modes.
func TestSeedChangesWeights(t *testing.T) {
	ts := TensorSpec{Name: "w", Type: quant.Q4_K, Dims: []uint64{512, 64}, Std: 0.05, role: roleMatrix}
	gen := func(seed uint64, direct bool) []byte {
		b := make([]byte, ts.Bytes())
		if err := fillTensor(context.Background(), b, ts, 3, seed, direct, nil, 2); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, direct := range []bool{false, true} {
		if !bytes.Equal(gen(1, direct), gen(1, direct)) {
			t.Errorf("direct=%v: seed 1 twice gives different bytes", direct)
		}
		if bytes.Equal(gen(1, direct), gen(2, direct)) {
			t.Errorf("direct=%v: seeds 1 and 2 give the same bytes", direct)
		}
	}
}

// Directly generated blocks decode to values of the requested spread, centred on zero.
func TestDirectBlocks(t *testing.T) {
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K} {
		for _, std := range []float64{0.003, 0.05, 1} {
			ts := TensorSpec{Name: typ.String(), Type: typ, Dims: []uint64{2048, 64}, Std: std, role: roleMatrix}
			b := make([]byte, ts.Bytes())
			if err := fillTensor(context.Background(), b, ts, 0, 42, true, nil, 2); err != nil {
				t.Fatal(err)
			}
			w := model.Tensor{Name: ts.Name, Type: typ, Rows: 64, Cols: 2048, Data: b}
			rows := make([]int, 64)
			for i := range rows {
				rows[i] = i
			}
			mean, got := rowStats(t, w, rows)
			if math.Abs(got/std-1) > 0.05 || math.Abs(mean) > 0.05*std {
				t.Errorf("%s std %g: decoded mean %.4g std %.4g", typ, std, mean, got)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	p, _ := PresetByName("smollm3-tiny")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, io.Discard, p, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v", err)
	}
	small := &Vocab{Tokens: make([]string, 100), Types: make([]int32, 100)}
	if err := Write(context.Background(), io.Discard, p, Options{Vocab: small}); err == nil || !strings.Contains(err.Error(), "needs 128256") {
		t.Errorf("100-token vocabulary: err = %v", err)
	}
	if err := Write(context.Background(), failingWriter{}, p, Options{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: err = %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// The 3B preset's metadata has the real file's keys and values (spec §2.2).
func TestMetadata3B(t *testing.T) {
	p, _ := PresetByName("smollm3-3b")
	v, err := BuiltinVocab(p.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, kv := range Metadata(p, 1, v) {
		got[kv.Key] = kv.Value
	}
	for key, want := range map[string]any{
		"general.architecture":                     "smollm3",
		"smollm3.block_count":                      uint32(36),
		"smollm3.context_length":                   uint32(65536),
		"smollm3.embedding_length":                 uint32(2048),
		"smollm3.feed_forward_length":              uint32(11008),
		"smollm3.attention.head_count":             uint32(16),
		"smollm3.attention.head_count_kv":          uint32(4),
		"smollm3.rope.freq_base":                   float32(5e6),
		"smollm3.rope.dimension_count":             uint32(128),
		"smollm3.attention.layer_norm_rms_epsilon": float32(1e-6),
		"smollm3.vocab_size":                       uint32(128256),
		"general.file_type":                        uint32(15),
		"general.quantization_version":             uint32(2),
		"tokenizer.ggml.model":                     "gpt2",
		"tokenizer.ggml.pre":                       "smaug-bpe",
		"tokenizer.ggml.bos_token_id":              uint32(128000),
		"tokenizer.ggml.eos_token_id":              uint32(128012),
		"tokenizer.ggml.padding_token_id":          uint32(128012),
	} {
		if got[key] != want {
			t.Errorf("%s = %v (%T), want %v (%T)", key, got[key], got[key], want, want)
		}
	}
	if d, _ := got["general.description"].(string); !strings.Contains(d, "generated directly as random valid blocks") {
		t.Errorf("3B description does not say its blocks are generated directly: %q", d)
	}
	for _, absent := range []string{"tokenizer.ggml.add_bos_token", "smollm3.attention.key_length"} {
		if _, ok := got[absent]; ok {
			t.Errorf("metadata has %s, which the real file lacks", absent)
		}
	}
}
