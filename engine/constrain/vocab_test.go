package constrain

import (
	"slices"
	"testing"
	"time"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/tokenizer"
)

// smolVocab is SmolLM3's vocabulary (128,256 tokens) from the shared synthetic model, or a skip.
func smolVocab(t testing.TB) (*Vocab, *tokenizer.Tokenizer) {
	t.Helper()
	f, err := gguf.Open(testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return vocabOf(tok), tok
}

func vocabOf(tok *tokenizer.Tokenizer) *Vocab {
	return NewVocab(tok.VocabSize(), func(id int32) []byte {
		switch tok.Type(id) {
		case tokenizer.TypeControl, tokenizer.TypeUnknown, tokenizer.TypeUnused:
			return nil
		}
		return tok.Piece(id)
	}, tok.EOGs())
}

// TestMaskIsExact checks the trie walk against matching every token on its own, at states along an
// answer, on SmolLM3's vocabulary.
func TestMaskIsExact(t *testing.T) {
	v, tok := smolVocab(t)
	g, err := CompileSchema([]byte(`{"type":"object","properties":{"name":{"type":"string","maxLength":4},"n":{"type":"integer"},` +
		`"tags":{"type":"array","items":{"enum":["a","b"]}}},"required":["name","n","tags"]}`))
	if err != nil {
		t.Fatal(err)
	}
	c := New(g, v)
	answer := tok.Encode(`{"name": "Bob", "n": 12, "tags": ["a","b"]}`, tokenizer.EncodeOptions{})
	for step := 0; ; step++ {
		mask := c.Mask()
		start := time.Now()
		for id := range int32(tok.VocabSize()) {
			m := &Matcher{g: g, s: c.m.s}
			want := false
			if slices.Contains(tok.EOGs(), id) {
				want = c.Complete()
			} else if b := v.piece(id); len(b) > 0 {
				want = m.Accept(b)
			}
			if got := mask[id/64]>>(id%64)&1 == 1; got != want {
				t.Fatalf("step %d, token %d %q: mask %v, matcher %v", step, id, v.piece(id), got, want)
			}
		}
		t.Logf("step %d checked in %v", step, time.Since(start))
		if step == len(answer) {
			break
		}
		if !c.Accept(answer[step]) {
			t.Fatalf("step %d: token %q refused", step, tok.Piece(answer[step]))
		}
	}
	if !c.Final() {
		t.Error("the answer is complete, but the constraint is not final")
	}
}

// BenchmarkMask measures computing masks without the cache, at each state of an answer.
func BenchmarkMask(b *testing.B) {
	v, tok := smolVocab(b)
	g, err := CompileSchema([]byte(`{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},` +
		`"pets":{"type":"array","items":{"type":"object","properties":{"kind":{"enum":["cat","dog"]},"name":{"type":"string"}},"required":["kind","name"]}}},"required":["name","age","pets"]}`))
	if err != nil {
		b.Fatal(err)
	}
	answer := tok.Encode(`{"name": "Alice Smith", "age": 42, "pets": [{"kind": "cat", "name": "Tom"}]}`, tokenizer.EncodeOptions{})
	var states []*state
	c := New(g, v)
	for _, id := range answer {
		states = append(states, c.m.s)
		if !c.Accept(id) {
			b.Fatalf("token %q refused", tok.Piece(id))
		}
	}
	// cold: a new generation's first pass, DFA empty; warm: the DFA's transitions known (the mask
	// cache is bypassed in both).
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "cold", true: "warm"}[warm]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if !warm {
					c = New(g, v)
				}
				for _, s := range states {
					c.compute(s)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(states)), "µs/mask")
		})
	}
}

// BenchmarkNewVocab measures arranging SmolLM3's vocabulary in the trie, done once per engine on its
// first constrained generation.
func BenchmarkNewVocab(b *testing.B) {
	_, tok := smolVocab(b)
	for b.Loop() {
		vocabOf(tok)
	}
}
