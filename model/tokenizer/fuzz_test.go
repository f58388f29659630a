package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"smolchat/internal/testutil"
)

// fuzzTokenizers are the small built-in vocabularies, plus the shared Llama 3 and LLaMA 2 vocabularies
// when ../shared/testdata is present.
func fuzzTokenizers(f *testing.F) []*Tokenizer {
	toks := []*Tokenizer{
		mustNew(f, testBPEVocab("llama-bpe", []string{"h e", "l l", "he ll", "Ġ w", "o r", "Ġw or"}, map[string]TokenType{
			"<|start|>": TypeControl, "<think>": TypeUserDefined, "<|im_end|>": TypeUserDefined,
		})),
		mustNew(f, testBPEVocab("gpt-2", []string{"a b", "Ġ t"}, nil)),
		mustNew(f, testSPMVocab()),
	}
	for _, name := range []string{"ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf"} {
		if _, err := os.Stat(filepath.Join(testutil.SharedDir(), name)); err == nil {
			toks = append(toks, sharedTokenizer(f, name))
		}
	}
	return toks
}

// FuzzEncode checks that encoding never panics, yields ids in range, and that valid UTF-8 round-trips
// through Decode wherever the vocabulary can represent it.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"Hello world", "", " ", "  leading", "don't stop 12345", "👋🏽 émoji", "\xff\xfe"} {
		f.Add(s)
	}
	toks := fuzzTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range toks {
			for _, opt := range []EncodeOptions{{}, {AddBOS: true, ParseSpecial: true}} {
				got := tok.Encode(s, opt)
				for _, id := range got {
					if id < 0 || int(id) >= tok.VocabSize() {
						t.Fatalf("%s/%s: Encode(%q) gave id %d outside the vocabulary", tok.Model(), tok.Pre(), s, id)
					}
				}
				d := tok.NewStreamDecoderWith(DecodeOptions{Special: true})
				var streamed strings.Builder
				for _, id := range got {
					streamed.WriteString(d.Add(id))
				}
				streamed.WriteString(d.Flush())
				if !utf8.ValidString(streamed.String()) {
					t.Fatalf("%s/%s: stream decoder gave invalid UTF-8 for %q", tok.Model(), tok.Pre(), s)
				}
			}
			if !utf8.ValidString(s) || !roundTrips(tok, s) {
				continue
			}
			if dec := tok.Decode(tok.Encode(s, EncodeOptions{})); dec != s {
				t.Fatalf("%s/%s: Decode(Encode(%q)) = %q", tok.Model(), tok.Pre(), s, dec)
			}
		}
	})
}

// roundTrips reports whether Decode(Encode(s)) must give s back. It does not for SentencePiece text that
// contains a user-defined token: as in llama.cpp, the text after such a token gets a space prefix.
func roundTrips(tok *Tokenizer, s string) bool {
	if tok.kind != kindSPM {
		return true
	}
	for _, id := range tok.specials {
		if tok.types[id] == TypeUserDefined && strings.Contains(s, tok.tokens[id]) {
			return false
		}
	}
	return true
}
