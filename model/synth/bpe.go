package synth

import (
	_ "embed"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// corpus is original English prose written for this package; the built-in vocabulary's merges are
// learned from it.
//
//go:embed corpus.txt
var corpus string

// byteRunes is GPT-2's byte-to-unicode table: printable bytes stand for themselves, and the others
// (control characters, space, DEL, the Latin-1 gaps) are moved to U+0100 upward in byte order, so that
// every byte has a visible, non-space character and a merge "A B" can be split on the space.
var byteRunes = func() [256]rune {
	var t [256]rune
	next := rune(256)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			t[b] = rune(b)
		} else {
			t[b] = next
			next++
		}
	}
	return t
}()

// byteTokens are the 256 single-byte tokens in GPT-2's order: the printable bytes first, then the
// remapped ones (so "!" is token 0, as in GPT-2's and Llama-3's vocabularies).
func byteTokens() []string {
	var printable, moved []string
	for b, r := range byteRunes {
		if rune(b) == r {
			printable = append(printable, string(r))
		} else {
			moved = append(moved, string(r))
		}
	}
	return append(printable, moved...)
}

// encodeBytes maps text to its byte-level form: one byteRunes character per byte.
func encodeBytes(s string) []string {
	out := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = string(byteRunes[s[i]])
	}
	return out
}

// splitRE is the Llama-3 pre-tokenizer split (spec §3) without its one lookahead, `\s+(?!\S)`, which
// pretokenize emulates.
var splitRE = regexp.MustCompile(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+`)

// pretokenize splits text into the pieces BPE works within, as smaug-bpe/llama3 tokenizers do: merges are
// learned only inside a piece because a tokenizer never merges across pieces.
func pretokenize(text string) []string {
	var pieces []string
	for len(text) > 0 {
		loc := splitRE.FindStringIndex(text)
		if loc == nil || loc[1] == 0 {
			// Unreachable: `\s+` and the other branches cover every character. Take one rune to make progress.
			_, n := utf8.DecodeRuneInString(text)
			loc = []int{0, n}
		}
		piece := text[:loc[1]]
		// `\s+(?!\S)`: a run of spaces before a word leaves its last space to the word (" the").
		if loc[1] < len(text) && strings.TrimFunc(piece, unicode.IsSpace) == "" && !strings.ContainsAny(piece, "\r\n") {
			if _, n := utf8.DecodeLastRuneInString(piece); n < len(piece) {
				piece = piece[:len(piece)-n]
			}
		}
		pieces = append(pieces, piece)
		text = text[len(piece):]
	}
	return pieces
}

// trainBPE learns up to maxNew merges from text with the classic algorithm: start from byte-level symbols,
// repeatedly merge the most frequent adjacent pair (ties broken by the pair's text, so the result is the
// same everywhere), and stop when no pair occurs twice. It returns the merges in rank order ("A B") and
// the distinct new tokens in the order they first appear.
func trainBPE(text string, maxNew int) (merges, tokens []string) {
	type word struct {
		syms  []string
		count int
	}
	counts := map[string]int{}
	var order []string // first-seen order, so iteration is deterministic
	for _, p := range pretokenize(text) {
		if counts[p] == 0 {
			order = append(order, p)
		}
		counts[p]++
	}
	words := make([]word, len(order))
	for i, p := range order {
		words[i] = word{encodeBytes(p), counts[p]}
	}
	known := map[string]bool{}
	for _, t := range byteTokens() {
		known[t] = true
	}
	type pair struct{ a, b string }
	for len(tokens) < maxNew {
		freq := map[pair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				freq[pair{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		var best pair
		bestN := 1
		for p, n := range freq {
			if n > bestN || n == bestN && bestN > 1 && (p.a+" "+p.b) < (best.a+" "+best.b) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merged := best.a + best.b
		merges = append(merges, best.a+" "+best.b)
		if !known[merged] {
			known[merged] = true
			tokens = append(tokens, merged)
		}
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best.a && s[i+1] == best.b {
					out = append(out, merged)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[wi].syms = out
		}
	}
	return merges, tokens
}
