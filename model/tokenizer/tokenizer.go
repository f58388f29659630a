// Package tokenizer turns text into token ids and back for the vocabularies stored in GGUF files: byte-level
// BPE ("gpt2": GPT-2, Llama 3, SmolLM3) and SentencePiece ("llama": LLaMA 1/2, TinyLlama, stories260K).
//
// It reproduces llama.cpp's tokenizer, which is the reference the models were checked against:
// special tokens are cut out of the text first (user-defined ones always, control ones only when asked),
// the rest is pre-tokenized and merged exactly as llama.cpp does, and ids decode to the same bytes.
// A Tokenizer is immutable once built and safe for concurrent use.
//
// A byte-level vocabulary whose pre-tokenizer this package does not implement is refused.
//
// Known differences from llama.cpp, none of which affects the supported models: the per-model lstrip/rstrip attributes and fill-in-the-middle tokens are not modelled; invalid UTF-8 is
// judged by Go's decoder, which also rejects surrogates and overlong forms; and a byte-level token
// holding a character outside the byte alphabet decodes to that character rather than to an error marker.
package tokenizer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// TokenType is a token's type as stored in tokenizer.ggml.token_type.
type TokenType int32

const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1 // ordinary text
	TypeUnknown     TokenType = 2 // the <unk> token
	TypeControl     TokenType = 3 // <s>, <|im_start|>, …: matched only when parsing special tokens, hidden when decoding
	TypeUserDefined TokenType = 4 // added tokens such as <think>: always matched verbatim, decoded as their text
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6 // SentencePiece byte fallback <0xXX>
)

// Vocab is the tokenizer part of a model's metadata (the tokenizer.ggml.* keys), independent of any file
// reader. Special ids are -1 when absent; mind that the zero value of an id field is token 0.
type Vocab struct {
	Model  string // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
	Pre    string // tokenizer.ggml.pre: "llama-bpe", "smaug-bpe", "default", …
	Tokens []string
	Scores []float32 // SentencePiece merge priorities; nil means all zero
	Types  []int32   // TokenType of each token; nil means all normal
	Merges []string  // BPE merges "left right", best first

	BOS, EOS, UNK, EOT, EOM, PAD int32

	AddBOS, AddEOS *bool // tokenizer.ggml.add_bos_token / add_eos_token, when present
	AddSpacePrefix *bool // tokenizer.ggml.add_space_prefix, when present (SentencePiece; default true)
}

// EncodeOptions controls Encode.
type EncodeOptions struct {
	AddBOS bool // prepend the BOS token; pass t.AddsBOS() to follow the model's rule
	AddEOS bool // append the EOS token; pass t.AddsEOS() to follow the model's rule
	// ParseSpecial matches control tokens (<|begin_of_text|>, <|im_start|>, …) written in the text. Off, they
	// are tokenized as ordinary text, which is what user-supplied text needs. User-defined tokens are
	// matched either way.
	ParseSpecial bool
}

type modelKind int

const (
	kindBPE modelKind = iota
	kindSPM
)

// Tokenizer encodes and decodes text for one vocabulary.
type Tokenizer struct {
	model, pre string
	kind       modelKind
	tokens     []string
	types      []TokenType // effective types (llama.cpp promotes end-of-turn tokens to control)
	ids        map[string]int32
	pieces     [][]byte // the bytes each token stands for, special tokens as their text

	bos, eos, unk, eot, eom, pad int32
	addBOS, addEOS, spacePrefix  bool

	specials    []int32   // control, user-defined and unknown tokens: longest first, then by id
	specialHead [256]bool // first bytes of the specials, to find candidates quickly
	eog         []int32   // end-of-generation ids, ascending
	eogSet      map[int32]bool

	bpe *bpe
	spm *spm
}

// Texts of tokens that end a turn or the generation. llama.cpp marks every token with one of these texts
// as end-of-generation, and as a control token if the vocabulary typed it otherwise.
var eogTexts = []string{
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
	"<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
}

// Candidates for the end-of-turn token when tokenizer.ggml.eot_token_id is absent, in order of preference.
// (llama.cpp takes whichever its hash map yields first; for SmolLM3, which has both of the first two, it
// reports <|im_end|>, the token its chat template ends turns with.)
var eotTexts = []string{
	"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
	"_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
}

