package gpu

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/engine"
	"smolchat/engine/backendtest"
	"smolchat/internal/kvblock"
)

var _ engine.KVExporter = (*backend)(nil)

// TestExportImport runs engine.KVExporter's contract (backendtest) with either cache type: the export is
// the cache's own bytes, so the imported sequence computes bit for bit as the original (tolerance 0).
// The f32 cache takes the round trip alone: its bad input takes the f16 cache's paths.
func TestExportImport(t *testing.T) {
	m := synthModel(t)
	for _, c := range []struct {
		kv    string
		check func(*testing.T, backendtest.Model, backendtest.NewExporter, float64)
	}{{"f16", backendtest.ExportContract}, {"f32", backendtest.ExportRoundTrip}} {
		t.Run(c.kv, func(t *testing.T) {
			c.check(t, backendtest.Model{Vocab: m.Config.Vocab}, func(t *testing.T, ctx int, kvMemory int64) backendtest.Exporter {
				return openTestBackend(t, m, options{Context: ctx, KV: c.kv, KVMemory: kvMemory})
			}, 0)
		})
	}
}

// TestExportSubmitsAndLoss: an export longer than a submit's read-back bound reads a submit per block
// and writes what one submit writes; after the device is lost, export and import fail with an error
// wrapping engine.ErrBackendLost, and the import makes no sequence.
func TestExportSubmitsAndLoss(t *testing.T) {
	m := synthModel(t)
	b := openTestBackend(t, m, options{Context: 2 * kvBlockLen, KV: "f16"})
	id := b.NewSeq()
	n := kvBlockLen + 10
	if _, err := b.ForwardSeqs(context.Background(), []engine.SeqEntry{{Seq: id, Tokens: backendtest.SeqTokens(m.Config.Vocab, n, 1)}}); err != nil {
		t.Fatal(err)
	}
	s, _ := kvblock.Get(&b.Seqs, id)
	var one, each bytes.Buffer
	for _, c := range []struct {
		w       *bytes.Buffer
		maxRead int
		submits int64
	}{{&one, maxExportRead, 1}, {&each, 1, 2}} {
		before := b.d.Stats().Submits
		if err := b.export(s.Blocks, 0, n, c.w, c.maxRead); err != nil {
			t.Fatal(err)
		}
		if got := b.d.Stats().Submits - before; got != c.submits {
			t.Errorf("reading back at most %d bytes a submit: %d submits, want %d", c.maxRead, got, c.submits)
		}
	}
	if !bytes.Equal(one.Bytes(), each.Bytes()) {
		t.Error("the export in a submit a block differs from the export in one submit")
	}

	used := b.KV().Used
	b.d.onLost(wgpu.DeviceLostReasonUnknown, "simulated driver reset")
	if err := b.ExportSeq(id, 0, n, &bytes.Buffer{}); !errors.Is(err, engine.ErrBackendLost) {
		t.Errorf("export on a lost device: %v, want ErrBackendLost", err)
	}
	if _, err := b.ImportSeq(&one, n); !errors.Is(err, engine.ErrBackendLost) {
		t.Errorf("import on a lost device: %v, want ErrBackendLost", err)
	}
	if b.KV().Used != used {
		t.Errorf("%d blocks used after the failed import, want %d", b.KV().Used, used)
	}
}

// kvEngine loads the model at path on the GPU with the KV disk cache in kvDir ("": off).
func kvEngine(t testing.TB, path, kvDir string, kvMax int64, log *slog.Logger) *engine.Engine {
	t.Helper()
	return loadEngineWith(t, engine.LoadOptions{Path: path, Context: 1024, Parallel: 2, KVDisk: kvDir, KVDiskMax: kvMax, Log: log})
}

// TestEngineKVDisk runs the engine's disk cache across a restart on the GPU (backendtest.EngineKVDisk):
// the answer after the restart is that of an engine evaluating the whole prompt, up to its first near
// tie (nearTie), as for batching.
func TestEngineKVDisk(t *testing.T) { backendtest.EngineKVDisk(t, kvEngine, nearTie) }

// TestKVDiskAcrossBackends shares one disk cache directory between the CPU and the GPU backends on one
// model: their formats differ (the CPU promises bit-identical answers from its own keys, KVFormat), so
// each evaluates the other's conversations again, and neither removes the other's files.
func TestKVDiskAcrossBackends(t *testing.T) {
	path := backendtest.WriteSynth(t, "smollm3-tiny", 7)
	dir := filepath.Join(t.TempDir(), "kv")
	params := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0}, MaxTokens: 4}
	c, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: 1024,
		KVDisk: dir, KVDiskMax: engine.DefaultKVDiskMax, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	first := backendtest.EngineTokens(c, 100, 1)
	r1, err := c.Generate(context.Background(), first, params, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cpuFormat := c.Backend().(engine.KVExporter).KVFormat()
	c.Close()
	cpuFiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.kv"))
	if len(cpuFiles) == 0 {
		t.Fatal("the CPU engine wrote no file")
	}
	g := kvEngine(t, path, dir, engine.DefaultKVDiskMax, slog.New(slog.DiscardHandler))
	if g.Backend().(engine.KVExporter).KVFormat() == cpuFormat {
		t.Fatal("the GPU's KV format is the CPU's")
	}
	next := slices.Concat(first, r1.Tokens, backendtest.EngineTokens(g, 10, 2))
	r2, err := g.Generate(context.Background(), next, params, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Timings.CachedTokens != 0 {
		t.Errorf("the GPU engine used %d positions of the CPU's file", r2.Timings.CachedTokens)
	}
	g.Close()
	for _, f := range cpuFiles {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the CPU's file after the GPU engine ran: %v", err)
		}
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*", "*.kv"))
	if len(all) <= len(cpuFiles) {
		t.Errorf("%d files after both ran, want the GPU's beside the CPU's %d", len(all), len(cpuFiles))
	}
}

// BenchmarkReturnAfterRestart is the time to first token of a 3,000-token conversation's next turn
// after a restart, its positions read from the disk cache (backendtest.ReturnAfterRestart): the GPU
// twin of cpu.BenchmarkReturnAfterRestart. It loads $SMOLCHAT_BENCH_MODEL when set, else the shared
// tiny SmolLM3-shaped file, with --parallel 4.
func BenchmarkReturnAfterRestart(b *testing.B) {
	path := benchModel(b)
	backendtest.ReturnAfterRestart(b, func(b *testing.B, dir string) *engine.Engine {
		return loadEngineWith(b, engine.LoadOptions{Path: path, Context: 4096, Parallel: 4, KVDisk: dir, KVDiskMax: engine.DefaultKVDiskMax})
	})
}

// BenchmarkReturnToConversation is the same turn after another conversation, from the conversation
// cache in memory (backendtest.ReturnToConversation), for comparison.
func BenchmarkReturnToConversation(b *testing.B) {
	backendtest.ReturnToConversation(b, loadEngineWith(b, engine.LoadOptions{Path: benchModel(b), Context: 4096, Parallel: 4}))
}
