package tokenizer

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"smolchat/model/gguf"
)

func boolPtr(b bool) *bool { return &b }

func TestAddsBOS(t *testing.T) {
	tests := []struct {
		model, pre string
		add        *bool
		want       bool
	}{
		{"gpt2", "llama-bpe", nil, true},
		{"gpt2", "llama3", nil, true},
		{"gpt2", "smaug-bpe", nil, false}, // SmolLM3: no BOS unless the file says so
		{"gpt2", "default", nil, false},
		{"gpt2", "smaug-bpe", boolPtr(true), true},
		{"gpt2", "llama-bpe", boolPtr(false), false},
		{"llama", "default", nil, true},
		{"llama", "", boolPtr(false), false},
	}
	for _, tt := range tests {
		var v Vocab
		if tt.model == "gpt2" {
			v = testBPEVocab(tt.pre, nil, nil)
		} else {
			v = testSPMVocab()
			v.Pre = tt.pre
		}
		v.AddBOS = tt.add
		tok := mustNew(t, v)
		if got := tok.AddsBOS(); got != tt.want {
			t.Errorf("%s/%s add_bos %v: AddsBOS() = %v, want %v", tt.model, tt.pre, tt.add, got, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(v *Vocab)
		errHas string
	}{
		{"no tokens", func(v *Vocab) { v.Tokens, v.Types = nil, nil }, "no tokens"},
		{"unknown model", func(v *Vocab) { v.Model = "bert" }, `unsupported tokenizer model "bert"`},
		{"short types", func(v *Vocab) { v.Types = v.Types[:3] }, "3 token types"},
		{"short scores", func(v *Vocab) { v.Scores = []float32{1} }, "1 scores"},
		{"BOS out of range", func(v *Vocab) { v.BOS = 1 << 20 }, "BOS id 1048576"},
		{"EOS below -1", func(v *Vocab) { v.EOS = -7 }, "EOS id -7"},
		{"adds BOS without one", func(v *Vocab) { v.BOS = -1 }, "no BOS id"},
		{"adds EOS without one", func(v *Vocab) { v.AddEOS = boolPtr(true) }, "no EOS id"},
		{"merge without separator", func(v *Vocab) { v.Merges = []string{"ab"} }, `merge 0 ("ab")`},
		{"unknown pre-tokenizer", func(v *Vocab) { v.Pre = "tekken" }, `pre-tokenizer "tekken" (tokenizer.ggml.pre) is not supported`},
	}
	for _, tt := range tests {
		v := testBPEVocab("llama-bpe", []string{"a b"}, nil)
		tt.edit(&v)
		_, err := New(v)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: New error = %v, want one containing %q", tt.name, err, tt.errHas)
		}
	}
}

// writeGGUF builds an in-memory GGUF file with the given metadata and parses it back.
func writeGGUF(t *testing.T, kvs [][2]any) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	for _, kv := range kvs {
		w.AddKV(kv[0].(string), kv[1])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes(), "test.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFromGGUF(t *testing.T) {
	v := testSPMVocab()
	base := [][2]any{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", v.Tokens},
		{"tokenizer.ggml.scores", v.Scores},
		{"tokenizer.ggml.token_type", v.Types},
		{"tokenizer.ggml.padding_token_id", uint32(0xFFFFFFFF)}, // "none", as stories260K stores it
		{"tokenizer.ggml.eos_token_id", uint32(2)},
	}
	tok, err := FromGGUF(writeGGUF(t, base))
	if err != nil {
		t.Fatalf("FromGGUF: %v", err)
	}
	// No BOS/UNK keys: the LLaMA defaults 1 and 0 apply. PAD 0xFFFFFFFF means none.
	if tok.BOS() != 1 || tok.EOS() != 2 || tok.PAD() != -1 || !tok.AddsBOS() {
		t.Errorf("BOS %d EOS %d PAD %d AddsBOS %v, want 1 2 -1 true", tok.BOS(), tok.EOS(), tok.PAD(), tok.AddsBOS())
	}
	if got, want := tok.Encode("hello", EncodeOptions{AddBOS: true}), ids(tok, "<s>", "▁hello"); !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}

	withBool := append(slices.Clone(base), [2]any{"tokenizer.ggml.add_bos_token", false})
	if tok, err := FromGGUF(writeGGUF(t, withBool)); err != nil || tok.AddsBOS() {
		t.Errorf("add_bos_token=false: AddsBOS %v, err %v", tok != nil && tok.AddsBOS(), err)
	}

	bad := []struct {
		name   string
		kvs    [][2]any
		errHas string
	}{
		{"no model", base[1:], "tokenizer.ggml.model is missing"},
		{"tokens not strings", [][2]any{base[0], {"tokenizer.ggml.tokens", []int32{1, 2}}}, "tokenizer.ggml.tokens is array of int32, want an array of strings"},
		{"scores mistyped", append(slices.Clone(base[:2]), [2]any{"tokenizer.ggml.scores", "x"}), "tokenizer.ggml.scores"},
		{"bos mistyped", append(slices.Clone(base), [2]any{"tokenizer.ggml.bos_token_id", "one"}), "bos_token_id"},
		{"add_bos mistyped", append(slices.Clone(base), [2]any{"tokenizer.ggml.add_bos_token", uint8(1)}), "add_bos_token"},
		{"gpt2 without merges", [][2]any{{"tokenizer.ggml.model", "gpt2"}, base[1]}, "tokenizer.ggml.merges is missing"},
		{"unknown model", [][2]any{{"tokenizer.ggml.model", "t5"}, base[1]}, `unsupported tokenizer model "t5"`},
		{"BOS id out of range", append(slices.Clone(base), [2]any{"tokenizer.ggml.bos_token_id", uint32(len(v.Tokens))}), "bos_token_id = 280 is not an id"},
		{"negative EOS id", append(slices.Clone(base[:4]), [2]any{"tokenizer.ggml.eos_token_id", int32(-1)}), "eos_token_id = -1 is not an id"},
	}
	for _, tt := range bad {
		_, err := FromGGUF(writeGGUF(t, tt.kvs))
		if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "test.gguf") {
			t.Errorf("%s: error = %v, want one naming test.gguf and containing %q", tt.name, err, tt.errHas)
		}
	}
}