// Byte-level pre-tokenizers (tokenizer.ggml.pre) this package splits text for, as llama.cpp does. The
// first group uses the Llama 3 split, adds BOS by default, and emits a word that is itself a token
// without merging; the second uses the Llama 3 split alone; the third Qwen2's (Llama 3's with single
// digits); the fourth GPT-2's. "default", which an
// absent key also means, is llama.cpp's own four-expression split (splitDefault). Every other name
// is refused: its split is not implemented, and another one would give the model wrong tokens.
var (
	llama3Pres     = []string{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}
	llama3SplitPre = []string{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}
	qwen2Pres      = []string{"qwen2", "deepseek-r1-qwen", "megrez"}
	gpt2Pres       = []string{"gpt-2"}
)

// splitFor is the split of a byte-level pre-tokenizer, and whether it ignores merges; ok is false for a
// pre-tokenizer this package does not implement.
func splitFor(pre string) (split splitFunc, ignoreMerges, ok bool) {
	switch {
	case slices.Contains(llama3Pres, pre):
		return splitLlama3, true, true
	case slices.Contains(llama3SplitPre, pre):
		return splitLlama3, false, true
	case slices.Contains(qwen2Pres, pre):
		return splitQwen2, false, true
	case slices.Contains(gpt2Pres, pre):
		return splitGPT2, false, true
	case pre == "" || pre == "default":
		return splitDefault, false, true
	}
	return nil, false, false
}

// supportedPres lists the byte-level pre-tokenizers splitFor knows, for messages.
func supportedPres() string {
	return strings.Join(slices.Concat([]string{"default"}, gpt2Pres, llama3Pres, llama3SplitPre, qwen2Pres), ", ")
}

// New builds a tokenizer from a vocabulary. It fails on a vocabulary llama.cpp would refuse too: no
// tokens, an unknown model, short score or type arrays, special ids out of range, a BOS or EOS the model
// must add but lacks, or a malformed merge; and on a byte-level pre-tokenizer it does not implement.
// (SentencePiece has no pre-tokenizer: as in llama.cpp, Pre is ignored there.)
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: vocabulary has no tokens")
	}
	if int64(n) > 1<<31-1 {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens is too large", n)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	t := &Tokenizer{
		model: v.Model, pre: v.Pre,
		tokens: make([]string, n),
		types:  make([]TokenType, n),
		ids:    make(map[string]int32, n),
		bos:    v.BOS, eos: v.EOS, unk: v.UNK, eot: v.EOT, eom: v.EOM, pad: v.PAD,
	}
	switch v.Model {
	case "gpt2":
		t.kind = kindBPE
		if _, _, ok := splitFor(v.Pre); !ok {
			return nil, fmt.Errorf("tokenizer: pre-tokenizer %q (tokenizer.ggml.pre) is not supported: smolchat does not implement its text splitting, "+
				"and another split would give the model wrong tokens (supported: %s)", v.Pre, supportedPres())
		}
		t.addBOS = slices.Contains(llama3Pres, v.Pre)
	case "llama":
		t.kind = kindSPM
		t.addBOS = true
		t.spacePrefix = true
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer model %q (want \"gpt2\" or \"llama\")", v.Model)
	}
	if v.AddBOS != nil {
		t.addBOS = *v.AddBOS
	}
	if v.AddEOS != nil {
		t.addEOS = *v.AddEOS
	}
	if v.AddSpacePrefix != nil && t.kind == kindSPM {
		t.spacePrefix = *v.AddSpacePrefix
	}

	for i, s := range v.Tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i) // as llama.cpp: an empty special token would match everywhere
		}
		t.tokens[i] = s
		t.ids[s] = int32(i) // a duplicate text resolves to the later id
		t.types[i] = TypeNormal
		if v.Types != nil {
			t.types[i] = TokenType(v.Types[i])
			if t.types[i] < TypeUndefined || t.types[i] > TypeByte {
				t.types[i] = TypeUndefined
			}
		}
	}
	for _, f := range []struct {
		name string
		id   int32
	}{{"BOS", t.bos}, {"EOS", t.eos}, {"UNK", t.unk}, {"EOT", t.eot}, {"EOM", t.eom}, {"PAD", t.pad}} {
		if f.id < -1 || f.id >= int32(n) {
			return nil, fmt.Errorf("tokenizer: %s id %d is outside the vocabulary of %d tokens", f.name, f.id, n)
		}
	}
	if t.addBOS && t.bos < 0 {
		return nil, errors.New("tokenizer: the model adds a BOS token but has no BOS id")
	}
	if t.addEOS && t.eos < 0 {
		return nil, errors.New("tokenizer: the model adds an EOS token but has no EOS id")
	}

	t.resolveEndTokens()
	t.buildPieces()
	for id, typ := range t.types {
		if typ == TypeControl || typ == TypeUserDefined || typ == TypeUnknown {
			t.specials = append(t.specials, int32(id))
			t.specialHead[t.tokens[id][0]] = true
		}
	}
	slices.SortStableFunc(t.specials, func(a, b int32) int {
		return cmp.Compare(len(t.tokens[b]), len(t.tokens[a]))
	})

	switch t.kind {
	case kindBPE:
		split, ignoreMerges, _ := splitFor(v.Pre)
		m, err := newBPE(t.ids, n, v.Merges, split, ignoreMerges)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		t.bpe = m
	case kindSPM:
		scores := make([]float32, n) // a copy: the caller may reuse v.Scores
		copy(scores, v.Scores)
		t.spm = newSPM(t.tokens, t.ids, scores, t.unk)
	}
	return t, nil
}

