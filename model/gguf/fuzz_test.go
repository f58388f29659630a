package gguf

import (
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must return a File or an error, never panic, and a
// parsed File's tensors must lie inside the data.
func FuzzParse(f *testing.F) {
	good := build(f)
	f.Add(good)
	f.Add(good[:64])
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		for _, tn := range g.Tensors {
			if d := g.Data(tn); uint64(len(d)) != tn.Size {
				t.Fatalf("tensor %q: %d bytes, want %d", tn.Name, len(d), tn.Size)
			}
		}
	})
}
