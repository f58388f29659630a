package synth

import (
	"fmt"
	"strings"

	"smolchat/model/gguf"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TokenNormal      int32 = 1
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
)

// SmolLM3's special token ids (spec §3). BOS is 128000; EOS and padding are both <|im_end|>, as in the
// released GGUF.
const (
	BOSID = 128000
	EOSID = 128012
	PadID = 128012
)

// special is a token SmolLM3 places at a fixed id.
type special struct {
	ID   int
	Text string
	Type int32
}

// specials are SmolLM3's added tokens at SmolLM3's ids: the <|...|> ones are CONTROL, while <think>,
// </think> and the tool tags are USER_DEFINED (plain text the model reads and writes), as in the real file.
var specials = []special{
	{128000, "<|begin_of_text|>", TokenControl},
	{128001, "<|end_of_text|>", TokenControl},
	{128002, "<think>", TokenUserDefined},
	{128003, "</think>", TokenUserDefined},
	{128004, "<|finetune_right_pad_id|>", TokenControl},
	{128008, "<|eom_id|>", TokenControl},
	{128009, "<|eot_id|>", TokenControl},
	{128011, "<|im_start|>", TokenControl},
	{128012, "<|im_end|>", TokenControl},
	{128013, "<tool_response>", TokenUserDefined},
	{128014, "</tool_response>", TokenUserDefined},
	{128015, "<tool_call>", TokenUserDefined},
	{128016, "</tool_call>", TokenUserDefined},
}

// maxSpecialID is the highest id in specials: a vocabulary must be larger than this.
const maxSpecialID = 128016

// Vocab is a byte-level BPE vocabulary as GGUF stores it (tokenizer.ggml.model = "gpt2"): token texts in
// GPT-2's byte-to-unicode form, their types, and the merges ("A B", rank = index).
type Vocab struct {
	Tokens []string
	Types  []int32
	Merges []string
	// Source says where the tokens came from, for general.description.
	Source string
}

// reservedPrefix starts the text of the placeholder tokens that fill unused ids (Llama-3 has the same).
const reservedPrefix = "<|reserved_special_token_"

// Reserved reports whether id is an unused placeholder: a CONTROL token named <|reserved_special_token_N|>.
func (v *Vocab) Reserved(id int) bool {
	return v.Types[id] == TokenControl && strings.HasPrefix(v.Tokens[id], reservedPrefix)
}

// placeSpecials writes SmolLM3's special tokens at their ids and checks that no other id holds one of
// their texts, since a tokenizer looks specials up by text.
func (v *Vocab) placeSpecials() error {
	if len(v.Tokens) <= maxSpecialID {
		return fmt.Errorf("synth: vocabulary of %d tokens cannot hold SmolLM3's special ids up to %d", len(v.Tokens), maxSpecialID)
	}
	want := map[string]int{}
	for _, s := range specials {
		v.Tokens[s.ID] = s.Text
		v.Types[s.ID] = s.Type
		want[s.Text] = s.ID
	}
	for id, t := range v.Tokens {
		if sid, ok := want[t]; ok && sid != id {
			return fmt.Errorf("synth: vocabulary holds special token %q at id %d as well as at SmolLM3's id %d", t, id, sid)
		}
	}
	return nil
}

// VocabFromGGUF copies the byte-level BPE vocabulary of f (tokens, types, merges) and places SmolLM3's
// special tokens at their ids. The vocabulary must have exactly size tokens: the model's embedding has
// one row per token. Llama-3's vocabulary (which SmolLM3's derives from) has 128256.
func VocabFromGGUF(f *gguf.File, size int) (*Vocab, error) {
	if m, _ := f.String("tokenizer.ggml.model"); m != "gpt2" {
		return nil, fmt.Errorf("synth: %s: tokenizer.ggml.model is %q, want \"gpt2\" (a byte-level BPE vocabulary like Llama-3's)", f.Path, m)
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok {
		return nil, fmt.Errorf("synth: %s: no tokenizer.ggml.tokens string array", f.Path)
	}
	types, ok := f.Int32s("tokenizer.ggml.token_type")
	if !ok {
		return nil, fmt.Errorf("synth: %s: no tokenizer.ggml.token_type int32 array", f.Path)
	}
	merges, ok := f.Strings("tokenizer.ggml.merges")
	if !ok {
		return nil, fmt.Errorf("synth: %s: no tokenizer.ggml.merges string array", f.Path)
	}
	if len(toks) != size || len(types) != size {
		return nil, fmt.Errorf("synth: %s: %d tokens and %d token types, want %d of each", f.Path, len(toks), len(types), size)
	}
	v := &Vocab{
		Tokens: append([]string(nil), toks...),
		Types:  append([]int32(nil), types...),
		Merges: append([]string(nil), merges...),
		Source: "tokens and merges copied from " + baseName(f.Path),
	}
	if err := v.placeSpecials(); err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, f.Path)
	}
	return v, nil
}

// baseName is the last element of a slash- or backslash-separated path, so a description written on any
// system does not record the directory it was made in.
func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' || p[i] == '\\' {
			return p[i+1:]
		}
	}
	return p
}

// BuiltinVocab is smolchat's own byte-level BPE vocabulary of size tokens: the 256 byte tokens, the merges
// a small BPE trainer learns from corpus.txt (English prose shipped with this package), SmolLM3's special
// tokens at their ids, and every other id an unused <|reserved_special_token_N|> CONTROL token. It needs no
// file, so synthesis works anywhere; the model's text is gibberish either way.
func BuiltinVocab(size int) (*Vocab, error) {
	if size <= maxSpecialID {
		return nil, fmt.Errorf("synth: vocabulary of %d tokens cannot hold SmolLM3's special ids up to %d", size, maxSpecialID)
	}
	bytes := byteTokens()
	// Learned tokens take the ids after the bytes and must stay below the first special id.
	merges, learned := trainBPE(corpus, specials[0].ID-len(bytes))
	v := &Vocab{
		Tokens: make([]string, size),
		Types:  make([]int32, size),
		Merges: merges,
		Source: fmt.Sprintf("smolchat's own byte-level BPE vocabulary (%d merges learned from its built-in corpus)", len(merges)),
	}
	n := copy(v.Tokens, bytes)
	n += copy(v.Tokens[n:], learned)
	for i := range n {
		v.Types[i] = TokenNormal
	}
	if err := v.placeSpecials(); err != nil {
		return nil, err
	}
	reserved := 0
	for i := n; i < size; i++ {
		if v.Tokens[i] == "" {
			v.Tokens[i] = fmt.Sprintf("%s%d|>", reservedPrefix, reserved)
			v.Types[i] = TokenControl
			reserved++
		}
	}
	return v, nil
}