// resolveEndTokens finds the end-of-turn token by text when the metadata names none, and builds the
// end-of-generation set: EOS, EOT, EOM and every token whose text is in eogTexts. Like llama.cpp, it makes
// those tokens control tokens, so that user text containing "<|im_end|>" cannot end a turn.
func (t *Tokenizer) resolveEndTokens() {
	if t.eot < 0 {
		for _, s := range eotTexts {
			if id, ok := t.ids[s]; ok {
				t.eot = id
				t.types[id] = TypeControl
				break
			}
		}
	}
	if t.eom < 0 {
		if id, ok := t.ids["<|eom_id|>"]; ok {
			t.eom = id
			t.types[id] = TypeControl
		}
	}
	t.eogSet = map[int32]bool{}
	add := func(id int32) {
		if id >= 0 && !t.eogSet[id] {
			t.eogSet[id] = true
			t.eog = append(t.eog, id)
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.ids[s]; ok {
			add(id)
			t.types[id] = TypeControl
		}
	}
	add(t.eos)
	add(t.eot)
	add(t.eom)
	slices.Sort(t.eog)
}

// buildPieces precomputes the bytes of every token.
func (t *Tokenizer) buildPieces() {
	t.pieces = make([][]byte, len(t.tokens))
	for id, s := range t.tokens {
		switch t.types[id] {
		case TypeControl, TypeUnknown, TypeUserDefined:
			t.pieces[id] = []byte(s)
		case TypeNormal:
			if t.kind == kindBPE {
				t.pieces[id] = byteDecode(s)
			} else {
				t.pieces[id] = []byte(strings.ReplaceAll(s, spaceMarker, " "))
			}
		case TypeByte:
			if b, ok := parseByteToken(s); ok {
				t.pieces[id] = []byte{b}
			}
		default: // unused and undefined tokens stand for nothing, as in llama.cpp
			t.pieces[id] = nil
		}
	}
}

// parseByteToken reads a byte token "<0xXX>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(s[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		b = b<<4 | c
	}
	return b, true
}

// Encode tokenizes text. Invalid UTF-8 never fails: byte-level BPE reads each invalid byte as U+FFFD (as
// llama.cpp does) and SentencePiece spells it with byte tokens.
func (t *Tokenizer) Encode(text string, opt EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/4+2)
	if opt.AddBOS && t.bos >= 0 {
		out = append(out, t.bos)
	}
	if text != "" {
		frags := t.partition(text, opt.ParseSpecial)
		switch t.kind {
		case kindBPE:
			ws := &bpeWork{}
			for _, f := range frags {
				if f.token >= 0 {
					out = append(out, f.token)
					continue
				}
				out = t.bpe.encode(replaceInvalidUTF8(text[f.start:f.end]), out, ws)
			}
		case kindSPM:
			ws := &spmWork{}
			afterSpecial := true // the text start counts as following a special token
			for _, f := range frags {
				if f.token >= 0 {
					out = append(out, f.token)
					afterSpecial = true
					continue
				}
				out = t.spm.encode(text[f.start:f.end], t.spacePrefix && afterSpecial, out, ws)
				afterSpecial = false
			}
		}
	}
	if opt.AddEOS && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// fragment is a run of raw text [start, end) or, when token >= 0, a special token matched there.
