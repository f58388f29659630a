package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/quant"
)

// build writes a small GGUF image with every metadata type and two tensors.
func build(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.AddKV("general.architecture", "llama")
	w.AddKV("u8", uint8(7))
	w.AddKV("i8", int8(-7))
	w.AddKV("u16", uint16(65535))
	w.AddKV("i16", int16(-300))
	w.AddKV("u32", uint32(1<<31))
	w.AddKV("i32", int32(-5))
	w.AddKV("f32", float32(1.5))
	w.AddKV("bool", true)
	w.AddKV("u64", uint64(1<<40))
	w.AddKV("i64", int64(-1<<40))
	w.AddKV("f64", math.Pi)
	w.AddKV("strs", []string{"a", "", "ĠHello"})
	w.AddKV("f32s", []float32{1, -2.5})
	w.AddKV("nested", []Array{{TypeInt32, []int32{1, 2}}, {TypeString, []string{"x"}}})
	if err := w.AddTensor("tensor.a", quant.F32, []uint64{4, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("tensor.b", quant.Q8_0, []uint64{32}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	a := make([]byte, 32)
	for i := range 8 {
		binary.LittleEndian.PutUint32(a[4*i:], math.Float32bits(float32(i)))
	}
	if err := w.WriteTensor("tensor.a", a); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("tensor.b", bytes.Repeat([]byte{1}, 34)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := build(t)
	f, err := Parse(data, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || f.DataOffset%32 != 0 {
		t.Fatalf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	want := map[string]any{"u8": uint8(7), "i8": int8(-7), "u16": uint16(65535), "i16": int16(-300),
		"u32": uint32(1 << 31), "i32": int32(-5), "f32": float32(1.5), "bool": true, "u64": uint64(1 << 40),
		"i64": int64(-1 << 40), "f64": math.Pi, "general.architecture": "llama"}
	for k, v := range want {
		kv, ok := f.Get(k)
		if !ok || !reflect.DeepEqual(kv.Value, v) {
			t.Errorf("%s = %#v, want %#v", k, kv.Value, v)
		}
	}
	if s, _ := f.Strings("strs"); !reflect.DeepEqual(s, []string{"a", "", "ĠHello"}) {
		t.Errorf("strs = %q", s)
	}
	if v, _ := f.Float32s("f32s"); !reflect.DeepEqual(v, []float32{1, -2.5}) {
		t.Errorf("f32s = %v", v)
	}
	kv, _ := f.Get("nested")
	if n := kv.Value.(Array).Values.([]Array); len(n) != 2 || !reflect.DeepEqual(n[0].Values, []int32{1, 2}) {
		t.Errorf("nested = %#v", kv.Value)
	}
	if i, ok := f.Int("i32"); !ok || i != -5 {
		t.Errorf("Int(i32) = %d %v", i, ok)
	}
	if u, ok := f.Uint("i32"); ok {
		t.Errorf("Uint of a negative value = %d, want not ok", u)
	}
	if x, ok := f.Float("f32"); !ok || x != 1.5 {
		t.Errorf("Float = %v", x)
	}
	ta := f.Tensor("tensor.a")
	if ta == nil || ta.Rows() != 2 || ta.Size != 32 {
		t.Fatalf("tensor a = %+v", ta)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(f.Data(ta)[28:])); got != 7 {
		t.Errorf("a[7] = %v", got)
	}
	tb := f.Tensor("tensor.b")
	if tb.Offset%32 != 0 || tb.Size != 34 || f.Data(tb)[0] != 1 {
		t.Errorf("tensor b = %+v", tb)
	}
	if f.Tensor("missing") != nil {
		t.Error("missing tensor found")
	}
}

func TestOpenFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, build(t), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Tensor("tensor.a") == nil {
		t.Fatal("no tensor a")
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope.gguf")); err == nil {
		t.Error("missing file opened")
	}
	empty := filepath.Join(t.TempDir(), "empty.gguf")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty: %v", err)
	}
}

// corrupt returns a copy of data with f applied.
func corrupt(data []byte, f func(b []byte) []byte) []byte {
	return f(append([]byte(nil), data...))
}

// offsetOf finds the byte offset of a tensor info's name in the header, to patch fields after it.
func offsetOf(t *testing.T, data []byte, name string) int {
	t.Helper()
	i := bytes.Index(data, append(binary.LittleEndian.AppendUint64(nil, uint64(len(name))), name...))
	if i < 0 {
		t.Fatalf("%q not in header", name)
	}
	return i + 8 + len(name)
}

func TestCorrupt(t *testing.T) {
	good := build(t)
	a := offsetOf(t, good, "tensor.a") // n_dims u32, ne0 u64, ne1 u64, type u32, offset u64
	b := offsetOf(t, good, "tensor.b") // n_dims u32, ne0 u64, type u32, offset u64
	put32 := func(at int, v uint32) func([]byte) []byte {
		return func(d []byte) []byte { binary.LittleEndian.PutUint32(d[at:], v); return d }
	}
	put64 := func(at int, v uint64) func([]byte) []byte {
		return func(d []byte) []byte { binary.LittleEndian.PutUint64(d[at:], v); return d }
	}
	strs := bytes.Index(good, []byte("strs")) + 4 + 4 + 4 // key, array tag, element type → count
	cases := []struct {
		name, want string
		mutate     func([]byte) []byte
	}{
		{"empty", "need 4 bytes", func(d []byte) []byte { return nil }},
		{"bad magic", "bad magic", func(d []byte) []byte { copy(d, "GGML"); return d }},
		{"version 1", "version 1 is no longer supported", put32(4, 1)},
		{"version 4", "unsupported GGUF version 4", put32(4, 4)},
		{"byte-swapped", "byte-swapped", put32(4, 3<<24)},
		{"tensor count too large", "tensor count at offset 8: count", put64(8, 1<<60)},
		{"kv count too large", "metadata count at offset 16: count", put64(16, 1<<62)},
		{"truncated header", "cannot fit in the 84 bytes", func(d []byte) []byte { return d[:100] }},
		{"huge string length", "string length", put64(24, 1<<50)},
		{"huge array count", "cannot fit", put64(strs, 1<<40)},
		{"unknown value type", "unknown value type 99", func(d []byte) []byte {
			i := bytes.Index(d, []byte("u8")) + 2
			binary.LittleEndian.PutUint32(d[i:], 99)
			return d
		}},
		{"zero dims", "0 dimensions", put32(a, 0)},
		{"five dims", "5 dimensions", put32(a, 5)},
		{"unknown tensor type", "unknown tensor type 77", put32(a+4+16, 77)},
		{"ne0 not a block multiple", "not a multiple of the block size 32", put64(b+4, 33)},
		{"dims overflow", "overflows", func(d []byte) []byte {
			binary.LittleEndian.PutUint64(d[a+4:], 1<<40)
			binary.LittleEndian.PutUint64(d[a+12:], 1<<40)
			return d
		}},
		{"misaligned offset", "not a multiple of the alignment", put64(b+4+8+4, 33)},
		{"data outside file", "outside the file", put64(b+4+8+4, 1<<20)},
		{"truncated data", "truncated file", func(d []byte) []byte { return d[:len(d)-10] }},
		{"duplicate tensor", "duplicate tensor name", func(d []byte) []byte { d[b-1] = 'a'; return d }},
		{"duplicate key", "duplicate metadata key", func(d []byte) []byte {
			i := bytes.Index(d, []byte("i8"))
			d[i] = 'u'
			return d
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(corrupt(good, c.mutate), "bad.gguf")
			if err == nil {
				t.Fatal("parsed a corrupt file")
			}
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "bad.gguf") {
				t.Errorf("error %q does not name the file as a FormatError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to mention %q", err, c.want)
			}
			t.Logf("%s", err)
		})
	}
}

func TestAlignment(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.AddKV("general.alignment", uint32(64))
	w.AddTensor("x", quant.F32, []uint64{3})
	w.AddTensor("y", quant.F32, []uint64{3})
	w.WriteHeader()
	w.WriteTensor("x", make([]byte, 12))
	w.WriteTensor("y", make([]byte, 12))
	w.Close()
	f, err := Parse(buf.Bytes(), "a64")
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 || f.Tensor("y").Offset != 64 {
		t.Errorf("alignment %d data %d y@%d", f.Alignment, f.DataOffset, f.Tensor("y").Offset)
	}
	buf.Reset()
	w = NewWriter(&buf)
	w.AddKV("general.alignment", uint32(3))
	w.Close()
	if _, err := Parse(buf.Bytes(), "a3"); err == nil || !strings.Contains(err.Error(), "power-of-two") {
		t.Errorf("alignment 3: %v", err)
	}
}

// TestSharedFiles parses every GGUF fixture in ../shared/testdata.
func TestSharedFiles(t *testing.T) {
	for _, c := range []struct {
		name    string
		tensors int
		arch    string
	}{
		{"stories260K.gguf", 48, "llama"},
		{"ggml-vocab-llama-bpe.gguf", 0, "llama"},
		{"ggml-vocab-llama-spm.gguf", 0, "llama"},
		{"smollm3-tiny-synthetic-Q4_K_M.gguf", 74, "smollm3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(testutil.SharedFile(t, c.name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(f.Tensors) != c.tensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), c.tensors)
			}
			if a, _ := f.String("general.architecture"); a != c.arch {
				t.Errorf("arch %q, want %q", a, c.arch)
			}
			for _, tn := range f.Tensors {
				if len(f.Data(tn)) != int(tn.Size) {
					t.Errorf("%s: data %d bytes, want %d", tn.Name, len(f.Data(tn)), tn.Size)
				}
			}
		})
	}
}

// failWriter fails after n bytes, like a full disk.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errors.New("no space left on device")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriterReportsWriteErrors(t *testing.T) {
	w := NewWriter(&failWriter{n: 100})
	w.AddKV("general.architecture", "llama")
	w.AddTensor("x", quant.F32, []uint64{1 << 20})
	w.AddTensor("y", quant.F32, []uint64{1 << 20})
	if err := w.WriteHeader(); err != nil {
		t.Fatalf("header (buffered) failed early: %v", err)
	}
	big := make([]byte, 4<<20)
	err := w.WriteTensor("x", big)
	if err == nil {
		err = w.WriteTensor("y", big)
	}
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("got %v, want the write error", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed write returned nil")
	}
}
