package tokenizer

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"smolchat/internal/craft"
	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/synth"
)

// TestPreTokenizerConformanceLive tokenizes the strings of llama.cpp's tokenizer tests with smolchat and
// with llama.cpp (../shared/reference's ref.mjs vocab: llama_tokenize without BOS or special-token
// parsing, as test-tokenizer-0) on vocabulary-only GGUF files that synth writes for the qwen3-tiny
// (pre-tokenizer qwen2) and llama3-tiny (llama-bpe) presets, and wants every id equal. The shared
// fixtures hold no qwen2 vocabulary, so each pre-tokenizer runs over two real-size byte-level BPE
// vocabularies of 128256 tokens: synth's own (merges learned from its corpus, as the synthetic models
// carry) and Llama 3's (280k merges, from ggml-vocab-llama-bpe.gguf), which a qwen2 split cuts
// differently (single digits, no 1-3 digit groups). It runs with SMOLCHAT_LIVE_REFERENCE=1 (`task
// conformance`).
func TestPreTokenizerConformanceLive(t *testing.T) {
	ref := testutil.LiveReference(t)
	const cases = "ggml-vocab-llama-bpe.gguf" // its .inp holds the strings of every test vocabulary
	inputs, _ := readCases(t, cases)
	inp := testutil.SharedFile(t, cases+".inp")

	builtin, err := synth.BuiltinVocab(128256)
	if err != nil {
		t.Fatal(err)
	}
	llama3File, err := gguf.Open(testutil.SharedFile(t, "ggml-vocab-llama-bpe.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	llama3, err := synth.VocabFromGGUF(llama3File, 128256)
	llama3File.Close()
	if err != nil {
		t.Fatal(err)
	}
	summary := regexp.MustCompile(`vocab test: (\d+) ok, (\d+) mismatched, of (\d+)`)
	ids := map[[2]string][]string{} // {pre, vocabulary} → smolchat's ids per string
	for _, tc := range []struct {
		preset, vocabName string
		vocab             *synth.Vocab
	}{
		{"qwen3-tiny", "synth", builtin},
		{"qwen3-tiny", "llama3", llama3},
		{"llama3-tiny", "synth", builtin},
		{"llama3-tiny", "llama3", llama3},
	} {
		t.Run(tc.preset+"/"+tc.vocabName, func(t *testing.T) {
			p, err := synth.PresetByName(tc.preset)
			if err != nil {
				t.Fatal(err)
			}
			// Metadata and no tensors: llama.cpp loads it with vocab_only.
			path := (&craft.File{KVs: synth.Metadata(p, 0, tc.vocab)}).Write(t, "vocab.gguf")
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := FromGGUF(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			// smolchat's ids, one line per case, in the .out form ref.mjs compares llama.cpp's with.
			var out strings.Builder
			for _, in := range inputs {
				var line []string
				for _, id := range tok.Encode(in, EncodeOptions{}) {
					line = append(line, strconv.Itoa(int(id)))
				}
				key := [2]string{p.Pre, tc.vocabName}
				ids[key] = append(ids[key], strings.Join(line, " "))
				out.WriteString(ids[key][len(ids[key])-1] + "\n")
			}
			outPath := filepath.Join(t.TempDir(), "smolchat.out")
			if err := os.WriteFile(outPath, []byte(out.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command("node", ref, "vocab", path, inp, outPath).CombinedOutput()
			if err != nil {
				t.Fatalf("ref.mjs vocab: %v\n%s", err, res)
			}
			m := summary.FindSubmatch(res)
			if m == nil {
				t.Fatalf("ref.mjs vocab printed no summary:\n%s", res)
			}
			ok, _ := strconv.Atoi(string(m[1]))
			of, _ := strconv.Atoi(string(m[3]))
			if of != len(inputs) || ok != of {
				t.Errorf("pre %s: llama.cpp and smolchat agree on %d of %d strings (%d read):\n%s", p.Pre, ok, of, len(inputs), res)
			}
			t.Logf("pre %s, %s vocabulary: %d of %d strings tokenized alike by smolchat and llama.cpp", p.Pre, tc.vocabName, ok, of)
		})
	}
	// The two pre-tokenizers must cut some strings differently, or agreeing with llama.cpp on both says
	// nothing about the qwen2 split. Synth's vocabulary learned no merges that the two splits separate
	// (it tokenizes all 46 alike), Llama 3's does (digit runs, mostly).
	differ := 0
	for _, v := range []string{"synth", "llama3"} {
		q, l := ids[[2]string{"qwen2", v}], ids[[2]string{"llama-bpe", v}]
		n := 0
		for i := range min(len(q), len(l)) {
			if q[i] != l[i] {
				n++
			}
		}
		t.Logf("%s vocabulary: qwen2 and llama-bpe tokenize %d of %d strings differently", v, n, len(q))
		differ += n
	}
	if differ == 0 {
		t.Error("qwen2 and llama-bpe tokenize every string alike in both vocabularies; the cases cannot tell them apart")
	}
}
