package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"smolchat/model"
	"smolchat/model/chat"
	"smolchat/model/tokenizer"
)

// BackendOptions are what a backend factory gets besides the model.
type BackendOptions struct {
	Context    int           // KV-cache positions
	Threads    int           // CPU threads (0 = the backend's default)
	Numerics   string        // CPU rounding: "" or "fast", "llama", "exact" (cpu.Numerics)
	Adapter    string        // GPU adapter name substring or index ("" = automatic)
	Force      bool          // use the GPU even if it is a software (CPU-type) adapter
	Tune       string        // GPU kernel tuning: "" or "off", "auto", "redo" (gpu.TuneMode)
	TuneFile   string        // GPU tuning cache ("" = the user's cache directory)
	TuneBudget time.Duration // the most time a load spends tuning (0 = the backend's default)
	KVMemory   int64         // KV pool budget in bytes for backends with sequences (0 = DefaultKVMemory)
	Parallel   int           // sequences that generate together (0 = DefaultParallel), for KVMemory's default
	Progress   func(frac float64, msg string)
	Log        *slog.Logger
}

// BackendFactory creates a backend for m. Backends register one in their package's init, the way
// database/sql drivers do, so that this package never imports them.
type BackendFactory func(m *model.Model, o BackendOptions) (Backend, error)

var (
	factoriesMu sync.Mutex
	factories   = map[string]BackendFactory{}
)

// RegisterBackend makes a backend available to Load under name ("cpu", "gpu").
func RegisterBackend(name string, f BackendFactory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories[name] = f
}

func factory(name string) (BackendFactory, error) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	f, ok := factories[name]
	if !ok {
		var have []string
		for n := range factories {
			have = append(have, n)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("backend %q is not available (built with: %v)", name, have)
	}
	return f, nil
}

// DefaultContext is the context window used when LoadOptions.Context is 0.
const DefaultContext = 8192

// LoadOptions choose the model file and where it runs.
type LoadOptions struct {
	Path string
	// Backend is "auto" (the best hardware GPU, else the CPU), "cpu" or "gpu" (the GPU path even on a
	// software adapter such as lavapipe). Empty means auto.
	Backend    string
	Adapter    string
	Context    int // tokens; 0 = DefaultContext; capped by the model's trained context
	Threads    int
	Numerics   string        // CPU backend rounding: "" or "fast", "llama", "exact"
	Tune       string        // GPU kernel tuning: "" or "off", "auto", "redo"
	TuneFile   string        // GPU tuning cache ("" = the user's cache directory)
	TuneBudget time.Duration // the most time a load spends tuning (0 = the backend's default)
	// Rope overrides the file's RoPE scaling (--rope-scaling, --rope-scale, --yarn-orig-ctx); with a
	// factor above 1 the context may grow to the original context times the factor.
	Rope model.RopeOptions
	// KVMemory is the KV pool's budget in bytes for backends with sequences (0 = DefaultKVMemory);
	// Parallel is how many sequences generate together (0 = DefaultParallel; 1 = one at a time).
	KVMemory int64
	Parallel int
	// KVDisk is the directory where cached conversations spill (--kv-disk-max, the data directory's
	// kv-cache), at most KVDiskMax bytes of files; "" or KVDiskMax ≤ 0 keeps them in memory only, as
	// does a backend without KVExporter.
	KVDisk    string
	KVDiskMax int64
	Progress  func(frac float64, msg string)
	Log       *slog.Logger
}

// Load opens the model at o.Path, builds its tokenizer and chat template, and starts a backend.
func Load(ctx context.Context, o LoadOptions) (*Engine, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	progress := o.Progress
	if progress == nil {
		progress = func(float64, string) {}
	}
	progress(0, "mapping "+o.Path)
	m, err := model.Open(o.Path)
	if err != nil {
		return nil, err
	}
	if err := m.ScaleRope(o.Rope); err != nil {
		m.Close()
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(m.File)
	if err == nil && tok.VocabSize() != m.Config.Vocab {
		err = fmt.Errorf("%s: tokenizer: tokenizer.ggml.tokens holds %d tokens but token_embd.weight has %d rows "+
			"(a damaged or wrongly converted file: convert or download the model again)", o.Path, tok.VocabSize(), m.Config.Vocab)
	}
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("model %w", err) // the error starts with the path
	}
	if err := ctx.Err(); err != nil {
		m.Close()
		return nil, err
	}
	n := o.Context
	if n <= 0 {
		n = DefaultContext
	}
	n = min(n, m.Config.Context)
	bo := BackendOptions{Context: n, Threads: o.Threads, Numerics: o.Numerics, Adapter: o.Adapter, Tune: o.Tune, TuneFile: o.TuneFile, TuneBudget: o.TuneBudget,
		KVMemory: o.KVMemory, Parallel: o.Parallel, Progress: progress, Log: log}
	open := func() (Backend, error) {
		switch o.Backend {
		case "", "auto":
			b, err := newBackend("gpu", m, bo)
			if err != nil {
				log.Info("using the CPU backend", "reason", err)
				return newBackend("cpu", m, bo)
			}
			return b, nil
		case "gpu":
			bo.Force = true
			return newBackend("gpu", m, bo)
		case "cpu":
			return newBackend("cpu", m, bo)
		}
		return nil, fmt.Errorf("unknown backend %q (want auto, cpu or gpu)", o.Backend)
	}
	b, err := open()
	if err != nil {
		m.Close()
		return nil, err
	}
	template, _ := m.File.String("tokenizer.chat_template")
	progress(1, "ready")
	e := New(m, tok, chat.ForModel(m.Config.ChatFormat, template), b)
	e.Parallel = o.Parallel
	e.logger = log
	e.setInfo()
	if o.KVDisk != "" && o.KVDiskMax > 0 {
		e.openDisk = func(b Backend) *kvDisk { return openDisk(m, b, o.KVDisk, o.KVDiskMax, log) }
		e.disk = e.openDisk(b)
	}
	// After a lost GPU device: a new device if one can be had, else the CPU.
	e.reload = func() (Backend, error) {
		bo.Progress = nil
		if bo.Tune == "redo" {
			bo.Tune = "auto" // the first load re-tuned; a reload reads its choices
		}
		b, err := open()
		if err == nil {
			return b, nil
		}
		log.Warn("re-creating the backend failed; falling back to the CPU", "err", err)
		return newBackend("cpu", m, bo)
	}
	return e, nil
}

// openDisk opens the disk cache of conversations for backend b, or returns nil (with a log line saying
// why) when b cannot export its KV or the directory cannot be used: the cache then stays in memory.
func openDisk(m *model.Model, b Backend, dir string, maxBytes int64, log *slog.Logger) *kvDisk {
	sb, seqs := b.(SeqBackend)
	x, ok := b.(KVExporter)
	if !seqs || !ok {
		log.Info("the backend cannot export its KV cache; cached conversations stay in memory only (no disk cache)", "backend", b.Name())
		return nil
	}
	kv := sb.KV()
	d, err := openKVDisk(dir, maxBytes, modelIdentity(m), x.KVFormat(), int64(kv.BlockBytes/max(kv.BlockLen, 1)), log)
	if err != nil {
		log.Warn("the KV disk cache is off", "dir", dir, "err", err)
		return nil
	}
	return d
}

func newBackend(name string, m *model.Model, o BackendOptions) (Backend, error) {
	f, err := factory(name)
	if err != nil {
		return nil, err
	}
	return f(m, o)
}
