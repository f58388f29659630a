package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smolchat/internal/testutil"
)

// Small hand-made vocabularies, so that these tests need no fixtures.

// testBPEVocab is a byte-level vocabulary: the 256 byte characters (ids 0–255, in byte order), the results
// of merges, and the given special tokens after them.
func testBPEVocab(pre string, merges []string, specials map[string]TokenType) Vocab {
	v := Vocab{Model: "gpt2", Pre: pre, Merges: merges, BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1}
	seen := map[string]bool{}
	add := func(s string, typ TokenType) {
		if !seen[s] {
			seen[s] = true
			v.Tokens = append(v.Tokens, s)
			v.Types = append(v.Types, int32(typ))
		}
	}
	for b := 0; b < 256; b++ {
		add(byteChar[b], TypeNormal)
	}
	for _, m := range merges {
		add(strings.Replace(m, " ", "", 1), TypeNormal)
	}
	// Llama 3 style pre-tokenizers add BOS, so the vocabulary needs one.
	v.BOS = int32(len(v.Tokens))
	add("<|begin_of_text|>", TypeControl)
	names := make([]string, 0, len(specials))
	for s := range specials {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		add(s, specials[s])
	}
	return v
}

func mustNew(t testing.TB, v Vocab) *Tokenizer {
	t.Helper()
	tok, err := New(v)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tok
}

func ids(tok *Tokenizer, texts ...string) []int32 {
	out := make([]int32, len(texts))
	for i, s := range texts {
		id, ok := tok.TokenID(s)
		if !ok {
			panic(fmt.Sprintf("test vocabulary has no token %q", s))
		}
		out[i] = id
	}
	return out
}

func TestBPEMergeOrder(t *testing.T) {
	tests := []struct {
		merges []string
		text   string
		want   []string // token texts
	}{
		{[]string{"b c", "a b"}, "abc", []string{"a", "bc"}},         // the best rank wins, not the leftmost pair
		{[]string{"a b", "b c"}, "abc", []string{"ab", "c"}},         //
		{[]string{"a a"}, "aaaaa", []string{"aa", "aa", "a"}},        // ties go left to right
		{[]string{"a a", "aa aa"}, "aaaaaa", []string{"aaaa", "aa"}}, //
		{[]string{"h e", "l l", "he ll", "hell o"}, "hello", []string{"hello"}},
		{[]string{"Ġ w", "o r", "Ġw or"}, "a wor", []string{"a", "Ġwor"}}, // byte-level space
		{nil, "hi!", []string{"h", "i", "!"}},
	}
	for _, tt := range tests {
		tok := mustNew(t, testBPEVocab("llama-bpe", tt.merges, nil))
		got := tok.Encode(tt.text, EncodeOptions{})
		if want := ids(tok, tt.want...); !slices.Equal(got, want) {
			t.Errorf("merges %q: Encode(%q) = %v, want %v %q", tt.merges, tt.text, got, want, tt.want)
		}
		if dec := tok.Decode(got); dec != tt.text {
			t.Errorf("merges %q: Decode(Encode(%q)) = %q", tt.merges, tt.text, dec)
		}
	}
}

// naiveBPE merges the best-ranked adjacent pair, leftmost first, until none is left: the definition of
// BPE, in O(n²).
func naiveBPE(word string, ranks map[[2]string]int) []string {
	var syms []string
	for i := 0; i < len(word); i++ {
		syms = append(syms, byteChar[word[i]])
	}
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			return syms
		}
		syms = slices.Replace(syms, at, at+2, syms[at]+syms[at+1])
	}
}

// The heap-based merge loop agrees with the naive definition on random words and random merge tables.
func TestBPEMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		// Random merges over a 3-letter alphabet, built bottom-up so every part is a symbol that can occur.
		symbols := []string{"a", "b", "c"}
		var merges []string
		ranks := map[[2]string]int{}
		for len(merges) < 40 {
			l, r := symbols[rng.IntN(len(symbols))], symbols[rng.IntN(len(symbols))]
			if _, dup := ranks[[2]string{l, r}]; dup || len(l)+len(r) > 12 {
				continue
			}
			ranks[[2]string{l, r}] = len(merges)
			merges = append(merges, l+" "+r)
			if !slices.Contains(symbols, l+r) {
				symbols = append(symbols, l+r)
			}
		}
		tok := mustNew(t, testBPEVocab("default", merges, nil))
		for w := 0; w < 50; w++ {
			word := make([]byte, 1+rng.IntN(200))
			for i := range word {
				word[i] = "abc"[rng.IntN(3)]
			}
			want := ids(tok, naiveBPE(string(word), ranks)...)
			ws := &bpeWork{}
			if got := tok.bpe.mergeWord(string(word), nil, ws); !slices.Equal(got, want) {
				t.Fatalf("round %d: word %q: got %v, want %v", round, word, got, want)
			}
		}
	}
}

