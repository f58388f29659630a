package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func splitAll(split splitFunc, s string) []string {
	var words []string
	split(s, func(w string) { words = append(words, w) })
	return words
}

func TestSplitLlama3(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"", nil},
		// contractions, case-insensitive
		{"I'm you're WE'VE it'LL they'd", []string{"I", "'m", " you", "'re", " WE", "'VE", " it", "'LL", " they", "'d"}},
		{"don't", []string{"don", "'t"}},
		{"'x", []string{"'x"}}, // not a contraction: the quote leads the letters
		// digits in groups of 1 to 3, never joined to letters
		{"1234567", []string{"123", "456", "7"}},
		{"a12345b", []string{"a", "123", "45", "b"}},
		{"$100.50", []string{"$", "100", ".", "50"}},
		{" 42", []string{" ", "42"}},
		// whitespace runs before a word give up their last space to it
		{"a   b", []string{"a", "  ", " b"}},
		{"a   ", []string{"a", "   "}},
		{"   a", []string{"  ", " a"}},
		{"\tHello", []string{"\tHello"}},
		{"a\t\tb", []string{"a", "\t", "\tb"}},
		// newlines
		{"a\n\nb", []string{"a", "\n\n", "b"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"a.\n\nb", []string{"a", ".\n\n", "b"}},
		{"\r\n", []string{"\r\n"}},
		{"x  \n\n  y", []string{"x", "  \n\n", " ", " y"}},
		// punctuation with one optional leading space
		{"Hello, world!", []string{"Hello", ",", " world", "!"}},
		{"a ?!", []string{"a", " ?!"}},
		{"a  ...", []string{"a", " ", " ..."}},
		// non-ASCII letters, numbers and symbols
		{"Grüße, Welt", []string{"Grüße", ",", " Welt"}},
		{"привет мир", []string{"привет", " мир"}},
		{"日本語のテキスト", []string{"日本語のテキスト"}},
		{"hi 👋🏽!", []string{"hi", " 👋🏽!"}},
		{"٣٤٥٦", []string{"٣٤٥", "٦"}},
		{"\u00a0a", []string{"\u00a0a"}}, // NBSP is whitespace but leads letters like a space
		{"a\u3000\u3000b", []string{"a", "\u3000", "\u3000b"}},
	}
	for _, tt := range tests {
		if got := splitAll(splitLlama3, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitLlama3(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitGPT2(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"I'm WE'VE", []string{"I", "'m", " WE", "'", "VE"}}, // lower-case contractions only
		{"a12345b", []string{"a", "12345", "b"}},
		{" 42", []string{" 42"}},
		{"a   b", []string{"a", "  ", " b"}},
		{"\tHello", []string{"\t", "Hello"}},
		// \s+(?!\S) keeps the last newline for the word that follows, and it then stands alone
		{"a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"Hello, world!", []string{"Hello", ",", " world", "!"}},
		{"a ?!", []string{"a", " ?!"}},
		{"Grüße", []string{"Grüße"}},
	}
	for _, tt := range tests {
		if got := splitAll(splitGPT2, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitGPT2(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The words always concatenate back to the input, whatever it is.
func TestSplitCoversInput(t *testing.T) {
	inputs := []string{
		"", " ", "  ", "\n", "a", "'", "''", "'s's", "x'", "1'2", "\r\n\r\n  x", "A b\tC\n\nd  \n e",
		"Ünïcödé 123,456.78 — “quotes” ‘x’ 😀😀 ok", strings.Repeat("ab1 ", 50), "\u0301\u0301a",
	}
	for _, split := range []struct {
		name string
		fn   splitFunc
	}{{"llama3", splitLlama3}, {"qwen2", splitQwen2}, {"gpt2", splitGPT2}} {
		for _, in := range inputs {
			words := splitAll(split.fn, in)
			if got := strings.Join(words, ""); got != in {
				t.Errorf("%s: words of %q join to %q", split.name, in, got)
			}
			for _, w := range words {
				if w == "" || !utf8.ValidString(w) {
					t.Errorf("%s: %q gave bad word %q", split.name, in, w)
				}
			}
		}
	}
}

// Qwen2's split is Llama 3's with every digit a word of its own (\p{N} for \p{N}{1,3}); the rest of its
// behaviour is checked on llama.cpp's own suite (TestLlamaCppVocabCases, ggml-vocab-qwen2.gguf).
func TestSplitQwen2Digits(t *testing.T) {
	for _, tc := range []struct {
		in          string
		qwen, llama []string
	}{
		{"3333333", []string{"3", "3", "3", "3", "3", "3", "3"}, []string{"333", "333", "3"}},
		{"a 12,345.6", []string{"a", " ", "1", "2", ",", "3", "4", "5", ".", "6"}, []string{"a", " ", "12", ",", "345", ".", "6"}},
		{"Hello world", []string{"Hello", " world"}, []string{"Hello", " world"}},
	} {
		if got := splitAll(splitQwen2, tc.in); !slices.Equal(got, tc.qwen) {
			t.Errorf("qwen2 %q: %q, want %q", tc.in, got, tc.qwen)
		}
		if got := splitAll(splitLlama3, tc.in); !slices.Equal(got, tc.llama) {
			t.Errorf("llama3 %q: %q, want %q", tc.in, got, tc.llama)
		}
	}
}
