package tokenizer

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
)

// Tests against the vocabulary-only GGUF files of llama.cpp's tokenizer tests (../shared/testdata); they
// skip when the fixtures are absent.

var sharedTokenizers sync.Map // file name → *Tokenizer, so the 128k-token vocabulary loads once

func sharedTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	path := testutil.SharedFile(t, name)
	if tok, ok := sharedTokenizers.Load(name); ok {
		return tok.(*Tokenizer)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatalf("FromGGUF(%s): %v", name, err)
	}
	sharedTokenizers.Store(name, tok)
	return tok
}

// readCases reads llama.cpp's test-tokenizer-0 pairs: inputs separated by "\n__ggml_vocab_test__\n" (a
// trailing separator does not start a case) and one line of space-separated ids per case.
func readCases(t *testing.T, vocab string) (inputs []string, want [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(testutil.SharedFile(t, vocab+".inp"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(testutil.SharedFile(t, vocab+".out"))
	if err != nil {
		t.Fatal(err)
	}
	inputs = strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if inputs[len(inputs)-1] == "" {
		inputs = inputs[:len(inputs)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%s: %d inputs but %d expected outputs", vocab, len(inputs), len(lines))
	}
	for i, line := range lines {
		var ids []int32
		for _, f := range strings.Fields(line) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", vocab, i+1, err)
			}
			ids = append(ids, int32(n))
		}
		want = append(want, ids)
	}
	return inputs, want
}

func TestLlamaCppVocabCases(t *testing.T) {
	for _, vocab := range []string{"ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf"} {
		t.Run(vocab, func(t *testing.T) {
			tok := sharedTokenizer(t, vocab)
			inputs, want := readCases(t, vocab)
			pass := 0
			for i, in := range inputs {
				got := tok.Encode(in, EncodeOptions{})
				if !slices.Equal(got, want[i]) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, in, got, want[i])
					continue
				}
				pass++
				// Every case is valid UTF-8 and free of special-token text, so it must round-trip.
				if dec := tok.Decode(got); dec != in {
					t.Errorf("case %d: Decode(Encode(%q)) = %q", i, in, dec)
				}
			}
			t.Logf("%s: %d/%d cases pass", vocab, pass, len(inputs))
			if len(inputs) != 46 {
				t.Errorf("read %d cases, want 46", len(inputs))
			}
		})
	}
}

func TestSharedVocabEncode(t *testing.T) {
	// Expected ids from llama.cpp (the reference in ../shared/reference).
	tests := []struct {
		vocab   string
		text    string
		opt     EncodeOptions
		want    []int32
		decoded string // Decode of want with special tokens shown
	}{
		{"ggml-vocab-llama-bpe.gguf", "Hello world! <|begin_of_text|>", EncodeOptions{AddBOS: true, ParseSpecial: true},
			[]int32{128000, 9906, 1917, 0, 220, 128000}, "<|begin_of_text|>Hello world! <|begin_of_text|>"},
		{"ggml-vocab-llama-bpe.gguf", "Hello world! <|begin_of_text|>", EncodeOptions{AddBOS: true},
			[]int32{128000, 9906, 1917, 0, 83739, 7413, 3659, 4424, 91, 29}, "<|begin_of_text|>Hello world! <|begin_of_text|>"},
		{"ggml-vocab-llama-bpe.gguf", "Once upon a time", EncodeOptions{AddBOS: true},
			[]int32{128000, 12805, 5304, 264, 892}, "<|begin_of_text|>Once upon a time"},
		{"stories260K.gguf", "Once upon a time", EncodeOptions{AddBOS: true},
			[]int32{1, 403, 407, 261, 378}, "<s> Once upon a time"},
	}
	for _, tt := range tests {
		tok := sharedTokenizer(t, tt.vocab)
		if got := tok.Encode(tt.text, tt.opt); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q, %+v) = %v, want %v", tt.vocab, tt.text, tt.opt, got, tt.want)
		}
		if got := tok.DecodeWith(tt.want, DecodeOptions{Special: true}); got != tt.decoded {
			t.Errorf("%s: DecodeWith(%v, Special) = %q, want %q", tt.vocab, tt.want, got, tt.decoded)
		}
	}
}

func TestSharedVocabMetadata(t *testing.T) {
	tests := []struct {
		vocab         string
		size          int
		bos, eos, eot int32
		addsBOS       bool
		eogs          []int32
	}{
		{"ggml-vocab-llama-bpe.gguf", 128256, 128000, 128001, 128009, true, []int32{128001, 128009}},
		{"ggml-vocab-llama-spm.gguf", 32000, 1, 2, -1, true, []int32{2}},
		{"stories260K.gguf", 512, 1, 2, -1, true, []int32{2}},
	}
	for _, tt := range tests {
		tok := sharedTokenizer(t, tt.vocab)
		if tok.VocabSize() != tt.size || tok.BOS() != tt.bos || tok.EOS() != tt.eos || tok.EOT() != tt.eot || tok.AddsBOS() != tt.addsBOS {
			t.Errorf("%s: size %d bos %d eos %d eot %d addsBOS %v, want %d %d %d %d %v", tt.vocab,
				tok.VocabSize(), tok.BOS(), tok.EOS(), tok.EOT(), tok.AddsBOS(), tt.size, tt.bos, tt.eos, tt.eot, tt.addsBOS)
		}
		if got := tok.EOGs(); !slices.Equal(got, tt.eogs) {
			t.Errorf("%s: EOGs() = %v, want %v", tt.vocab, got, tt.eogs)
		}
		for _, id := range tt.eogs {
			if !tok.IsEOG(id) {
				t.Errorf("%s: IsEOG(%d) = false", tt.vocab, id)
			}
		}
	}
}