// A word that is itself a token is taken whole by llama-bpe (ignore_merges) but merged by smaug-bpe.
func TestBPEIgnoreMerges(t *testing.T) {
	v := testBPEVocab("llama-bpe", []string{"a b", "b c"}, nil)
	v.Tokens = append(v.Tokens, "abc")
	v.Types = append(v.Types, int32(TypeNormal))
	for _, tt := range []struct {
		pre  string
		want []string
	}{{"llama-bpe", []string{"abc"}}, {"smaug-bpe", []string{"ab", "c"}}} {
		v.Pre = tt.pre
		tok := mustNew(t, v)
		if got, want := tok.Encode("abc", EncodeOptions{}), ids(tok, tt.want...); !slices.Equal(got, want) {
			t.Errorf("%s: Encode(abc) = %v, want %v", tt.pre, got, want)
		}
	}
}

func TestBPELongWordAndCache(t *testing.T) {
	tok := mustNew(t, testBPEVocab("llama-bpe", []string{"a a", "aa aa", "aaaa aaaa"}, nil))
	word := strings.Repeat("a", 100000) // far beyond any cache, must not be quadratic
	got := tok.Encode(word, EncodeOptions{})
	if len(got) != 100000/8 {
		t.Fatalf("Encode(a×100000) gave %d tokens, want %d", len(got), 100000/8)
	}
	// Repeated words come from the cache and must give the same ids.
	text := strings.Repeat("aaaa aaaaaaaa ", 10)
	first := tok.Encode(text, EncodeOptions{})
	if second := tok.Encode(text, EncodeOptions{}); !slices.Equal(first, second) {
		t.Fatalf("cached encoding differs: %v vs %v", first, second)
	}
	if dec := tok.Decode(first); dec != text {
		t.Fatalf("Decode = %q, want %q", dec, text)
	}
}

// testSPMVocab is a small SentencePiece vocabulary with byte fallback.
func testSPMVocab() Vocab {
	v := Vocab{Model: "llama", Pre: "default", BOS: 1, EOS: 2, UNK: 0, EOT: -1, EOM: -1, PAD: -1}
	add := func(s string, score float32, typ TokenType) {
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, int32(typ))
	}
	add("<unk>", 0, TypeUnknown)
	add("<s>", 0, TypeControl)
	add("</s>", 0, TypeControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, TypeByte)
	}
	for i, s := range []string{"▁", "e", "h", "l", "o", "w", "r", "d", "▁h", "he", "ll", "▁he", "llo", "▁hello", "▁w", "or", "▁wor", "▁world", "ld", "é", "<think>"} {
		typ := TypeNormal
		if s == "<think>" {
			typ = TypeUserDefined
		}
		add(s, -float32(i), typ)
	}
	return v
}

