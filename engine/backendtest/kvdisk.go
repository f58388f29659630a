package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"smolchat/engine"
	"smolchat/internal/testutil"
)

// Exporter is a SeqBackend that the conversation cache can spill to disk.
type Exporter interface {
	engine.SeqBackend
	engine.KVExporter
}

// NewExporter opens a backend as NewSeqBackend does.
type NewExporter func(t *testing.T, ctx int, kvMemory int64) Exporter

// ExportContract checks engine.KVExporter's contract, what the disk cache (engine/kvdisk.go) relies on:
// a sequence exported a block at a time, as the cache writes it, is the export of the whole range; it
// imports into another backend as a sequence of the same length, whose next logits are within tol of
// the original's (0: bit for bit); and bad ranges, short input, a context too small and a full pool are
// refused with an error, the pool left as it was.
func ExportContract(t *testing.T, m Model, newBackend NewExporter, tol float64) {
	t.Run("round trip", func(t *testing.T) { ExportRoundTrip(t, m, newBackend, tol) })
	t.Run("bad input", func(t *testing.T) { exportBadInput(t, m, newBackend) })
}

// ExportRoundTrip is ExportContract's round trip alone, for a variant of a backend whose bad input takes
// the same paths.
func ExportRoundTrip(t *testing.T, m Model, newBackend NewExporter, tol float64) {
	ctx := context.Background()
	a := newBackend(t, 512, 0)
	bl := a.KV().BlockLen
	prompt := SeqTokens(m.Vocab, bl+40, 1) // crosses a block boundary
	next := SeqTokens(m.Vocab, 5, 2)
	id := a.NewSeq()
	if _, err := a.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: id, Tokens: prompt}}); err != nil {
		t.Fatal(err)
	}
	var file, whole bytes.Buffer
	for from := 0; from < len(prompt); from += bl {
		if err := a.ExportSeq(id, from, min(from+bl, len(prompt)), &file); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ExportSeq(id, 0, len(prompt), &whole); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file.Bytes(), whole.Bytes()) {
		t.Errorf("the export a block at a time (%d bytes) is not the export of the whole range (%d bytes)", file.Len(), whole.Len())
	}
	var first bytes.Buffer
	if err := a.ExportSeq(id, 0, bl, &first); err != nil {
		t.Fatal(err)
	}
	if want := len(prompt) * first.Len() / bl; file.Len() != want {
		t.Errorf("exported %d bytes, want %d (%d a block)", file.Len(), want, first.Len())
	}
	b := newBackend(t, 512, 0)
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
	step := func(be Exporter, id engine.SeqID) [][]float32 {
		out, err := be.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: id, Tokens: next, Want: allRows(len(next))}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	want, got := step(a, id), step(b, imported)
	worst := 0.0
	for i := range want {
		e, ok := sameLogits(got[i], want[i], tol)
		worst = max(worst, e)
		if !ok {
			t.Fatalf("row %d after the import differs by %.3g (tolerance %.3g)", i, e, tol)
		}
	}
	t.Logf("after the import, logits differ from the original sequence's by at most %.3g", worst)
}

func exportBadInput(t *testing.T, m Model, newBackend NewExporter) {
	b := newBackend(t, 512, 0)
	bl := b.KV().BlockLen
	id := b.NewSeq()
	if _, err := b.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: SeqTokens(m.Vocab, 10, 1)}}); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	if err := b.ExportSeq(id, 0, 1, &block); err != nil {
		t.Fatal(err)
	}
	perPos := block.Len()
	used := b.KV().Used
	var w bytes.Buffer
	for _, c := range []struct {
		name string
		err  error
	}{
		{"unaligned start", b.ExportSeq(id, 3, 10, &w)},
		{"past the end", b.ExportSeq(id, 0, 11, &w)},
		{"unknown sequence", b.ExportSeq(id+100, 0, 1, &w)},
		{"short input", func() error { _, err := b.ImportSeq(bytes.NewReader(make([]byte, 5*perPos)), 10); return err }()},
		{"longer than the context", func() error { _, err := b.ImportSeq(bytes.NewReader(nil), b.MaxContext()+1); return err }()},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if b.KV().Used != used {
		t.Errorf("%d blocks used after the failures, want %d", b.KV().Used, used)
	}
	small := newBackend(t, bl, int64(b.KV().BlockBytes))
	if _, err := small.ImportSeq(bytes.NewReader(make([]byte, bl*perPos)), bl); err != nil {
		t.Fatalf("an import that fits: %v", err)
	}
	if _, err := small.ImportSeq(bytes.NewReader(make([]byte, perPos)), 1); !errors.Is(err, engine.ErrKVFull) {
		t.Errorf("an import into a full pool: %v, want ErrKVFull", err)
	}
}

