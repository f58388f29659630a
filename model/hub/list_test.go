package hub

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/quant"
)

type kv struct {
	key   string
	value any
}

type tensor struct {
	name string
	typ  quant.Type
}

// writeGGUF writes a small model with the given metadata and zero-filled 256x4 tensors.
func writeGGUF(t *testing.T, path string, kvs []kv, tensors []tensor) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter(f)
	for _, p := range kvs {
		w.AddKV(p.key, p.value)
	}
	for _, tt := range tensors {
		if err := w.AddTensor(tt.name, tt.typ, []uint64{256, 4}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tensors {
		row, _ := tt.typ.RowBytes(256)
		if err := w.WriteTensor(tt.name, make([]byte, 4*row)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	writeGGUF(t, filepath.Join(dir, "smol-Q4_K_M.gguf"),
		[]kv{{"general.architecture", "smollm3"}, {"general.file_type", uint32(15)}},
		[]tensor{{"blk.0.ffn_up.weight", quant.Q4_K}, {"output_norm.weight", quant.F32}})
	// No general.file_type: the type holding the most bytes names it (2 Q8_0 tensors, 2176 bytes,
	// outweigh 1 F16 tensor, 2048 bytes, though F16 is the bigger type).
	writeGGUF(t, filepath.Join(dir, "guess.GGUF"),
		[]kv{{"general.architecture", "llama"}},
		[]tensor{{"w1", quant.Q8_0}, {"norm", quant.F16}, {"w2", quant.Q8_0}})
	// An unknown file_type falls back to the tensors too.
	writeGGUF(t, filepath.Join(dir, "future.gguf"),
		[]kv{{"general.file_type", uint32(999)}},
		[]tensor{{"w", quant.Q6_K}})
	os.WriteFile(filepath.Join(dir, "broken.gguf"), []byte("not a model"), 0o644)
	os.WriteFile(filepath.Join(dir, "next.gguf.partial"), make([]byte, 1234), 0o644)
	os.WriteFile(filepath.Join(dir, "next.gguf.partial.meta"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden.gguf"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.gguf"), 0o755)

	models, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, quant, arch string
		incomplete, bad   bool
	}{
		{name: "broken.gguf", bad: true},
		{name: "future.gguf", quant: "Q6_K"},
		{name: "guess.GGUF", quant: "Q8_0", arch: "llama"},
		{name: "next.gguf.partial", incomplete: true},
		{name: "smol-Q4_K_M.gguf", quant: "Q4_K_M", arch: "smollm3"},
	}
	if len(models) != len(want) {
		for _, m := range models {
			t.Logf("%+v", m)
		}
		t.Fatalf("List found %d entries, want %d", len(models), len(want))
	}
	for i, w := range want {
		m := models[i]
		if m.Name != w.name || m.Quantization != w.quant || m.Architecture != w.arch ||
			m.Incomplete != w.incomplete || (m.Err != nil) != w.bad {
			t.Errorf("entry %d = %+v, want %+v", i, m, w)
		}
		if st, _ := os.Stat(m.Path); st == nil || m.Size != st.Size() {
			t.Errorf("%s: size %d does not match the file", m.Name, m.Size)
		}
	}
	var fe *gguf.FormatError
	if !errors.As(models[0].Err, &fe) {
		t.Errorf("broken.gguf error = %v, want a gguf.FormatError", models[0].Err)
	}
}

func TestListMissingDir(t *testing.T) {
	models, err := List(filepath.Join(t.TempDir(), "absent"))
	if err != nil || len(models) != 0 {
		t.Errorf("List(missing) = %v, %v; want nothing and no error", models, err)
	}
}

func TestListSharedFixture(t *testing.T) {
	path := testutil.SharedFile(t, "stories260K.gguf")
	arch, q, err := describe(path)
	if err != nil || arch != "llama" || q != "F32" {
		t.Errorf("describe(stories260K.gguf) = %q, %q, %v; want llama, F32", arch, q, err)
	}
}