func TestSPMEncode(t *testing.T) {
	tok := mustNew(t, testSPMVocab())
	tests := []struct {
		text string
		opt  EncodeOptions
		want []string
	}{
		{"hello world", EncodeOptions{}, []string{"▁hello", "▁world"}},
		{"hello world", EncodeOptions{AddBOS: true}, []string{"<s>", "▁hello", "▁world"}},
		{"held", EncodeOptions{}, []string{"▁he", "ld"}},
		{"", EncodeOptions{}, nil},
		{"", EncodeOptions{AddBOS: true}, []string{"<s>"}},
		{" hello", EncodeOptions{}, []string{"▁", "▁hello"}},
		{"hé!", EncodeOptions{}, []string{"▁h", "é", "<0x21>"}},   // '!' is not a token: byte fallback
		{"hi", EncodeOptions{}, []string{"▁h", "<0x69>"}},         //
		{"ŝ", EncodeOptions{}, []string{"▁", "<0xC5>", "<0x9D>"}}, // a character spelled in bytes
		// A special token splits the text, and the text after it gets a space prefix again.
		{"hello<think>world", EncodeOptions{}, []string{"▁hello", "<think>", "▁world"}},
		{"hello</s>", EncodeOptions{}, []string{"▁hello", "<0x3C>", "<0x2F>", "<0x73>", "<0x3E>"}},
		{"hello</s>", EncodeOptions{ParseSpecial: true}, []string{"▁hello", "</s>"}},
	}
	for _, tt := range tests {
		got := tok.Encode(tt.text, tt.opt)
		if want := ids(tok, tt.want...); !slices.Equal(got, want) {
			t.Errorf("Encode(%q, %+v) = %v, want %v %q", tt.text, tt.opt, got, want, tt.want)
		}
	}
	// Decode drops the space that Encode put in front of the text.
	for _, s := range []string{"hello world", " hello", "  hello  ", "hé!", "ŝ world", ""} {
		if got := tok.Decode(tok.Encode(s, EncodeOptions{})); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	if got := tok.Decode(tok.Encode("hello", EncodeOptions{AddBOS: true})); got != " hello" {
		t.Errorf("Decode with a leading BOS = %q, want %q (llama.cpp keeps the space after BOS)", got, " hello")
	}
}

func TestSPMNoSpacePrefix(t *testing.T) {
	v := testSPMVocab()
	off := false
	v.AddSpacePrefix = &off
	tok := mustNew(t, v)
	if got, want := tok.Encode("hello", EncodeOptions{}), ids(tok, "he", "llo"); !slices.Equal(got, want) {
		t.Errorf("Encode(hello) without space prefix = %v, want %v", got, want)
	}
	if got := tok.Decode(tok.Encode(" hello", EncodeOptions{})); got != " hello" {
		t.Errorf("round trip without space prefix = %q", got)
	}
}

func TestSpecialTokens(t *testing.T) {
	tok := mustNew(t, testBPEVocab("llama-bpe", []string{"h i"}, map[string]TokenType{
		"<|start|>":  TypeControl,
		"<think>":    TypeUserDefined,
		"<|im_end|>": TypeUserDefined, // llama.cpp makes end-of-turn tokens control whatever their type
		"ab":         TypeUserDefined,
		"abc":        TypeUserDefined,
	}))
	tests := []struct {
		text string
		opt  EncodeOptions
		want []string
	}{
		{"<|start|>hi", EncodeOptions{ParseSpecial: true}, []string{"<|start|>", "hi"}},
		// Unparsed, control text is ordinary text.
		{"<|start|>hi", EncodeOptions{}, []string{"<", "|", "s", "t", "a", "r", "t", "|", ">", "hi"}},
		// User-defined tokens are matched either way.
		{"<think>hi</think>", EncodeOptions{}, []string{"<think>", "hi", "<", "/", "t", "hi", "n", "k", ">"}},
		{"xabcab", EncodeOptions{}, []string{"x", "abc", "ab"}}, // longest first
		{"hi<|im_end|>", EncodeOptions{ParseSpecial: true}, []string{"hi", "<|im_end|>"}},
	}
	for _, tt := range tests {
		got := tok.Encode(tt.text, tt.opt)
		if want := ids(tok, tt.want...); !slices.Equal(got, want) {
			t.Errorf("Encode(%q, %+v) = %v, want %v %q", tt.text, tt.opt, got, want, tt.want)
		}
	}
	if got := tok.Encode("hi<|im_end|>", EncodeOptions{}); slices.Contains(got, ids(tok, "<|im_end|>")[0]) {
		t.Errorf("<|im_end|> matched in plain text: %v", got)
	}
	if typ := tok.Type(ids(tok, "<|im_end|>")[0]); typ != TypeControl {
		t.Errorf("<|im_end|> has type %d, want control", typ)
	}

	// Control tokens are hidden unless asked for; user-defined ones always show.
	seq := ids(tok, "<|start|>", "hi", "<think>", "<|im_end|>")
	if got := tok.Decode(seq); got != "hi<think>" {
		t.Errorf("Decode = %q, want %q", got, "hi<think>")
	}
	if got := tok.DecodeWith(seq, DecodeOptions{Special: true}); got != "<|start|>hi<think><|im_end|>" {
		t.Errorf("DecodeWith(Special) = %q", got)
	}
	if !tok.IsEOG(ids(tok, "<|im_end|>")[0]) || tok.IsEOG(ids(tok, "<think>")[0]) {
		t.Errorf("IsEOG wrong: EOGs = %v", tok.EOGs())
	}
}

// Merging word by word (wordCuts) must give exactly what merging the whole text at once gives, including
// on invalid UTF-8 whose bytes could straddle a word start.
func TestSPMWordCutsMatchWholeText(t *testing.T) {
	vocabs := []*Tokenizer{mustNew(t, testSPMVocab())}
	if _, err := os.Stat(filepath.Join(testutil.SharedDir(), "ggml-vocab-llama-spm.gguf")); err == nil {
		vocabs = append(vocabs, sharedTokenizer(t, "ggml-vocab-llama-spm.gguf"))
	}
	pieces := []string{" ", "  ", "hello", "world", "he", "l", "é", "日本", "\xe2\x96", "\xe2", "\x81", "▁", "!", "\n", "or"}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tok := range vocabs {
		if !tok.spm.wordCuts {
			t.Fatalf("vocabulary of %d tokens unexpectedly has no word cuts", tok.VocabSize())
		}
		whole := &spm{ids: tok.spm.ids, scores: tok.spm.scores, byteToken: tok.spm.byteToken, unk: tok.spm.unk}
		for i := 0; i < 2000; i++ {
			var b strings.Builder
			for n := rng.IntN(12); n >= 0; n-- {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			s := b.String()
			got := tok.spm.encode(s, true, nil, &spmWork{})
			want := whole.encode(s, true, nil, &spmWork{})
			if !slices.Equal(got, want) {
				t.Fatalf("%q: word by word %v, whole text %v", s, got, want)
			}
		}
	}
}

// A Tokenizer is shared by concurrent requests; its word cache must not mix them up (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := mustNew(t, testBPEVocab("llama-bpe", []string{"h e", "l l", "he ll", "Ġ w", "o r"}, nil))
	texts := []string{"hello world", "world hello hello", "he ll o", "orwell hell"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s, EncodeOptions{})
	}
	tok.bpe.cache.reset()
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for n := 0; n < 200; n++ {
				i := (g + n) % len(texts)
				if got := tok.Encode(texts[i], EncodeOptions{}); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("Encode(%q) = %v, want %v", texts[i], got, want[i])
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 8; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
