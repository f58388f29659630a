package engine

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"smolchat/internal/craft"
	"smolchat/model"
	"smolchat/model/quant"
)

// errNoTestBackend is what the backend factory of TestLoadRefusesCraftedFiles returns: a file that
// gets this far was accepted by the model and tokenizer checks.
var errNoTestBackend = errors.New("no backend in this test")

// TestLoadRefusesCraftedFiles loads tiny crafted files, each with one defect, and checks that loading
// fails with an error naming the tensor, key or value at fault (docs/RELIABILITY.md §3 lists the
// messages). The files marked ok use a feature in a way that changes nothing, and must load.
func TestLoadRefusesCraftedFiles(t *testing.T) {
	RegisterBackend("cpu", func(*model.Model, BackendOptions) (Backend, error) { return nil, errNoTestBackend })
	base := func() *craft.File { return craft.Model("llama", quant.F32) }
	gpt2 := func(pre string) *craft.File {
		f := base().Set("tokenizer.ggml.model", "gpt2").Set("tokenizer.ggml.merges", []string{"a b"})
		if pre != "" {
			f.Set("tokenizer.ggml.pre", pre)
		}
		return f
	}
	const r = "llama.rope."
	nan := float32(math.NaN())
	tests := []struct {
		name string
		file *craft.File
		want string // "" means the file loads
	}{
		{"good", base(), ""},
		{"pad id 0xFFFFFFFF (none)", base().Set("tokenizer.ggml.padding_token_id", uint32(0xFFFFFFFF)), ""},
		{"rope scaling type none", base().Set(r+"scaling.type", "none").Set(r+"scaling.factor", float32(8)), ""},
		{"rope scaling factor 1", base().Set(r+"scaling.type", "linear").Set(r+"scaling.factor", float32(1)).
			Set(r+"scaling.original_context_length", uint32(64)).Set(r+"scaling.attn_factor", float32(1)), ""},
		{"byte-level BPE, pre absent (default)", gpt2(""), ""},
		{"byte-level BPE, pre smaug-bpe", gpt2("smaug-bpe"), ""},

		// Llama 3's frequency factors are implemented; crafted data is zeros, which no divisor may be.
		{"rope_freqs.weight of zeros", base().AddTensor("rope_freqs.weight", quant.F32, 4), "tensor rope_freqs.weight holds 0 at 0, want finite divisors above 0"},
		{"rope_freqs.weight of the wrong length", base().AddTensor("rope_freqs.weight", quant.F32, 8), "tensor rope_freqs.weight has shape [8], want [4]"},
		{"rope_freqs.weight outside llama", craft.Model("smollm3", quant.F32).AddTensor("rope_freqs.weight", quant.F32, 4), "tensor rope_freqs.weight (Llama 3's RoPE frequency scaling) in a smollm3 model"},
		{"linear RoPE scaling", base().Set(r+"scaling.type", "linear").Set(r+"scaling.factor", float32(8)), ""},
		{"YaRN RoPE scaling", base().Set(r+"scaling.type", "yarn").Set(r+"scaling.factor", float32(4)).Set(r+"scaling.original_context_length", uint32(64)), ""},
		{"scaling factor without a type (linear)", base().Set(r+"scaling.factor", float32(2)), ""},
		{"old scale_linear key", base().Set(r+"scale_linear", float32(2)), ""},
		{"scaling attn_factor", base().Set(r+"scaling.attn_factor", float32(0.5)), ""},
		{"LongRoPE scaling", base().Set(r+"scaling.type", "longrope").Set(r+"scaling.factor", float32(4)), `llama.rope.scaling.type = "longrope": LongRoPE scaling is not supported`},
		{"scaling factor below 1", base().Set(r+"scaling.type", "linear").Set(r+"scaling.factor", float32(0.5)), "a RoPE scaling factor below 1 shrinks the context"},
		{"zero attn_factor", base().Set(r+"scaling.attn_factor", float32(0)), "llama.rope.scaling.attn_factor = 0, want a finite number above 0"},
		{"unknown scaling type", base().Set(r+"scaling.type", "llama3"), `llama.rope.scaling.type = "llama3" is not a RoPE scaling type`},
		{"YaRN key", base().Set(r+"scaling.yarn_beta_fast", float32(32)), "llama.rope.scaling.yarn_beta_fast = 32: smolchat runs YaRN with llama.cpp's defaults"},
		{"NaN scaling factor", base().Set(r+"scaling.factor", nan), "llama.rope.scaling.factor = NaN"},

		{"unknown pre-tokenizer", gpt2("deepseek-llm"), `pre-tokenizer "deepseek-llm" (tokenizer.ggml.pre) is not supported`},
		{"qwen2 pre-tokenizer", gpt2("qwen2"), ""},
		{"qwen3 with its QK-norm weights", craft.Model("qwen3", quant.F32).AddTensor("blk.0.attn_q_norm.weight", quant.F32, 8).
			AddTensor("blk.0.attn_k_norm.weight", quant.F32, 8), ""},
		{"qwen3 without QK-norm weights", craft.Model("qwen3", quant.F32), "tensor blk.0.attn_q_norm.weight is missing"},
		{"QK-norm weights in a llama file", base().AddTensor("blk.0.attn_q_norm.weight", quant.F32, 8), "tensor blk.0.attn_q_norm.weight is a QK-norm weight, which this architecture does not have"},

		{"attention bias", base().AddTensor("blk.0.attn_q.bias", quant.F32, craft.Dim), "tensor blk.0.attn_q.bias is a bias"},
		{"expert tensor", base().AddTensor("blk.0.ffn_gate_exps.weight", quant.F32, craft.Dim, craft.FF, 2), "tensor blk.0.ffn_gate_exps.weight is a mixture of experts"},
		{"unknown tensor", base().AddTensor("blk.0.attn_rot_embd.weight", quant.F32, 4), "tensor blk.0.attn_rot_embd.weight is not one smolchat uses"},
		{"tensor of a layer past block_count", base().AddTensor("blk.1.attn_norm.weight", quant.F32, craft.Dim), "tensor blk.1.attn_norm.weight is not one smolchat uses"},

		{"BOS id = vocab size", base().Set("tokenizer.ggml.bos_token_id", uint32(craft.Vocab)), "tokenizer.ggml.bos_token_id = 16 is not an id of the 16-token vocabulary"},
		{"negative EOS id", base().Set("tokenizer.ggml.eos_token_id", int32(-3)), "tokenizer.ggml.eos_token_id = -3 is not an id"},
		{"EOT id out of range", base().Set("tokenizer.ggml.eot_token_id", uint32(99)), "tokenizer.ggml.eot_token_id = 99"},
		{"pad id out of range", base().Set("tokenizer.ggml.padding_token_id", uint32(1000)), "tokenizer.ggml.padding_token_id = 1000"},
		{"more tokens than embedding rows", base().RemoveTensor("token_embd.weight").AddTensor("token_embd.weight", quant.F32, craft.Dim, 20), "tokenizer.ggml.tokens holds 16 tokens but token_embd.weight has 20 rows"},
		{"NaN norm epsilon", base().Set("llama.attention.layer_norm_rms_epsilon", nan), "llama.attention.layer_norm_rms_epsilon = NaN, want a finite number above 0"},
		{"infinite norm epsilon", base().Set("llama.attention.layer_norm_rms_epsilon", float32(math.Inf(1))), "llama.attention.layer_norm_rms_epsilon = +Inf"},
		{"zero norm epsilon", base().Set("llama.attention.layer_norm_rms_epsilon", float32(0)), "llama.attention.layer_norm_rms_epsilon = 0, want"},
		{"RoPE dimension above the head's", base().Set(r+"dimension_count", uint32(10)), "llama.rope.dimension_count = 10 must be even and at most the head dimension 8"},
		{"odd RoPE dimension", base().Set(r+"dimension_count", uint32(7)), "llama.rope.dimension_count = 7 must be even"},
		{"heads do not divide the width", base().Set("llama.attention.head_count", uint32(5)), "llama.embedding_length = 32 is not a multiple of llama.attention.head_count = 5"},
		{"KV heads do not divide heads", base().Set("llama.attention.head_count_kv", uint32(3)), "llama.attention.head_count = 4 is not a multiple of llama.attention.head_count_kv = 3"},
		{"zero KV heads", base().Set("llama.attention.head_count_kv", uint32(0)), "llama.attention.head_count_kv = 0, want a positive integer"},
		{"value width differs", base().Set("llama.attention.value_length", uint32(16)), "llama.attention.value_length = 16 differs from the key head width 8"},
		{"context length 0", base().Set("llama.context_length", uint32(0)), "llama.context_length = 0, want a positive integer"},
		{"context length missing", base().Delete("llama.context_length"), "llama.context_length is missing"},
		{"NaN RoPE base", base().Set(r+"freq_base", nan), "llama.rope.freq_base = NaN, want a finite number above 0"},
		{"negative RoPE base", base().Set(r+"freq_base", float32(-1)), "llama.rope.freq_base = -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.file.Write(t, "m.gguf")
			_, err := Load(context.Background(), LoadOptions{Path: path, Backend: "cpu"})
			if tc.want == "" {
				if !errors.Is(err, errNoTestBackend) {
					t.Fatalf("the file was refused: %v", err)
				}
				return
			}
			if err == nil || errors.Is(err, errNoTestBackend) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, tc.want)
			}
			t.Log(strings.ReplaceAll(err.Error(), path, "…/m.gguf"))
		})
	}
}
