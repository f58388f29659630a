package synth

import (
	"slices"
	"strings"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
)

func TestPretokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"it's 12345 cats", []string{"it", "'s", " ", "123", "45", " cats"}},
		{"a  b", []string{"a", " ", " b"}}, // a space run leaves its last space to the word
		{"end.\n\nNext", []string{"end", ".\n\n", "Next"}},
		{"x\n  y", []string{"x", "\n", " ", " y"}},
		{"trailing  ", []string{"trailing", "  "}},
		{"naïve café", []string{"naïve", " café"}},
	}
	for _, tt := range tests {
		if got := pretokenize(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("pretokenize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestByteTokens(t *testing.T) {
	toks := byteTokens()
	if len(toks) != 256 || toks[0] != "!" {
		t.Fatalf("%d byte tokens starting %q, want 256 starting \"!\"", len(toks), toks[0])
	}
	seen := map[string]bool{}
	for _, tok := range toks {
		if seen[tok] || strings.ContainsAny(tok, " \t\n") {
			t.Errorf("byte token %q repeated or blank", tok)
		}
		seen[tok] = true
	}
	// GPT-2's mapping: space → Ġ (U+0120), newline → Ċ (U+010A), as in Llama-3's vocabulary.
	if got := strings.Join(encodeBytes(" \n"), ""); got != "ĠĊ" {
		t.Errorf("encodeBytes(\" \\n\") = %q, want \"ĠĊ\"", got)
	}
}

// checkVocab checks what every synthesized vocabulary must satisfy: the size, SmolLM3's specials at
// their ids with their types, unique token texts, and merges whose parts and result are all tokens.
func checkVocab(t *testing.T, v *Vocab, size int) {
	t.Helper()
	if len(v.Tokens) != size || len(v.Types) != size {
		t.Fatalf("%d tokens, %d types, want %d", len(v.Tokens), len(v.Types), size)
	}
	wantSpecial := map[int]struct {
		text string
		typ  int32
	}{
		128000: {"<|begin_of_text|>", 3}, 128001: {"<|end_of_text|>", 3}, 128002: {"<think>", 4},
		128003: {"</think>", 4}, 128004: {"<|finetune_right_pad_id|>", 3}, 128008: {"<|eom_id|>", 3},
		128009: {"<|eot_id|>", 3}, 128011: {"<|im_start|>", 3}, 128012: {"<|im_end|>", 3},
		128013: {"<tool_response>", 4}, 128014: {"</tool_response>", 4}, 128015: {"<tool_call>", 4},
		128016: {"</tool_call>", 4},
	}
	for id, w := range wantSpecial {
		if v.Tokens[id] != w.text || v.Types[id] != w.typ {
			t.Errorf("token %d = %q type %d, want %q type %d", id, v.Tokens[id], v.Types[id], w.text, w.typ)
		}
	}
	index := map[string]int{}
	for id, tok := range v.Tokens {
		if tok == "" {
			t.Errorf("token %d is empty", id)
		}
		if prev, dup := index[tok]; dup {
			t.Errorf("token %q at ids %d and %d", tok, prev, id)
		}
		index[tok] = id
	}
	for i, m := range v.Merges {
		a, b, ok := strings.Cut(m, " ")
		_, okA := index[a]
		_, okB := index[b]
		_, okAB := index[a+b]
		if !ok || !okA || !okB || !okAB {
			t.Errorf("merge %d %q: parts or result not in the vocabulary", i, m)
		}
	}
}

func TestBuiltinVocab(t *testing.T) {
	v, err := BuiltinVocab(128256)
	if err != nil {
		t.Fatal(err)
	}
	checkVocab(t, v, 128256)
	if len(v.Merges) < 300 {
		t.Errorf("only %d merges learned from the corpus", len(v.Merges))
	}
	index := map[string]int{}
	for id, tok := range v.Tokens {
		index[tok] = id
	}
	// Words frequent in the corpus become single tokens, with their leading space in GPT-2 form.
	for _, w := range []string{"Ġthe", "Ġand", "Ġof", "ing"} {
		if _, ok := index[w]; !ok {
			t.Errorf("no token %q learned", w)
		}
	}
	var normal, reserved int
	for id := range v.Tokens {
		switch {
		case v.Reserved(id):
			reserved++
		case v.Types[id] == TokenNormal:
			normal++
			if id >= 128000 {
				t.Errorf("normal token %q at id %d, among the specials", v.Tokens[id], id)
			}
		}
	}
	if normal <= 256 || normal > 256+len(v.Merges) {
		t.Errorf("%d normal tokens from %d merges", normal, len(v.Merges))
	}
	if normal+reserved+len(specials) != 128256 {
		t.Errorf("%d normal + %d reserved + %d special tokens, want 128256", normal, reserved, len(specials))
	}
	// The trainer is deterministic: a second build gives the same vocabulary.
	v2, _ := BuiltinVocab(128256)
	if !slices.Equal(v.Tokens, v2.Tokens) || !slices.Equal(v.Merges, v2.Merges) {
		t.Error("two builds of the built-in vocabulary differ")
	}
	if _, err := BuiltinVocab(1000); err == nil {
		t.Error("BuiltinVocab(1000) succeeded; it cannot hold ids up to 128016")
	}
}

func TestVocabFromLlama3(t *testing.T) {
	path := testutil.SharedFile(t, "ggml-vocab-llama-bpe.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f, 128256)
	if err != nil {
		t.Fatal(err)
	}
	checkVocab(t, v, 128256)
	if len(v.Merges) != 280147 {
		t.Errorf("%d merges, want Llama-3's 280147", len(v.Merges))
	}
	// Ordinary tokens are untouched (spec §3: "\n" = 198, "user" = 882), and so are Llama-3's own
	// specials at ids SmolLM3 does not redefine.
	for id, want := range map[int]string{0: "!", 198: "Ċ", 882: "user", 128006: "<|start_header_id|>", 128255: "<|reserved_special_token_250|>"} {
		if v.Tokens[id] != want {
			t.Errorf("token %d = %q, want %q", id, v.Tokens[id], want)
		}
	}
	if !strings.Contains(v.Source, "ggml-vocab-llama-bpe.gguf") || strings.Contains(v.Source, "/") {
		t.Errorf("source %q should name the file without its directory", v.Source)
	}
	// The copy is independent of the file's arrays.
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	if toks[128011] == "<|im_start|>" {
		t.Error("VocabFromGGUF modified the source file's token array")
	}
	if _, err := VocabFromGGUF(f, 32000); err == nil || !strings.Contains(err.Error(), "want 32000") {
		t.Errorf("wrong size: err = %v", err)
	}
}

func TestVocabFromSentencePieceRejected(t *testing.T) {
	f, err := gguf.Open(testutil.SharedFile(t, "ggml-vocab-llama-spm.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := VocabFromGGUF(f, 128256); err == nil || !strings.Contains(err.Error(), `"gpt2"`) {
		t.Errorf("SentencePiece vocabulary: err = %v, want a tokenizer-model error", err)
	}
}

func TestPlaceSpecialsRejectsDuplicates(t *testing.T) {
	v, err := BuiltinVocab(128256)
	if err != nil {
		t.Fatal(err)
	}
	v.Tokens[500] = "<|im_end|>"
	if err := v.placeSpecials(); err == nil || !strings.Contains(err.Error(), "id 500") {
		t.Errorf("duplicate <|im_end|>: err = %v", err)
	}
}