// SmolLM3's pre-tokenizer, smaug-bpe, splits like Llama 3 but adds no BOS and always merges: a word that
// is itself a token can come out as several. Checked against llama.cpp on a copy of the Llama 3 vocabulary
// with tokenizer.ggml.pre set to smaug-bpe.
func TestSmaugBPE(t *testing.T) {
	path := testutil.SharedFile(t, "ggml-vocab-llama-bpe.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	v.Pre = "smaug-bpe"
	smaug, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	llama3 := sharedTokenizer(t, "ggml-vocab-llama-bpe.gguf")
	tests := []struct {
		text          string
		smaug, llama3 []int32
	}{
		{" việc", []int32{3355, 26298, 66}, []int32{100769}},
		{"Hello world", []int32{9906, 1917}, []int32{9906, 1917}},
	}
	for _, tt := range tests {
		if got := smaug.Encode(tt.text, EncodeOptions{AddBOS: smaug.AddsBOS()}); !slices.Equal(got, tt.smaug) {
			t.Errorf("smaug-bpe: Encode(%q) = %v, want %v", tt.text, got, tt.smaug)
		}
		if got := llama3.Encode(tt.text, EncodeOptions{}); !slices.Equal(got, tt.llama3) {
			t.Errorf("llama-bpe: Encode(%q) = %v, want %v", tt.text, got, tt.llama3)
		}
	}
}

func BenchmarkFromGGUF(b *testing.B) {
	path := testutil.SharedFile(b, "ggml-vocab-llama-bpe.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := FromGGUF(f); err != nil {
			b.Fatal(err)
		}
	}
}

// sharedVocab reads the vocabulary of a shared fixture, for a test to edit.
func sharedVocab(t *testing.T, name string) Vocab {
	t.Helper()
	f, err := gguf.Open(testutil.SharedFile(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := VocabFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// smolLM3Tokenizer is the Llama 3 vocabulary with SmolLM3's metadata: smaug-bpe, EOS and padding
// <|im_end|>, and SmolLM3's added tokens at their ids (spec §3), <think> and the tool tags user-defined.
func smolLM3Tokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	v := sharedVocab(t, "ggml-vocab-llama-bpe.gguf")
	v.Pre, v.EOS, v.PAD, v.EOT = "smaug-bpe", 128012, 128012, -1
	for id, text := range map[int32]string{128002: "<think>", 128003: "</think>", 128011: "<|im_start|>", 128012: "<|im_end|>",
		128013: "<tool_response>", 128014: "</tool_response>", 128015: "<tool_call>", 128016: "</tool_call>"} {
		v.Tokens[id], v.Types[id] = text, int32(TypeControl)
		if !strings.HasPrefix(text, "<|") {
			v.Types[id] = int32(TypeUserDefined)
		}
	}
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Figures from llama.cpp on a file with this vocabulary (written by `smolchat synth --vocab-from`).
func TestSmolLM3Specials(t *testing.T) {
	tok := smolLM3Tokenizer(t)
	chat := "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\nHello!<|im_end|>"
	tests := []struct {
		text string
		opt  EncodeOptions
		want []int32
	}{
		{chat, EncodeOptions{ParseSpecial: true},
			[]int32{128011, 882, 198, 13347, 1070, 0, 128012, 198, 128011, 78191, 198, 128002, 271, 128003, 198, 9906, 0, 128012}},
		// User text: control tokens are plain text, user-defined ones still match.
		{"<|im_start|>user\nHi <think>x</think><|im_end|>", EncodeOptions{},
			[]int32{27, 91, 318, 5011, 91, 29, 882, 198, 13347, 220, 128002, 87, 128003, 27, 91, 318, 6345, 91, 29}},
	}
	for _, tt := range tests {
		if got := tok.Encode(tt.text, tt.opt); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q, %+v) =\n %v, want\n %v", tt.text, tt.opt, got, tt.want)
		}
	}
	if tok.AddsBOS() || tok.EOT() != 128012 || !slices.Equal(tok.EOGs(), []int32{128001, 128009, 128012}) {
		t.Errorf("AddsBOS %v, EOT %d, EOGs %v; want false, 128012, [128001 128009 128012]", tok.AddsBOS(), tok.EOT(), tok.EOGs())
	}
	ids := tok.Encode(chat, EncodeOptions{ParseSpecial: true})
	if got, want := tok.Decode(ids), "user\nHi there!\nassistant\n<think>\n\n</think>\nHello!"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	if got := tok.DecodeWith(ids, DecodeOptions{Special: true}); got != chat {
		t.Errorf("DecodeWith(Special) = %q, want %q", got, chat)
	}
}
