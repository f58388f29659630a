package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// feed runs ids through a stream decoder and returns each Add's output, plus Flush's.
func feed(d *StreamDecoder, ids []int32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, d.Add(id))
	}
	return append(out, d.Flush())
}

func TestStreamDecoderSPMBytes(t *testing.T) {
	tok := mustNew(t, testSPMVocab())
	// 👋 is F0 9F 91 8B: four byte tokens, and only the last completes the character.
	wave := ids(tok, "<0xF0>", "<0x9F>", "<0x91>", "<0x8B>")
	seq := append(append(ids(tok, "▁hello", "▁"), wave...), ids(tok, "▁world")...)
	got := feed(tok.NewStreamDecoder(), seq)
	want := []string{" hello", " ", "", "", "", "👋", " world", ""}
	if !slices.Equal(got, want) {
		t.Errorf("stream = %q, want %q", got, want)
	}
	// The stream carries the same text as Decode, apart from the leading space Decode drops.
	if joined := strings.Join(got, ""); " "+tok.Decode(seq) != joined {
		t.Errorf("stream %q differs from Decode %q", joined, tok.Decode(seq))
	}
}

func TestStreamDecoderByteLevel(t *testing.T) {
	// Byte-level tokens can end in the middle of a character: "é" is C3 A9, split over two tokens here.
	tok := mustNew(t, testBPEVocab("llama-bpe", []string{"a " + byteChar[0xC3]}, map[string]TokenType{"<|im_end|>": TypeControl}))
	first := ids(tok, "a"+byteChar[0xC3])[0]
	second := ids(tok, byteChar[0xA9])[0]
	end := ids(tok, "<|im_end|>")[0]
	if got := feed(tok.NewStreamDecoder(), []int32{first, second, end}); !slices.Equal(got, []string{"a", "é", "", ""}) {
		t.Errorf("stream = %q", got)
	}
	if got := feed(tok.NewStreamDecoderWith(DecodeOptions{Special: true}), []int32{first, second, end}); !slices.Equal(got, []string{"a", "é", "<|im_end|>", ""}) {
		t.Errorf("stream with special tokens shown = %q", got)
	}
}

func TestStreamDecoderInvalidBytes(t *testing.T) {
	tok := mustNew(t, testSPMVocab())
	b := func(s ...string) []int32 { return ids(tok, s...) }
	tests := []struct {
		name string
		ids  []int32
		want []string
	}{
		{"stray continuation byte", b("<0x80>", "h"), []string{"\uFFFD", "h", ""}},
		{"never-valid byte", b("<0xFF>"), []string{"\uFFFD", ""}},
		{"sequence broken by ASCII", b("<0xF0>", "<0x9F>", "h"), []string{"", "", "\uFFFDh", ""}},
		{"sequence cut by the end", b("h", "<0xE2>", "<0x82>"), []string{"h", "", "", "\uFFFD"}},
		{"invalid second byte", b("<0xE0>", "<0x80>"), []string{"", "\uFFFD", ""}},
	}
	for _, tt := range tests {
		d := tok.NewStreamDecoder()
		got := feed(d, tt.ids)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: stream = %q, want %q", tt.name, got, tt.want)
		}
		for _, s := range got {
			if !utf8.ValidString(s) {
				t.Errorf("%s: invalid UTF-8 %q", tt.name, s)
			}
		}
		if d.Pending() {
			t.Errorf("%s: bytes pending after Flush", tt.name)
		}
	}
}

