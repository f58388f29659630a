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
	// Batch is the most tokens one submit evaluates during prefill; 0 means 64.
	Batch int
	// Progress, if set, is called as weights upload with the bytes done and the total.
	Progress func(done, total int64)
	// Tune chooses kernel variants by timing them on the device (tune.go); the zero value does not.
	Tune tuneOptions
}

// backend runs a model's forward pass on a WebGPU device. It implements engine.backend and
// engine.Argmaxer; calls are serialized.
type backend struct {
	mu     sync.Mutex
	d      *device
	cfg    model.Config
	log    *slog.Logger
	maxCtx int
	batch  int // tokens per submit
	maxOut int // logits rows per read-back
	kvF16  bool
	n      int // cached positions

	// Activations for up to batch tokens.
	tok, h, xn, q, k, v, att, gate, cs *buffer
	attPart                            *buffer // split decode attention's partials, shared by the layers
	sel, logits                        *buffer
	kc, vc                             []*buffer

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
	if c.Heads <= 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 || c.RopeDim > c.HeadDim || len(c.NoRope) != c.Layers {
		return nil, fmt.Errorf("gpu backend: inconsistent model config (heads %d, kv heads %d, head dim %d, rope dim %d, %d NoRope flags for %d layers)",
			c.Heads, c.KVHeads, c.HeadDim, c.RopeDim, len(c.NoRope), c.Layers)
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
	if err := b.load(m, opts.Progress, opts.Tune); err != nil {
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

// Len is the number of cached positions.
func (b *backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Truncate keeps the first n cached positions (none for n < 0).
func (b *backend) Truncate(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n = max(0, min(n, b.n))
}

// MaxContext is the number of positions the cache holds.
func (b *backend) MaxContext() int { return b.maxCtx }

// LastStep reports the device work of the last Forward, ForwardArgmax or ForwardTopK call.
func (b *backend) LastStep() StepStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// DeviceInfo describes the adapter in use.
func (b *backend) DeviceInfo() AdapterInfo { return b.d.Info }

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
	err := b.forward(ctx, tokens, want, func(e *encoder, rows []int, first int) func() {
		b.selectRows(e, rows)
		b.lmHead.Record(e, len(rows))
		raw := make([]byte, len(rows)*4*b.cfg.Vocab)
		e.ReadBack(b.logits, 0, raw)
		return func() {
			all := bytesF32(raw)
			for i := range rows {
				logits[first+i] = all[i*b.cfg.Vocab : (i+1)*b.cfg.Vocab : (i+1)*b.cfg.Vocab]
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return logits, nil
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
	err := b.forward(ctx, tokens, []int{len(tokens) - 1}, func(e *encoder, rows []int, _ int) func() {
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
	err := b.forward(ctx, tokens, []int{len(tokens) - 1}, func(e *encoder, rows []int, _ int) func() {
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

// check validates Forward's arguments.
func (b *backend) check(tokens []int32, want []int) error {
	if err := b.d.Err(); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	if err := engine.CheckForward(tokens, want, b.cfg.Vocab, b.n, b.maxCtx); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	return nil
}
