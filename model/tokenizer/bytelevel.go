package tokenizer

import "unicode/utf8"

// Byte-level BPE vocabularies (GPT-2, Llama 3, SmolLM3) store every token as text over a 256-character
// alphabet: each byte stands for one printable rune, so that a vocabulary of strings can hold arbitrary
// bytes. The printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, DEL, NBSP,
// soft hyphen, …) are moved to U+0100 and up, in byte order. "Ġ" (U+0120) is therefore a space and "Ċ"
// (U+010A) a newline.
var (
	byteRune [256]rune       // byte → rune of the byte-level alphabet
	byteChar [256]string     // byte → that rune as UTF-8
	runeByte [256 + 68]int16 // inverse of byteRune, -1 for runes outside the alphabet
)

func init() {
	for r := range runeByte {
		runeByte[r] = -1
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		r := rune(b)
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if !printable {
			r = next
			next++
		}
		byteRune[b] = r
		byteChar[b] = string(r)
		runeByte[r] = int16(b)
	}
}

// byteEncode maps raw bytes to the byte-level alphabet.
func byteEncode(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteRune[s[i]])
	}
	return string(buf)
}

// byteDecode maps a token's text from the byte-level alphabet back to raw bytes. A rune outside the
// alphabet (possible only in a malformed vocabulary) is kept as its UTF-8 bytes.
func byteDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= 0 && int(r) < len(runeByte) && runeByte[r] >= 0 {
			out = append(out, byte(runeByte[r]))
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
