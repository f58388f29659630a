package tokenizer

import (
	"strings"
	"unicode"
)

// splitDefault is llama.cpp's "default" byte-level pre-tokenizer, which it also uses when
// tokenizer.ggml.pre is absent. Four expressions apply in turn, each cutting every piece the previous
// ones left into its matches and the text between them: runs of punctuation ([\p{P}$+<=>^~|]+),
// GPT-2's word rule, runs of numbers (\p{N}+), and then groups of three ASCII digits ([0-9]{3}).
func splitDefault(s string, emit func(word string)) {
	splitRuns(s, isDefaultPunct, func(a string) {
		splitGPT2(a, func(b string) {
			splitRuns(b, isNumber, func(c string) {
				splitDigitTriples(c, emit)
			})
		})
	})
}

// isDefaultPunct is the first expression's class: Unicode punctuation and the ASCII symbols $+<=>^~|.
func isDefaultPunct(r rune) bool {
	return unicode.IsPunct(r) || (r < 0x80 && strings.ContainsRune("$+<=>^~|", r))
}

func isNumber(r rune) bool { return class(r) == clsNumber }

// splitRuns cuts s into the maximal runs of runes for which in is true and the text between them.
func splitRuns(s string, in func(rune) bool, emit func(string)) {
	start, inRun := 0, false
	for i := 0; i < len(s); {
		r, n := runeAt(s, i)
		if b := in(r); b != inRun {
			if i > start {
				emit(s[start:i])
			}
			start, inRun = i, b
		}
		i += n
	}
	if start < len(s) {
		emit(s[start:])
	}
}

// splitDigitTriples cuts out each group of three ASCII digits, left to right, and the text between them.
func splitDigitTriples(s string, emit func(string)) {
	digit := func(c byte) bool { return '0' <= c && c <= '9' }
	start := 0
	for i := 0; i+3 <= len(s); {
		if !digit(s[i]) || !digit(s[i+1]) || !digit(s[i+2]) {
			i++
			continue
		}
		if i > start {
			emit(s[start:i])
		}
		emit(s[i : i+3])
		i += 3
		start = i
	}
	if start < len(s) {
		emit(s[start:])
	}
}