// LoadEngine loads the model at path for a test, with the KV disk cache in kvDir at most kvMax bytes
// (kvDir "": off), logging to log. The test closes the engine.
type LoadEngine func(t testing.TB, path, kvDir string, kvMax int64, log *slog.Logger) *engine.Engine

// EngineKVDisk restarts an engine between a conversation's turns: with the disk cache the next turn
// starts after the first turn's positions, read from disk, and its answer is the one an engine that
// evaluates the whole prompt gives, up to the first near tie (SameUpToTie; 0: exactly); with
// --kv-disk-max 0 nothing is written; a damaged file is removed with a log line and the prompt
// evaluated in full; a restart with another model file (same shape, other weights) evaluates it all and
// leaves the first model's file alone.
func EngineKVDisk(t *testing.T, load LoadEngine, tie float64) {
	path := WriteSynth(t, "smollm3-tiny", 7)
	other := WriteSynth(t, "smollm3-tiny", 8)
	quiet := slog.New(slog.DiscardHandler)
	refs := map[string]engine.Result{} // evaluations in full, by model and prompt
	for _, c := range []struct {
		name      string
		max       int64
		wantFiles bool
		damage    bool   // flip a byte in the middle of the files
		restart   string // the model file after the restart
		wantHit   bool
	}{
		{"on", engine.DefaultKVDiskMax, true, false, path, true},
		{"off", 0, false, false, path, false},
		{"damaged", engine.DefaultKVDiskMax, true, true, path, false},
		{"other model", engine.DefaultKVDiskMax, true, false, other, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "kv")
			var log testutil.LogBuffer
			withDisk := func(path string) *engine.Engine {
				if c.max == 0 {
					return load(t, path, "", 0, quiet)
				}
				return load(t, path, dir, c.max, slog.New(slog.NewTextHandler(&log, nil)))
			}
			params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 8}
			e1 := withDisk(path)
			first := EngineTokens(e1, 270, 1) // crosses a block boundary
			r1, err := e1.Generate(context.Background(), first, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			e1.Close()
			files := diskFiles(t, dir)
			if (len(files) > 0) != c.wantFiles {
				t.Fatalf("files after close: %v; want some: %v", files, c.wantFiles)
			}
			if c.damage {
				for _, f := range files {
					flipMiddle(t, f)
				}
			}

			e2 := withDisk(c.restart)
			next := slices.Concat(first, r1.Tokens, EngineTokens(e2, 30, 2))
			r2, err := e2.Generate(context.Background(), next, params, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprint(c.restart, next)
			fresh, ok := refs[key]
			if !ok {
				refParams := params
				refParams.Logprobs, refParams.TopLogprobs = true, 2
				if fresh, err = load(t, c.restart, "", 0, quiet).Generate(context.Background(), next, refParams, false, nil); err != nil {
					t.Fatal(err)
				}
				refs[key] = fresh
			}
			if n, ok := SameUpToTie(r2.Tokens, fresh, tie); !ok {
				t.Errorf("after a restart %v, evaluated in full %v (compared %d tokens)", r2.Tokens, fresh.Tokens, n)
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
			for _, f := range files {
				// A hit's file may be replaced by the longer conversation's; the others are checked.
				if _, err := os.Stat(f); !c.wantHit && (err == nil) == c.damage {
					t.Errorf("the first turn's file %s: exists %v, want %v", f, err == nil, !c.damage)
				}
			}
			if l := log.String(); c.damage && (!strings.Contains(l, "removing a KV cache file") || !strings.Contains(l, "checksum mismatch")) {
				t.Errorf("the log does not say the damaged file was removed:\n%s", l)
			}
		})
	}
}

// flipMiddle flips a bit of the byte in the middle of a file: one of its keys or values.
func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// diskFiles lists the files under dir and its subdirectories (none when dir does not exist) but the
// directories' lock files.
func diskFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return filepath.SkipAll
		}
		if err == nil && e.Type().IsRegular() && filepath.Base(path) != "lock" {
			names = append(names, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// SameUpToTie reports whether got is ref's tokens up to the first near tie of ref (a step whose two
// most likely tokens' log probabilities are within tie; ref was generated with two top logprobs),
// where rounding may pick either, and how many tokens it compared. With tie 0 every token is compared.
func SameUpToTie(got []int32, ref engine.Result, tie float64) (int, bool) {
	want := ref.Tokens
	for j := range want {
		if tie == 0 || j >= len(ref.Logprobs) {
			break
		}
		if top := ref.Logprobs[j].Top; len(top) == 2 && float64(top[0].Logprob-top[1].Logprob) < tie {
			want, got = want[:j], got[:min(j, len(got))]
			break
		}
	}
	return len(want), slices.Equal(got, want)
}
