package tokenizer

import (
	"fmt"

	"smolchat/model/gguf"
)

// Metadata keys read by FromGGUF.
const (
	keyModel          = "tokenizer.ggml.model"
	keyPre            = "tokenizer.ggml.pre"
	keyTokens         = "tokenizer.ggml.tokens"
	keyScores         = "tokenizer.ggml.scores"
	keyTypes          = "tokenizer.ggml.token_type"
	keyMerges         = "tokenizer.ggml.merges"
	keyBOS            = "tokenizer.ggml.bos_token_id"
	keyEOS            = "tokenizer.ggml.eos_token_id"
	keyUNK            = "tokenizer.ggml.unknown_token_id"
	keyEOT            = "tokenizer.ggml.eot_token_id"
	keyEOM            = "tokenizer.ggml.eom_token_id"
	keyPAD            = "tokenizer.ggml.padding_token_id"
	keyAddBOS         = "tokenizer.ggml.add_bos_token"
	keyAddEOS         = "tokenizer.ggml.add_eos_token"
	keyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
)

// noToken is the id converters store for "no such token" (as stories260K does for padding).
const noToken = 0xFFFFFFFF

// VocabFromGGUF reads the tokenizer.ggml.* keys. Like llama.cpp, a SentencePiece vocabulary without
// BOS/EOS/UNK keys gets the LLaMA defaults 1, 2 and 0, and a special id of 0xFFFFFFFF means none. Any
// other id outside the vocabulary is refused: llama.cpp would fall back to a default id, and a model
// run with the wrong end or start token gives wrong answers.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	var v Vocab
	var ok bool
	if v.Model, ok = f.String(keyModel); !ok {
		return v, missingOrMistyped(f, keyModel, "a string")
	}
	if _, present := f.Get(keyPre); present {
		if v.Pre, ok = f.String(keyPre); !ok {
			return v, missingOrMistyped(f, keyPre, "a string")
		}
	}
	if v.Tokens, ok = f.Strings(keyTokens); !ok {
		return v, missingOrMistyped(f, keyTokens, "an array of strings")
	}
	if _, present := f.Get(keyScores); present {
		if v.Scores, ok = f.Float32s(keyScores); !ok {
			ints, isInt := f.Int32s(keyScores)
			if !isInt {
				return v, missingOrMistyped(f, keyScores, "an array of float32")
			}
			v.Scores = make([]float32, len(ints))
			for i, s := range ints {
				v.Scores[i] = float32(s)
			}
		}
	}
	if _, present := f.Get(keyTypes); present {
		if v.Types, ok = f.Int32s(keyTypes); !ok {
			return v, missingOrMistyped(f, keyTypes, "an array of int32")
		}
	}
	if v.Model == "gpt2" {
		if v.Merges, ok = f.Strings(keyMerges); !ok {
			return v, missingOrMistyped(f, keyMerges, "an array of strings")
		}
	}

	n := uint64(len(v.Tokens))
	v.BOS, v.EOS, v.UNK, v.EOT, v.EOM, v.PAD = -1, -1, -1, -1, -1, -1
	if v.Model == "llama" {
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		for _, id := range []*int32{&v.BOS, &v.EOS, &v.UNK} {
			if uint64(*id) >= n {
				*id = -1
			}
		}
	}
	for _, s := range []struct {
		key string
		dst *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyUNK, &v.UNK}, {keyEOT, &v.EOT}, {keyEOM, &v.EOM}, {keyPAD, &v.PAD}} {
		if _, present := f.Get(s.key); !present || n == 0 { // no tokens: New refuses the vocabulary
			continue
		}
		if i, ok := f.Int(s.key); ok && i < 0 {
			return v, badID(f, s.key, i, n)
		}
		id, ok := f.Uint(s.key)
		switch {
		case !ok:
			return v, missingOrMistyped(f, s.key, "an unsigned integer")
		case id == noToken:
			*s.dst = -1
		case id >= n:
			return v, badID(f, s.key, int64(id), n)
		default:
			*s.dst = int32(id)
		}
	}
	for key, dst := range map[string]**bool{keyAddBOS: &v.AddBOS, keyAddEOS: &v.AddEOS, keyAddSpacePrefix: &v.AddSpacePrefix} {
		if _, present := f.Get(key); !present {
			continue
		}
		b, ok := f.Bool(key)
		if !ok {
			return v, missingOrMistyped(f, key, "a bool")
		}
		*dst = &b
	}
	return v, nil
}

// FromGGUF builds the tokenizer described by a GGUF file's metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	t, err := New(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return t, nil
}

func badID(f *gguf.File, key string, id int64, n uint64) error {
	return fmt.Errorf("%s: tokenizer: %s = %d is not an id of the %d-token vocabulary "+
		"(a damaged or wrongly converted file: convert or download the model again)", f.Path, key, id, n)
}

func missingOrMistyped(f *gguf.File, key, want string) error {
	kv, present := f.Get(key)
	if !present {
		return fmt.Errorf("%s: tokenizer: metadata key %s is missing", f.Path, key)
	}
	desc := kv.Type.String()
	if a, isArray := kv.Value.(gguf.Array); isArray {
		desc = "array of " + a.Type.String()
	}
	return fmt.Errorf("%s: tokenizer: metadata key %s is %s, want %s", f.Path, key, desc, want)
}
