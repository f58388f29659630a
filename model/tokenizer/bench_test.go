package tokenizer

import (
	"strings"
	"testing"
)

// benchParagraph is ordinary English prose with some numbers, punctuation and a code-like line.
const benchParagraph = `The lighthouse keeper climbed the spiral stairs at dusk, as he had done every evening for thirty-one years.
He counted the steps out of habit (one hundred and fourteen), checked the brass fittings, and wiped the salt
from the great lens. Ships no longer needed him, strictly speaking: satellites guided them, and the harbour
master's radio reached farther than any lamp. Still, on nights like this, when the fog rolled in at 7:45 pm
and the temperature dropped to 9°C, he liked to think that somebody out there was glad of the light.

"Don't you ever get lonely?" his niece had asked him last summer. He'd laughed and said that the gulls were
company enough, and the weather reports, and the occasional letter from a sailor who'd passed by in 1987.
She hadn't believed him. Later, he wrote in the log: wind NNE 12 knots, visibility < 200 m, lamp lit 19:52.

`

func benchText(size int) string {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(benchParagraph)
	}
	return b.String()[:size]
}

// BenchmarkEncodeLlama3 tokenizes 1 MB of English with the Llama 3 vocabulary (the SmolLM3 tokenizer's
// base); b.SetBytes makes `go test -bench` report MB/s.
func BenchmarkEncodeLlama3(b *testing.B) {
	tok := sharedTokenizer(b, "ggml-vocab-llama-bpe.gguf")
	text := benchText(1 << 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.Encode(text, EncodeOptions{})
	}
}

// BenchmarkEncodeLlama3Uncached measures the merge loop itself: every word is new to the cache.
func BenchmarkEncodeLlama3Uncached(b *testing.B) {
	tok := sharedTokenizer(b, "ggml-vocab-llama-bpe.gguf")
	text := benchText(64 << 10)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.bpe.cache.reset()
		tok.Encode(text, EncodeOptions{})
	}
}

func BenchmarkEncodeSPM(b *testing.B) {
	tok := sharedTokenizer(b, "ggml-vocab-llama-spm.gguf")
	text := benchText(64 << 10)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.Encode(text, EncodeOptions{})
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	tok := sharedTokenizer(b, "ggml-vocab-llama-bpe.gguf")
	text := benchText(64 << 10)
	ids := tok.Encode(text, EncodeOptions{})
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		d := tok.NewStreamDecoder()
		for _, id := range ids {
			d.Add(id)
		}
		d.Flush()
	}
}
