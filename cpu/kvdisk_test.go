package cpu

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"smolchat/engine"
	"smolchat/engine/backendtest"
)

// TestExportImport exports a sequence that crosses a block boundary, a block at a time as the disk
// cache writes it, imports it into another backend, and evaluates the same next tokens on both: the
// logits must be bit for bit those of the sequence that never left memory, in every numerics mode.
func TestExportImport(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	prompt := seqTokens(m.Config.Vocab, kvBlock+40, 1)
	next := seqTokens(m.Config.Vocab, 5, 2)
	for _, num := range []Numerics{Fast, Llama, Exact} {
		t.Run(num.String(), func(t *testing.T) {
			a := newBackend(t, m, Options{Context: 2 * kvBlock, Threads: 2, Numerics: num})
			id := a.NewSeq()
			if _, err := a.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: prompt}}); err != nil {
				t.Fatal(err)
			}
			var file bytes.Buffer
			for from := 0; from < len(prompt); from += kvBlock {
				if err := a.ExportSeq(id, from, min(from+kvBlock, len(prompt)), &file); err != nil {
					t.Fatal(err)
				}
			}
			if want := len(prompt) * a.kv.blockBytes() / kvBlock; file.Len() != want {
				t.Errorf("exported %d bytes, want %d", file.Len(), want)
			}
			b := newBackend(t, m, Options{Context: 2 * kvBlock, Threads: 2, Numerics: num})
			if a.KVFormat() != b.KVFormat() {
				t.Fatalf("formats differ: %q, %q", a.KVFormat(), b.KVFormat())
			}
			imported, err := b.ImportSeq(&file, len(prompt))
			if err != nil {
				t.Fatal(err)
			}
			if file.Len() != 0 {
				t.Errorf("%d bytes left unread", file.Len())
			}
			if b.SeqLen(imported) != len(prompt) {
				t.Errorf("imported %d positions, want %d", b.SeqLen(imported), len(prompt))
			}
			step := func(be *Backend, id engine.SeqID) [][]float32 {
				out, err := be.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: next, Want: allRows(len(next))}})
				if err != nil {
					t.Fatal(err)
				}
				return out[0]
			}
			want, got := step(a, id), step(b, imported)
			for i := range want {
				if !slices.Equal(want[i], got[i]) {
					t.Fatalf("row %d after import differs (max |Δ| %g)", i, maxDiff(want[i], got[i]))
				}
			}
		})
	}
}

// TestExportImportBadInput: unaligned or out-of-range exports and short or oversized imports fail with
// an error and leave the pool as it was.
func TestExportImportBadInput(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	b := newBackend(t, m, Options{Context: 2 * kvBlock, Threads: 2})
	id := b.NewSeq()
	if _, err := b.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: seqTokens(m.Config.Vocab, 10, 1)}}); err != nil {
		t.Fatal(err)
	}
	used := b.KV().Used
	var w bytes.Buffer
	for _, c := range []struct {
		name string
		err  error
	}{
		{"unaligned start", b.ExportSeq(id, 3, 10, &w)},
		{"past the end", b.ExportSeq(id, 0, 11, &w)},
		{"unknown sequence", b.ExportSeq(id+100, 0, 1, &w)},
		{"short input", func() error { _, err := b.ImportSeq(bytes.NewReader(make([]byte, 100)), 10); return err }()},
		{"longer than the context", func() error { _, err := b.ImportSeq(bytes.NewReader(nil), 2*kvBlock+1); return err }()},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if b.KV().Used != used {
		t.Errorf("%d blocks used after the failures, want %d", b.KV().Used, used)
	}
	small := newBackend(t, m, Options{Context: kvBlock, Threads: 2, KVMemory: int64(b.kv.blockBytes())})
	if _, err := small.ImportSeq(bytes.NewReader(make([]byte, b.kv.blockBytes())), kvBlock); err != nil {
		t.Fatalf("an import that fits: %v", err)
	}
	if _, err := small.ImportSeq(bytes.NewReader(make([]byte, b.kv.blockBytes())), 1); !errors.Is(err, engine.ErrKVFull) {
		t.Errorf("an import into a full pool: %v, want ErrKVFull", err)
	}
}

// TestEngineKVDisk restarts an engine between a conversation's turns: with the disk cache the next
// turn starts after the first turn's positions, read from disk, and its answer is the one an engine
// that evaluates the whole prompt gives; with --kv-disk-max 0 nothing is written; a restart with
// another model file (same shape, other weights) removes the first model's file and evaluates it all.
func TestEngineKVDisk(t *testing.T) {
	path := backendtest.WriteSynth(t, "smollm3-tiny", 7)
	other := backendtest.WriteSynth(t, "smollm3-tiny", 8)
	for _, c := range []struct {
		name      string
		max       int64
		wantFiles bool
		restart   string // the model file after the restart
		wantHit   bool
	}{
		{"on", engine.DefaultKVDiskMax, true, path, true},
		{"off", 0, false, path, false},
		{"other model", engine.DefaultKVDiskMax, true, other, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "kv")
			load := func(path string, disk bool) *engine.Engine {
				o := engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: 1024, Parallel: 2,
					Log: slog.New(slog.DiscardHandler)}
				if disk {
					o.KVDisk, o.KVDiskMax = dir, c.max
				}
				e, err := engine.Load(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.Close() })
				return e
			}
			vocab := 0
			words := func(e *engine.Engine, n int, seed uint64) []int32 {
				vocab = e.Tokenizer().VocabSize()
				return slices.DeleteFunc(seqTokens(vocab, n, seed), e.Tokenizer().IsEOG)
			}
			params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 8}
			e1 := load(path, true)
			first := words(e1, 300, 1)
			r1, err := e1.Generate(context.Background(), first, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			e1.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "*"))
			if (len(files) > 0) != c.wantFiles {
				t.Fatalf("files after close: %v; want some: %v", files, c.wantFiles)
			}

			e2 := load(c.restart, true)
			next := slices.Concat(first, r1.Tokens, words(e2, 30, 2))
			r2, err := e2.Generate(context.Background(), next, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := load(c.restart, false).Generate(context.Background(), next, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r2.Tokens, fresh.Tokens) {
				t.Errorf("after a restart %v, evaluated in full %v", r2.Tokens, fresh.Tokens)
			}
			wantCached := 0
			if c.wantHit {
				wantCached = len(first) + len(r1.Tokens) - 1
			}
			if r2.Timings.CachedTokens != wantCached {
				t.Errorf("cached tokens %d, want %d", r2.Timings.CachedTokens, wantCached)
			}
			if !c.wantFiles {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("--kv-disk-max 0 made the directory %s", dir)
				}
			}
			if c.wantFiles && !c.wantHit {
				for _, f := range files {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("the other model's file %s is still there", f)
					}
				}
			}
		})
	}
}
