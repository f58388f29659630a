package cpu

import (
	"context"
	"log/slog"
	"testing"

	"smolchat/engine"
	"smolchat/engine/backendtest"
)

// TestExportImport runs engine.KVExporter's contract (backendtest) in every numerics mode: the export is
// the cache's own bytes, so a sequence read back computes bit for bit as before (tolerance 0).
func TestExportImport(t *testing.T) {
	m := backendtest.OpenSynth(t, "smollm3-tiny", 7)
	for _, num := range []Numerics{Fast, Llama, Exact} {
		t.Run(num.String(), func(t *testing.T) {
			backendtest.ExportContract(t, backendtest.Model{Vocab: m.Config.Vocab}, func(t *testing.T, ctx int, kvMemory int64) backendtest.Exporter {
				return newBackend(t, m, Options{Context: ctx, Threads: 2, Numerics: num, KVMemory: kvMemory})
			}, 0)
		})
	}
}

// TestEngineKVDisk runs the engine's disk cache across a restart on the CPU (backendtest.EngineKVDisk):
// the conversation read back from disk answers exactly as one evaluated again.
func TestEngineKVDisk(t *testing.T) {
	backendtest.EngineKVDisk(t, func(t testing.TB, path, kvDir string, kvMax int64, log *slog.Logger) *engine.Engine {
		e, err := engine.Load(context.Background(), engine.LoadOptions{Path: path, Backend: "cpu", Threads: 2, Context: 1024, Parallel: 2,
			KVDisk: kvDir, KVDiskMax: kvMax, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}, 0)
}