type fragment struct {
	start, end int
	token      int32
}

// partition cuts the special tokens out of text, as llama.cpp does: special tokens are taken longest
// first, and each one splits every remaining text fragment at all its occurrences.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	frags := []fragment{{0, len(text), -1}}
	if len(t.specials) == 0 {
		return frags
	}
	// Only specials that occur somewhere can split anything; find them in one pass over the text.
	var present map[int32]bool
	for i := 0; i < len(text); i++ {
		if !t.specialHead[text[i]] {
			continue
		}
		for _, id := range t.specials {
			s := t.tokens[id]
			if s[0] != text[i] || present[id] || !t.matchable(id, parseSpecial) || !strings.HasPrefix(text[i:], s) {
				continue
			}
			if present == nil {
				present = map[int32]bool{}
			}
			present[id] = true
		}
	}
	if present == nil {
		return frags
	}
	for _, id := range t.specials { // longest first
		if !present[id] {
			continue
		}
		s := t.tokens[id]
		next := frags[:0:0]
		for _, f := range frags {
			if f.token >= 0 {
				next = append(next, f)
				continue
			}
			at := f.start
			for {
				k := strings.Index(text[at:f.end], s)
				if k < 0 {
					break
				}
				if k > 0 {
					next = append(next, fragment{at, at + k, -1})
				}
				next = append(next, fragment{at + k, at + k + len(s), id})
				at += k + len(s)
			}
			if at < f.end {
				next = append(next, fragment{at, f.end, -1})
			}
		}
		frags = next
	}
	return frags
}

func (t *Tokenizer) matchable(id int32, parseSpecial bool) bool {
	return parseSpecial || t.types[id] == TypeUserDefined
}

// replaceInvalidUTF8 replaces each byte that is not part of valid UTF-8 with U+FFFD.
func replaceInvalidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// AddsBOS reports whether the model wants BOS at the start of a prompt: tokenizer.ggml.add_bos_token when
// present; otherwise true for SentencePiece and for the Llama 3 family of byte-level pre-tokenizers, and
// false for the rest (SmolLM3's smaug-bpe among them).
func (t *Tokenizer) AddsBOS() bool { return t.addBOS }

// AddsEOS reports whether the model wants EOS at the end of a prompt (tokenizer.ggml.add_eos_token).
func (t *Tokenizer) AddsEOS() bool { return t.addEOS }

// TokenID returns the id of the token whose text is s, e.g. "<|im_start|>".
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	id, ok := t.ids[s]
	return id, ok
}

// Type returns a token's type after llama.cpp's adjustments (end-of-turn tokens become control tokens).
func (t *Tokenizer) Type(id int32) TokenType {
	if id < 0 || int(id) >= len(t.types) {
		return TypeUndefined
	}
	return t.types[id]
}

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Model is tokenizer.ggml.model ("gpt2" or "llama"); Pre is tokenizer.ggml.pre.
func (t *Tokenizer) Model() string { return t.model }

// Pre is the pre-tokenizer name (tokenizer.ggml.pre).
func (t *Tokenizer) Pre() string { return t.pre }

// BOS, EOS, EOT and PAD return the special ids, -1 when absent. EOT falls back to a token found by text
// (<|eot_id|>, <|im_end|>, …) when the metadata names none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence id, -1 when absent.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT returns the end-of-turn id, -1 when absent.
func (t *Tokenizer) EOT() int32 { return t.eot }

// PAD returns the padding id, -1 when absent.
func (t *Tokenizer) PAD() int32 { return t.pad }

// IsEOG reports whether generating id ends the generation.
func (t *Tokenizer) IsEOG(id int32) bool { return t.eogSet[id] }

// EOGs returns the end-of-generation ids in ascending order.
func (t *Tokenizer) EOGs() []int32 { return slices.Clone(t.eog) }
