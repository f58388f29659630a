package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"smolchat/model/gguf"
)

// badFile is the remedy for metadata no correct conversion writes.
const badFile = "(a damaged or wrongly converted file: convert or download the model again)"

// keys reads an architecture's hyperparameter keys ("{arch}.…"). A key that is absent takes its
// default; a key that is present with a value smolchat cannot use is recorded in bad, with its value.
type keys struct {
	f    *gguf.File
	arch string
	bad  []string
}

// required is count's default for a key that must be present.
const required = -1

// count reads a positive integer, or def when the key is absent (def may be required).
func (k *keys) count(key string, def int) int {
	full := k.arch + "." + key
	if _, present := k.f.Get(full); !present {
		if def == required {
			k.bad = append(k.bad, full+" is missing")
			return 0
		}
		return def
	}
	v, ok := k.f.Uint(full)
	if !ok || v == 0 || v > math.MaxInt32 {
		k.bad = append(k.bad, k.show(key)+", want a positive integer")
		return max(def, 0)
	}
	return int(v)
}

// positive reads a finite number above 0, or def when the key is absent.
func (k *keys) positive(key string, def float64) float64 {
	full := k.arch + "." + key
	if _, present := k.f.Get(full); !present {
		return def
	}
	v, ok := k.f.Float(full)
	if !ok || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		k.bad = append(k.bad, k.show(key)+", want a finite number above 0")
		return def
	}
	return v
}

// err reports the bad keys found so far, all in one error.
func (k *keys) err() error {
	if len(k.bad) == 0 {
		return nil
	}
	return fmt.Errorf("model %s: %s %s", k.f.Path, strings.Join(k.bad, "; "), badFile)
}

// show is "{arch}.key = value", for messages.
func (k *keys) show(key string) string {
	return showKV(k.f, k.arch+"."+key)
}

// showKV is "key = value" as the file holds it: strings quoted, arrays by their length and type.
func showKV(f *gguf.File, key string) string {
	kv, ok := f.Get(key)
	if !ok {
		return key + " (absent)"
	}
	switch v := kv.Value.(type) {
	case string:
		return key + " = " + strconv.Quote(v)
	case gguf.Array:
		return fmt.Sprintf("%s = an array of %d %s", key, v.Len(), v.Type)
	}
	return fmt.Sprintf("%s = %v", key, kv.Value)
}