func TestPiece(t *testing.T) {
	spmTok := mustNew(t, testSPMVocab())
	bpeTok := mustNew(t, testBPEVocab("llama-bpe", []string{"Ġ w"}, map[string]TokenType{"<think>": TypeUserDefined}))
	tests := []struct {
		tok  *Tokenizer
		text string // token text
		want string
	}{
		{spmTok, "▁hello", " hello"},
		{spmTok, "<0x0A>", "\n"},
		{spmTok, "<0xF0>", "\xF0"},
		{spmTok, "</s>", "</s>"},
		{bpeTok, "Ġw", " w"},
		{bpeTok, byteChar[0xF0], "\xF0"},
		{bpeTok, "<think>", "<think>"},
		{bpeTok, "<|begin_of_text|>", "<|begin_of_text|>"},
	}
	for _, tt := range tests {
		id := ids(tt.tok, tt.text)[0]
		if got := string(tt.tok.Piece(id)); got != tt.want {
			t.Errorf("Piece(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
	for _, id := range []int32{-1, int32(spmTok.VocabSize())} {
		if p := spmTok.Piece(id); p != nil {
			t.Errorf("Piece(%d) = %q, want nil", id, p)
		}
	}
	if got := spmTok.Decode([]int32{-5, 1 << 30}); got != "" {
		t.Errorf("Decode of out-of-range ids = %q, want empty", got)
	}
	// Piece returns a copy: changing it must not change the tokenizer.
	id := ids(spmTok, "▁hello")[0]
	spmTok.Piece(id)[0] = 'X'
	if got := string(spmTok.Piece(id)); got != " hello" {
		t.Errorf("Piece changed to %q after the caller wrote to it", got)
	}
}

// Invalid UTF-8 must not panic. Byte-level BPE reads invalid bytes as U+FFFD, as llama.cpp does;
// SentencePiece keeps them as byte tokens, so they decode unchanged.
func TestInvalidUTF8(t *testing.T) {
	bpeTok := mustNew(t, testBPEVocab("llama-bpe", nil, nil))
	spmTok := mustNew(t, testSPMVocab())
	for _, s := range []string{"\xff", "a\xc3", "\xe2\x82", "\x80\x80x", "ok\xf0\x9f\x98", "\xed\xa0\x80", "\xc0\xaf"} {
		if got, want := bpeTok.Decode(bpeTok.Encode(s, EncodeOptions{})), replaceInvalidUTF8(s); got != want {
			t.Errorf("BPE: Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
		if got := spmTok.Decode(spmTok.Encode(s, EncodeOptions{})); got != s {
			t.Errorf("SPM: Decode(Encode(%q)) = %q, want the same bytes", s, got)
		}
	}
}

func TestReplaceInvalidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ok", "ok"},
		{"\xff", "\uFFFD"},
		{"a\xe2\x82b", "a\uFFFD\uFFFDb"}, // one U+FFFD per byte, as llama.cpp's decoder gives
		{"é\x80", "é\uFFFD"},
	}
	for _, tt := range tests {
		if got := replaceInvalidUTF8(tt.in); got != tt.want {
			t.Errorf("replaceInvalidUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestByteLevelAlphabet(t *testing.T) {
	for b := 0; b < 256; b++ {
		enc := byteEncode(string([]byte{byte(b)}))
		if utf8.RuneCountInString(enc) != 1 {
			t.Fatalf("byte %#x encodes to %q, want one rune", b, enc)
		}
		if dec := byteDecode(enc); len(dec) != 1 || dec[0] != byte(b) {
			t.Fatalf("byte %#x: round trip gives %q", b, dec)
		}
	}
	// Known points of GPT-2's table: printable ASCII is itself, space is Ġ, newline Ċ, NBSP ł, soft hyphen Ń.
	for s, want := range map[string]string{"A~!": "A~!", " ": "Ġ", "\n": "Ċ", "\u00a0": "Âł", "\u00ad": "ÂŃ", "\x00": "Ā"} {
		if got := byteEncode(s); got != want {
			t.Errorf("byteEncode(%q) = %q, want %q", s, got, want)
		}
	}
	if got := string(byteDecode("xĠ☃")); got != "x ☃" {
		t.Errorf("byteDecode keeps a rune outside the alphabet as UTF-8: got %q", got)
	}
}
