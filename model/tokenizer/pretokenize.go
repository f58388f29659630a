package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Byte-level BPE never merges across the boundaries of a pre-tokenizer split: text is first cut into
// "words" by a regular expression, and BPE runs on each word alone. The expressions use a negative
// lookahead, which Go's regexp lacks, so they are written out below as hand-made scanners that make the
// same cuts as llama.cpp's (which also hand-codes them). The scanners work on runes of valid UTF-8 and
// report each word as a substring of the input.

// splitFunc cuts s into words and calls emit for each, in order; the words concatenate to s.
type splitFunc func(s string, emit func(word string))

// runeAt decodes the rune at byte offset i; the caller guarantees i < len(s). It is small enough to be
// inlined, keeping ASCII cheap.
func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return decodeRune(s[i:])
}

// decodeRune is kept out of line so that its callers stay small enough to inline.
//
//go:noinline
func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// Character classes for ASCII, precomputed because almost all text is mostly ASCII.
const (
	clsLetter = 1 << iota
	clsNumber
	clsSpace
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for c := rune(0); c < utf8.RuneSelf; c++ {
		switch {
		case unicode.IsLetter(c):
			asciiClass[c] = clsLetter
		case unicode.IsNumber(c):
			asciiClass[c] = clsNumber
		case unicode.IsSpace(c):
			asciiClass[c] = clsSpace
		}
	}
}

// class returns the rune's class: \p{L}, \p{N}, \s (White_Space), or 0 for everything else.
func class(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	return unicodeClass(r)
}

//go:noinline
func unicodeClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return 0
}

// classAt is the class of the rune at byte offset i, or 0 past the end of s.
func classAt(s string, i int) uint8 {
	if i >= len(s) {
		return 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c]
	}
	r, _ := decodeRune(s[i:])
	return unicodeClass(r)
}

// runEnd returns the end of the run of runes of class cls that starts at byte offset j.
func runEnd(s string, j int, cls uint8) int {
	for j < len(s) {
		if c := s[j]; c < utf8.RuneSelf {
			if asciiClass[c] != cls {
				break
			}
			j++
			continue
		}
		r, n := decodeRune(s[j:])
		if unicodeClass(r) != cls {
			break
		}
		j += n
	}
	return j
}

func lowerASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + ('a' - 'A')
	}
	return r
}

// contraction returns the length in bytes of an English contraction suffix ('s 't 're 've 'm 'll 'd)
// at s[i:], or 0. caseFold makes the match case-insensitive (Llama 3) rather than lower-case only (GPT-2).
func contraction(s string, i int, caseFold bool) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	fold := func(r rune) rune {
		if caseFold {
			return lowerASCII(r)
		}
		return r
	}
	r1, n1 := runeAt(s, i+1)
	switch fold(r1) {
	case 's', 't', 'm', 'd':
		return 1 + n1
	}
	if i+1+n1 >= len(s) {
		return 0
	}
	r2, n2 := runeAt(s, i+1+n1)
	a, b := fold(r1), fold(r2)
	if (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') {
		return 1 + n1 + n2
	}
	return 0
}

// whitespaceRun scans the whitespace starting at i. It returns the end of the run, the start of its last
// rune, the number of runes, and the offset just past the last '\r' or '\n' in the run (-1 if none).
func whitespaceRun(s string, i int) (end, lastStart, count, afterNewline int) {
	end, lastStart, afterNewline = i, i, -1
	for end < len(s) {
		r, n := runeAt(s, end)
		if class(r) != clsSpace {
			break
		}
		if r == '\r' || r == '\n' {
			afterNewline = end + n
		}
		lastStart = end
		end += n
		count++
	}
	return end, lastStart, count, afterNewline
}

// splitLlama3 is the Llama 3 pre-tokenizer (also used by smaug-bpe, i.e. SmolLM3, and dbrx):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(s string, emit func(string)) { splitDigits(s, 3, emit) }

// splitQwen2 is Qwen2's (and Qwen3's) pre-tokenizer: Llama 3's with every digit on its own, \p{N}
// instead of \p{N}{1,3} (llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2).
func splitQwen2(s string, emit func(string)) { splitDigits(s, 1, emit) }

// splitDigits is the Llama 3 split with numbers in groups of at most group digits.
func splitDigits(s string, group int, emit func(string)) {
	i := 0
	for i < len(s) {
		r, n := runeAt(s, i)
		c := class(r)

		// (?i:'s|'t|'re|'ve|'m|'ll|'d)
		if r == '\'' {
			if k := contraction(s, i, true); k > 0 {
				emit(s[i : i+k])
				i += k
				continue
			}
		}

		// [^\r\n\p{L}\p{N}]?\p{L}+ : one optional non-letter lead (a space, a quote, …), then letters.
		if r != '\r' && r != '\n' && c != clsNumber && (c == clsLetter || classAt(s, i+n) == clsLetter) {
			j := runEnd(s, i+n, clsLetter)
			emit(s[i:j])
			i = j
			continue
		}

		// \p{N}{1,3} : digits in groups of at most three (one for Qwen2), left to right.
		if c == clsNumber {
			j, digits := i, 0
			for j < len(s) {
				r2, n2 := runeAt(s, j)
				if class(r2) != clsNumber {
					break
				}
				j += n2
				if digits++; digits == group {
					emit(s[i:j])
					i, digits = j, 0
				}
			}
			if j > i {
				emit(s[i:j])
			}
			i = j
			continue
		}

		// " ?[^\s\p{L}\p{N}]+[\r\n]*" : punctuation and symbols, with one leading space and trailing newlines.
		j := i
		if r == ' ' {
			j = i + n
		}
		if j < len(s) && classAt(s, j) == 0 {
			j = runEnd(s, j, 0)
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
			emit(s[i:j])
			i = j
			continue
		}

		end, lastStart, count, afterNewline := whitespaceRun(s, i)
		switch {
		case afterNewline >= 0: // \s*[\r\n]+ : whitespace up to and including the last newline
			emit(s[i:afterNewline])
			i = afterNewline
		case count > 1 && end < len(s): // \s+(?!\S) : the last space stays for the word that follows
			emit(s[i:lastStart])
			i = lastStart
		case count > 0: // \s+
			emit(s[i:end])
			i = end
		default: // unreachable for valid input: every rune falls in one of the classes above
			emit(s[i : i+n])
			i += n
		}
	}
}

// splitGPT2 is the original GPT-2 pre-tokenizer, used for byte-level vocabularies whose pre-tokenizer
// is not one of the Llama 3 family:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		r, n := runeAt(s, i)

		if r == '\'' {
			if k := contraction(s, i, false); k > 0 {
				emit(s[i : i+k])
				i += k
				continue
			}
		}

		// " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+" : a run of one class, with one optional leading space.
		j := i
		if r == ' ' {
			j = i + n
		}
		if j < len(s) {
			if c := classAt(s, j); c != clsSpace {
				j = runEnd(s, j, c)
				emit(s[i:j])
				i = j
				continue
			}
		}

		end, lastStart, count, _ := whitespaceRun(s, i)
		switch {
		case count > 1 && end < len(s): // \s+(?!\S)
			emit(s[i:lastStart])
			i = lastStart
		case count > 0: // \s+
			emit(s[i:end])
			i = end
		default:
			emit(s[i : i+n])
			i += n
		}
	}
}
