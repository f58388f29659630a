package gpu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"

	"smolchat/engine"
	"smolchat/internal/kvblock"
	"smolchat/model"
)

func init() {
	engine.RegisterBackend("gpu", func(m *model.Model, o engine.BackendOptions) (engine.Backend, error) {
		mode, err := ParseTuneMode(o.Tune)
		if err != nil {
			return nil, err
		}
		opts := options{
			deviceOptions: deviceOptions{Adapter: o.Adapter, Force: o.Force, Log: o.Log},
			Context:       o.Context,
			KVMemory:      o.KVMemory,
			Parallel:      o.Parallel,
			Tune:          tuneOptions{Mode: mode, File: o.TuneFile, Budget: o.TuneBudget},
		}
		if o.Progress != nil {
			opts.Progress = func(done, total int64) {
				o.Progress(float64(done)/float64(max(total, 1)), "uploading weights to the GPU")
			}
			opts.Tune.Progress = func(done, total int, what string) {
				o.Progress(float64(done)/float64(max(total, 1)), what)
			}
		}
		b, err := newBackend(m, opts)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// options configure a backend.
type options struct {
	deviceOptions
	// Context is the number of positions the KV cache holds; 0 means min(model context, 4096).
	Context int
	// KV is the cache element type: "f16", "f32", or "" for f16 when the device has shader-f16 and f32
	// otherwise. (The f16 cache packs halves with pack2x16float, which any device can run.)
	KV string
	// Batch is the most rows (tokens of every sequence) one submit evaluates; 0 means 64.
	Batch int
	// KVMemory is the budget of the KV pool in bytes, shared by every sequence; 0 means
	// engine.DefaultKVMemory for Parallel sequences, capped by the device's binding limit (kvBudget).
	// It must hold Context positions. The cache's buffers grow as blocks are first used.
	KVMemory int64
	// Parallel is how many sequences the engine runs together (0 = engine.DefaultParallel), for
	// KVMemory's default.
	Parallel int
	// Progress, if set, is called as weights upload with the bytes done and the total.
	Progress func(done, total int64)
	// Tune chooses kernel variants by timing them on the device (tune.go); the zero value does not.
	Tune tuneOptions
}

// backend runs a model's forward pass on a WebGPU device. It implements engine.SeqBackend,
// engine.Argmaxer and engine.TopKer; calls are serialized.
type backend struct {
	mu     sync.Mutex
	d      *device
	cfg    model.Config
	log    *slog.Logger
	maxCtx int
	batch  int // rows per submit
	maxOut int // logits rows per read-back
	kvF16  bool

	// The paged KV cache (kvpool.go): the books, each layer's key and value buffers of kvCap blocks, and
	// the sequences.
	kv           kvblock.Pool
	kvCap        int
	kc, vc       []*buffer
	kvScratch    *buffer // one layer's block: copy on write goes through it
	kvblock.Seqs         // the sequences of NewSeq and Fork, in kv
	own          kvSeq   // the sequence of Forward, Len and Truncate
	maxSeqs      int     // sequences per submit

	// Activations for up to batch rows.
	tok, h, xn, q, k, v, att, gate, cs *buffer
	sel, logits                        *buffer
	attnBatch                          *attnBatch // the submit's sequences, for attention
	attnAt                             []int      // index in steps of each layer's attention

	steps     []step // the token embedding and every layer's steps, in order (forward.go)
	finalNorm step
	lmHead    *matMulOp
	argmax    *argmaxOp
	topk      map[int]*topKOp

	tuning *TuneReport // what tuning did at load; nil when off
	last   StepStats
}

// StepStats describes the device work of the last Forward call.
type StepStats struct {
	Tokens     int // tokens evaluated
	Dispatches int // compute dispatches recorded
	Submits    int // command buffers submitted
}

// newBackend uploads m's weights to a device chosen by opts and builds every pipeline and bind group, so a
// Forward only writes the step's inputs, records dispatches and submits.
func newBackend(m *model.Model, opts options) (*backend, error) {
	c := m.Config
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("gpu backend: %w", err)
	}
	if c.Dim%4 != 0 || c.HeadDim%2 != 0 || c.FF%4 != 0 {
		return nil, fmt.Errorf("gpu backend: model dims (embedding %d, head %d, feed-forward %d) must be multiples of 4, 2 and 4", c.Dim, c.HeadDim, c.FF)
	}
	maxCtx := opts.Context
	switch {
	case maxCtx < 0:
		return nil, fmt.Errorf("gpu backend: context must not be negative, got %d", maxCtx)
	case maxCtx == 0:
		maxCtx = min(c.Context, 4096)
	case maxCtx > c.Context:
		return nil, fmt.Errorf("gpu backend: context %d exceeds the model's trained context of %d", maxCtx, c.Context)
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 64
	}
	d, err := openDevice(opts.deviceOptions)
	if err != nil {
		return nil, err
	}
	b := &backend{d: d, cfg: c, log: d.log, maxCtx: maxCtx, batch: min(batch, maxCtx), topk: map[int]*topKOp{}}
	switch opts.KV {
	case "":
		b.kvF16 = d.ShaderF16()
	case "f16":
		b.kvF16 = true
	case "f32":
	default:
		d.Close()
		return nil, fmt.Errorf("gpu backend: KV cache type %q: want f16 or f32", opts.KV)
	}
	if err := b.load(m, opts); err != nil {
		d.Close()
		return nil, fmt.Errorf("gpu backend on %s: %w", d.Info.Name, err)
	}
	return b, nil
}

// Name is "gpu".
func (b *backend) Name() string { return "gpu" }

// Device names the adapter.
func (b *backend) Device() string {
	i := b.d.Info
	return fmt.Sprintf("%s (%s, %s)", i.Name, i.Type, i.Backend)
}

// Len is the number of cached positions of Forward's sequence.
func (b *backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.own.N
}

// Truncate keeps the first n cached positions of Forward's sequence (none for n < 0); the blocks past
// them go back to the pool.
func (b *backend) Truncate(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kv.Truncate(&b.own, n)
}

// MaxContext is the number of positions the cache holds.
func (b *backend) MaxContext() int { return b.maxCtx }

// LastStep reports the device work of the last Forward, ForwardArgmax or ForwardTopK call.
func (b *backend) LastStep() StepStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Close releases the device and all its memory.
func (b *backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.d.Close()
}

// Forward evaluates tokens at positions Len().. and returns the logits of the rows in want.
func (b *backend) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	logits := make([][]float32, len(want))
	if err := b.forwardOwn(ctx, tokens, want, b.logitsHead(logits)); err != nil {
		return nil, err
	}
	return logits, nil
}

// logitsHead reads back the logits of the wanted rows into logits, indexed by wanted row.
func (b *backend) logitsHead(logits [][]float32) headFunc {
	return func(e *encoder, rows []int, first int) func() {
		b.selectRows(e, rows)
		b.lmHead.Record(e, len(rows))
		all := make([]float32, len(rows)*b.cfg.Vocab)
		e.ReadBackF32(b.logits, 0, all)
		return func() {
			for i := range rows {
				logits[first+i] = all[i*b.cfg.Vocab : (i+1)*b.cfg.Vocab : (i+1)*b.cfg.Vocab]
			}
		}
	}
}

// ForwardSeqs evaluates a batch of sequences' tokens: every submit's rows go through the layers
// together, each weight read once for all of them.
func (b *backend) ForwardSeqs(ctx context.Context, batch []engine.SeqEntry) ([][][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seqs, err := kvblock.Lookup(&b.Seqs, batch, b.cfg.Vocab, b.maxCtx)
	if err != nil {
		return nil, err
	}
	out := make([][][]float32, len(batch))
	wanted := 0
	for _, e := range batch {
		wanted += len(e.Want)
	}
	// The wanted rows' logits, in forward's order: by entry, then row.
	logits := make([][]float32, wanted)
	if err := b.forward(ctx, seqs, batch, b.logitsHead(logits)); err != nil {
		return nil, err
	}
	for i, e := range batch {
		out[i], logits = logits[:len(e.Want):len(e.Want)], logits[len(e.Want):]
	}
	return out, nil
}

// ForwardArgmax evaluates tokens and returns the argmax of the last row's logits, computed on the
// device: a decode step reads back 8 bytes.
func (b *backend) ForwardArgmax(ctx context.Context, tokens []int32) (int32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(tokens) == 0 {
		return 0, errors.New("gpu backend: no tokens")
	}
	res := make([]byte, 8)
	err := b.forwardOwn(ctx, tokens, []int{len(tokens) - 1}, func(e *encoder, rows []int, _ int) func() {
		b.selectRows(e, rows)
		b.lmHead.Record(e, len(rows))
		b.argmax.Record(e)
		e.ReadBack(b.argmax.Result, 0, res)
		return nil
	})
	if err != nil {
		return 0, err
	}
	id := binary.LittleEndian.Uint32(res)
	if int(id) >= b.cfg.Vocab {
		return 0, fmt.Errorf("gpu backend: argmax found no finite logit (got index %d)", id)
	}
	return int32(id), nil
}

// ForwardTopK evaluates tokens and returns the k (1..MaxTopK) largest logits of the last row and their
// token ids, in descending order, selected on the device.
func (b *backend) ForwardTopK(ctx context.Context, tokens []int32, k int) ([]int32, []float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(tokens) == 0 {
		return nil, nil, errors.New("gpu backend: no tokens")
	}
	op, ok := b.topk[k]
	if !ok {
		var err error
		if op, err = b.d.NewTopK(whole(b.logits), b.cfg.Vocab, 0, k); err != nil {
			return nil, nil, fmt.Errorf("gpu backend: %w", err)
		}
		b.topk[k] = op
	}
	res := make([]byte, 8*k)
	err := b.forwardOwn(ctx, tokens, []int{len(tokens) - 1}, func(e *encoder, rows []int, _ int) func() {
		b.selectRows(e, rows)
		b.lmHead.Record(e, len(rows))
		op.Record(e)
		e.ReadBack(op.Result, 0, res)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int32, k)
	vals := make([]float32, k)
	for i := range k {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(res[8*i:]))
		ids[i] = int32(binary.LittleEndian.Uint32(res[8*i+4:]))
	}
	return ids, vals, nil
}
