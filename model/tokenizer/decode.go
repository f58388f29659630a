package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// DecodeOptions controls decoding.
type DecodeOptions struct {
	// Special renders control and unknown tokens (<|im_end|>, <s>, <unk>) as their text instead of nothing.
	Special bool
}

// Piece returns the bytes a token stands for: the raw bytes of a byte-level token, the text of a
// SentencePiece token with ▁ as a space, the byte of a <0xXX> token, and the text of a special token.
// A piece can be an incomplete UTF-8 sequence. It returns nil for an id out of range.
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.pieces) {
		return nil
	}
	return append([]byte(nil), t.pieces[id]...)
}

// piece is the token's bytes under opt, without copying.
func (t *Tokenizer) piece(id int32, opt DecodeOptions) []byte {
	if id < 0 || int(id) >= len(t.pieces) {
		return nil
	}
	if !opt.Special {
		if typ := t.types[id]; typ == TypeControl || typ == TypeUnknown {
			return nil
		}
	}
	return t.pieces[id]
}

// Decode turns ids back into text, hiding control tokens. It returns the exact bytes, which are valid
// UTF-8 whenever the ids came from encoding valid UTF-8. Ids out of range are skipped.
func (t *Tokenizer) Decode(ids []int32) string {
	return t.DecodeWith(ids, DecodeOptions{})
}

// DecodeWith is Decode with options. For a SentencePiece model that prefixes text with a space, the
// first token loses one leading space, undoing the space Encode added (llama.cpp's detokenize does the
// same); this keeps Decode(Encode(s)) == s.
func (t *Tokenizer) DecodeWith(ids []int32, opt DecodeOptions) string {
	var b strings.Builder
	for i, id := range ids {
		p := t.piece(id, opt)
		if i == 0 && t.spacePrefix && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		b.Write(p)
	}
	return b.String()
}

// StreamDecoder turns generated ids into text as they arrive. A character can span several tokens (an
// emoji spelled with byte tokens, or a byte-level token that ends mid-character), so it holds back an
// incomplete UTF-8 sequence until the token that completes it. Unlike Decode it keeps every leading space,
// since generated text continues a prompt. Not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	opt     DecodeOptions
	pending []byte
}

// NewStreamDecoder returns a decoder that hides control tokens.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return t.NewStreamDecoderWith(DecodeOptions{})
}

// NewStreamDecoderWith returns a decoder with the given options.
func (t *Tokenizer) NewStreamDecoderWith(opt DecodeOptions) *StreamDecoder {
	return &StreamDecoder{t: t, opt: opt}
}

// Add decodes one more id and returns the text completed by it: always valid UTF-8, possibly empty.
// Bytes that can never form a character are rendered as U+FFFD.
func (d *StreamDecoder) Add(id int32) string {
	d.pending = append(d.pending, d.t.piece(id, d.opt)...)
	cut := completePrefix(d.pending)
	if cut == 0 {
		return ""
	}
	s := validString(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return s
}

// Flush returns what is held back, an incomplete character rendered as U+FFFD, and empties the decoder.
// Call it when the generation ends.
func (d *StreamDecoder) Flush() string {
	s := validString(d.pending)
	d.pending = d.pending[:0]
	return s
}

// Pending reports whether bytes of an incomplete character are held back.
func (d *StreamDecoder) Pending() bool { return len(d.pending) > 0 }

// completePrefix returns the length of the longest prefix of b that does not end inside a UTF-8 sequence
// that the following bytes could still complete.
func completePrefix(b []byte) int {
	// A sequence is at most 4 bytes, so only the last 3 bytes can start an incomplete one.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) { // a valid beginning that needs more bytes
				return i
			}
			break
		}
	}
	return len(b)
}

func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
