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
	"smolchat/model/quant"
)

func init() {
	engine.RegisterBackend("gpu", func(m *model.Model, o engine.BackendOptions) (engine.Backend, error) {
		opts := Options{
			DeviceOptions: DeviceOptions{Adapter: o.Adapter, Force: o.Force, Log: o.Log},
			Context:       o.Context,
		}
		if o.Progress != nil {
			opts.Progress = func(done, total int64) {
				o.Progress(float64(done)/float64(max(total, 1)), "uploading weights to the GPU")
			}
		}
		b, err := New(m, opts)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// Options configure a Backend.
type Options struct {
	DeviceOptions
	// Context is the number of positions the KV cache holds; 0 means min(model context, 4096).
	Context int
	// KV is the cache element type: "f16", "f32", or "" for f16 when the device has shader-f16 and f32
	// otherwise. (The f16 cache packs halves with pack2x16float, which any device can run.)
	KV string
	// Batch is the most tokens one submit evaluates during prefill; 0 means 64.
	Batch int
	// Progress, if set, is called as weights upload with the bytes done and the total.
	Progress func(done, total int64)
}

// Backend runs a model's forward pass on a WebGPU device. It implements engine.Backend and
// engine.Argmaxer; calls are serialized.
type Backend struct {
	mu     sync.Mutex
	d      *Device
	cfg    model.Config
	log    *slog.Logger
	maxCtx int
	batch  int // tokens per submit
	maxOut int // logits rows per read-back
	kvF16  bool
	n      int // cached positions

	// Activations for up to batch tokens.
	tok, h, xn, q, k, v, att, gate, cs *Buffer
	sel, logits                        *Buffer
	kc, vc                             []*Buffer

	embed   *Embed
	layers  []layerOps
	outNorm *Op
	lmHead  *MatMul
	argmax  *Argmax
	topk    map[int]*TopK

	last StepStats
}

// layerOps are one transformer block's dispatches, in order.
type layerOps struct {
	attnNorm    *Op
	wq, wk, wv  *MatMul // wq and wk apply RoPE, except on NoPE layers
	store, attn *Op
	wo          *MatMul // adds into the residual stream
	ffnNorm     *Op
	wGate, wUp  *MatMul // wUp turns gate into silu(gate)·up
	wDown       *MatMul // adds into the residual stream
}

// StepStats describes the device work of the last Forward call.
type StepStats struct {
	Tokens     int // tokens evaluated
	Dispatches int // compute dispatches recorded
	Submits    int // command buffers submitted
}

// New uploads m's weights to a device chosen by opts and builds every pipeline and bind group, so a
// Forward only writes the step's inputs, records dispatches and submits.
func New(m *model.Model, opts Options) (*Backend, error) {
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
	d, err := OpenDevice(opts.DeviceOptions)
	if err != nil {
		return nil, err
	}
	b := &Backend{d: d, cfg: c, log: d.log, maxCtx: maxCtx, batch: min(batch, maxCtx), topk: map[int]*TopK{}}
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
	if err := b.load(m, opts.Progress); err != nil {
		d.Close()
		return nil, fmt.Errorf("gpu backend on %s: %w", d.Info.Name, err)
	}
	return b, nil
}

// load uploads the weights, allocates activations and the KV cache, and builds the ops.
func (b *Backend) load(m *model.Model, progress func(done, total int64)) error {
	c, d := b.cfg, b.d
	W := m.Weights

	var total, done int64
	tensors := []model.Tensor{W.Embed, W.OutputNorm}
	if !c.TiedOutput {
		tensors = append(tensors, W.Output)
	}
	for _, L := range W.Layers {
		tensors = append(tensors, L.AttnNorm, L.Q, L.K, L.V, L.O, L.FFNNorm, L.Gate, L.Up, L.Down)
	}
	for _, t := range tensors {
		total += int64(len(t.Data))
	}
	upload := func(t model.Tensor) (*Weights, error) {
		w, err := d.UploadWeights(t.Name, t.Type, t.Cols, t.Rows, t.Data, func(n int64) {
			if progress != nil {
				progress(done+n, total)
			}
		})
		done += int64(len(t.Data))
		return w, err
	}
	vector := func(t model.Tensor) (Range, error) {
		if t.Rows != 1 || t.Cols != c.Dim {
			return Range{}, fmt.Errorf("tensor %s is %dx%d, want a vector of %d", t.Name, t.Rows, t.Cols, c.Dim)
		}
		v := make([]float32, t.Cols)
		if err := quant.DequantizeRow(t.Type, t.Data, v); err != nil {
			return Range{}, fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		buf, err := d.UploadF32(t.Name, v)
		done += int64(len(t.Data))
		return Whole(buf), err
	}

	T := b.batch
	f32 := func(label string, perTok int) (*Buffer, error) { return d.NewStorage(label, uint64(4*T*perTok)) }
	var err error
	alloc := []struct {
		dst    **Buffer
		label  string
		perTok int
	}{
		{&b.tok, "tokens", 1}, {&b.h, "hidden", c.Dim}, {&b.xn, "normed", c.Dim},
		{&b.q, "q", c.QDim()}, {&b.k, "k", c.KVDim()}, {&b.v, "v", c.KVDim()}, {&b.att, "attention", c.QDim()},
		{&b.gate, "gate", c.FF}, {&b.cs, "rope cos/sin", c.RopeDim},
	}
	for _, a := range alloc {
		if *a.dst, err = f32(a.label, max(a.perTok, 1)); err != nil {
			return err
		}
	}
	// Logits rows read back per submit: enough for a batch, within one binding.
	b.maxOut = int(min(uint64(T), d.limits.MaxStorageBufferBindingSize/uint64(4*c.Vocab), 16))
	if b.maxOut < 1 {
		return fmt.Errorf("one row of %d logits exceeds the storage binding limit", c.Vocab)
	}
	if b.sel, err = d.NewStorage("selected rows", uint64(4*b.maxOut*c.Dim)); err != nil {
		return err
	}
	if b.logits, err = d.NewStorage("logits", uint64(4*b.maxOut*c.Vocab)); err != nil {
		return err
	}
	elt := 4
	if b.kvF16 {
		elt = 2
	}
	cacheBytes := uint64(b.maxCtx) * uint64(c.KVDim()) * uint64(elt)
	if cacheBytes > d.limits.MaxStorageBufferBindingSize {
		return fmt.Errorf("a layer's KV cache for %d positions needs %d bytes, over the storage binding limit %d: use a smaller context",
			b.maxCtx, cacheBytes, d.limits.MaxStorageBufferBindingSize)
	}
	for l := range c.Layers {
		kc, err := d.NewStorage(fmt.Sprintf("blk.%d.k_cache", l), cacheBytes)
		if err != nil {
			return fmt.Errorf("allocating the KV cache (%d positions): %w", b.maxCtx, err)
		}
		vc, err := d.NewStorage(fmt.Sprintf("blk.%d.v_cache", l), cacheBytes)
		if err != nil {
			return fmt.Errorf("allocating the KV cache (%d positions): %w", b.maxCtx, err)
		}
		b.kc, b.vc = append(b.kc, kc), append(b.vc, vc)
	}

	embed, err := upload(W.Embed)
	if err != nil {
		return err
	}
	if b.embed, err = d.NewEmbed(embed, Whole(b.tok), Whole(b.h)); err != nil {
		return err
	}
	eps := c.RMSEps
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	for l, L := range W.Layers {
		var ops layerOps
		an, err := vector(L.AttnNorm)
		if err != nil {
			return err
		}
		fn, err := vector(L.FFNNorm)
		if err != nil {
			return err
		}
		ws := map[string]*Weights{}
		for _, t := range []model.Tensor{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down} {
			if ws[t.Name], err = upload(t); err != nil {
				return err
			}
		}
		mat := func(t model.Tensor, x *Buffer, xStride int, y *Buffer, yStride int) (*MatMul, error) {
			return d.NewMatMul(ws[t.Name], Whole(x), xStride, Whole(y), yStride, 0)
		}
		steps := []func() error{
			func() (err error) {
				ops.attnNorm, err = d.NewRMSNorm(Whole(b.h), an, Whole(b.xn), c.Dim, c.Dim, eps)
				return
			},
			// The query and key projections rotate their heads as they store them (NewMatMulRope),
			// except on NoPE layers.
			func() (err error) {
				if c.NoRope[l] {
					ops.wq, err = mat(L.Q, b.xn, c.Dim, b.q, c.QDim())
				} else {
					ops.wq, err = d.NewMatMulRope(ws[L.Q.Name], Whole(b.xn), c.Dim, Whole(b.q), c.QDim(), Whole(b.cs), c.HeadDim, c.RopeDim)
				}
				return
			},
			func() (err error) {
				if c.NoRope[l] {
					ops.wk, err = mat(L.K, b.xn, c.Dim, b.k, c.KVDim())
				} else {
					ops.wk, err = d.NewMatMulRope(ws[L.K.Name], Whole(b.xn), c.Dim, Whole(b.k), c.KVDim(), Whole(b.cs), c.HeadDim, c.RopeDim)
				}
				return
			},
			func() (err error) { ops.wv, err = mat(L.V, b.xn, c.Dim, b.v, c.KVDim()); return },
			func() (err error) {
				ops.store, err = d.NewKVStore(Whole(b.k), Whole(b.v), Whole(b.kc[l]), Whole(b.vc[l]), c.KVDim(), c.KVDim(), b.kvF16)
				return
			},
			func() (err error) {
				ops.attn, err = d.NewAttention(Whole(b.q), Whole(b.kc[l]), Whole(b.vc[l]), Whole(b.att), AttnShape{
					Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, QStride: c.QDim(), OutStride: c.QDim(), Scale: scale, F16: b.kvF16})
				return
			},
			// The output projections add into the residual stream h themselves (NewMatMulAdd).
			func() (err error) {
				ops.wo, err = d.NewMatMulAdd(ws[L.O.Name], Whole(b.att), c.QDim(), Whole(b.h), c.Dim, 0)
				return
			},
			func() (err error) {
				ops.ffnNorm, err = d.NewRMSNorm(Whole(b.h), fn, Whole(b.xn), c.Dim, c.Dim, eps)
				return
			},
			func() (err error) { ops.wGate, err = mat(L.Gate, b.xn, c.Dim, b.gate, c.FF); return },
			// The up projection finishes SwiGLU on the gate projection: gate = silu(gate) * up.
			func() (err error) {
				ops.wUp, err = d.NewMatMulGLU(ws[L.Up.Name], Whole(b.xn), c.Dim, Whole(b.gate), c.FF, 0)
				return
			},
			func() (err error) {
				ops.wDown, err = d.NewMatMulAdd(ws[L.Down.Name], Whole(b.gate), c.FF, Whole(b.h), c.Dim, 0)
				return
			},
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return fmt.Errorf("layer %d: %w", l, err)
			}
		}
		b.layers = append(b.layers, ops)
	}
	on, err := vector(W.OutputNorm)
	if err != nil {
		return err
	}
	if b.outNorm, err = d.NewRMSNorm(Whole(b.h), on, Whole(b.xn), c.Dim, c.Dim, eps); err != nil {
		return err
	}
	output := embed
	if !c.TiedOutput {
		if output, err = upload(W.Output); err != nil {
			return err
		}
	}
	if b.lmHead, err = d.NewMatMul(output, Whole(b.sel), c.Dim, Whole(b.logits), c.Vocab, 0); err != nil {
		return err
	}
	if b.argmax, err = d.NewArgmax(Whole(b.logits), c.Vocab, 0); err != nil {
		return err
	}
	b.log.Info("gpu backend ready", "adapter", d.Info.Name, "weights_mib", total>>20, "context", b.maxCtx,
		"kv", map[bool]string{true: "f16", false: "f32"}[b.kvF16], "batch", b.batch, "subgroups", d.Subgroups())
	return nil
}

// Name is "gpu".
func (b *Backend) Name() string { return "gpu" }

// Device names the adapter.
func (b *Backend) Device() string {
	i := b.d.Info
	return fmt.Sprintf("%s (%s, %s)", i.Name, i.Type, i.Backend)
}

// Len is the number of cached positions.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Truncate keeps the first n cached positions.
func (b *Backend) Truncate(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n = max(0, min(n, b.n))
}

// MaxContext is the number of positions the cache holds.
func (b *Backend) MaxContext() int { return b.maxCtx }

// LastStep reports the device work of the last Forward, ForwardArgmax or ForwardTopK call.
func (b *Backend) LastStep() StepStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// DeviceInfo describes the adapter in use.
func (b *Backend) DeviceInfo() AdapterInfo { return b.d.Info }

// Close releases the device and all its memory.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.d.Close()
}

// Forward evaluates tokens at positions Len().. and returns the logits of the rows in want.
func (b *Backend) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	logits := make([][]float32, len(want))
	err := b.forward(ctx, tokens, want, func(e *Encoder, rows []int, first int) func() {
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
func (b *Backend) ForwardArgmax(ctx context.Context, tokens []int32) (int32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(tokens) == 0 {
		return 0, errors.New("gpu backend: no tokens")
	}
	res := make([]byte, 8)
	err := b.forward(ctx, tokens, []int{len(tokens) - 1}, func(e *Encoder, rows []int, _ int) func() {
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
func (b *Backend) ForwardTopK(ctx context.Context, tokens []int32, k int) ([]int32, []float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(tokens) == 0 {
		return nil, nil, errors.New("gpu backend: no tokens")
	}
	op, ok := b.topk[k]
	if !ok {
		var err error
		if op, err = b.d.NewTopK(Whole(b.logits), b.cfg.Vocab, 0, k); err != nil {
			return nil, nil, fmt.Errorf("gpu backend: %w", err)
		}
		b.topk[k] = op
	}
	res := make([]byte, 8*k)
	err := b.forward(ctx, tokens, []int{len(tokens) - 1}, func(e *Encoder, rows []int, _ int) func() {
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

// headFunc records the output work for rows (indices into a submit's tokens, at most maxOut; first is
// the index in want of the first of them) after the final norm, and returns what to do with the
// read-back once the submit completes (or nil).
type headFunc func(e *Encoder, rows []int, first int) (after func())

// forward runs tokens through the layers in submits of at most b.batch tokens, recording head for the
// wanted rows of each. On any error, cancellation included, the cache keeps the positions it had before
// the call: positions are only committed at the end.
func (b *Backend) forward(ctx context.Context, tokens []int32, want []int, head headFunc) error {
	if err := b.check(tokens, want); err != nil {
		return err
	}
	before := b.d.Stats()
	defer func() {
		after := b.d.Stats()
		b.last = StepStats{Tokens: len(tokens), Dispatches: int(after.Dispatches - before.Dispatches), Submits: int(after.Submits - before.Submits)}
	}()
	wi := 0
	pos := b.n
	for off := 0; off < len(tokens); off += b.batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := tokens[off:min(off+b.batch, len(tokens))]
		var rows []int
		first := wi
		for wi < len(want) && want[wi] < off+len(chunk) {
			rows = append(rows, want[wi]-off)
			wi++
		}
		// The first maxOut wanted rows ride along with the layers' submit; more get output-only submits
		// while the chunk's final hidden states are still in place.
		n0 := min(len(rows), b.maxOut)
		if err := b.submit(chunk, pos, true, rows[:n0], first, head); err != nil {
			return err
		}
		for done := n0; done < len(rows); done += b.maxOut {
			if err := b.submit(chunk, pos, false, rows[done:min(done+b.maxOut, len(rows))], first+done, head); err != nil {
				return err
			}
		}
		pos += len(chunk)
	}
	b.n = pos
	return nil
}

// submit evaluates one chunk at cache position pos: with layers, it writes the chunk's inputs and
// records the embedding and every layer; with rows, the final norm and head. It submits once.
func (b *Backend) submit(chunk []int32, pos int, layers bool, rows []int, first int, head headFunc) error {
	T := len(chunk)
	d, c := b.d, b.cfg
	if err := d.SetStep(T, pos); err != nil {
		return err
	}
	e, err := d.NewEncoder("forward")
	if err != nil {
		return err
	}
	if layers {
		ids := make([]uint32, T)
		for i, t := range chunk {
			ids[i] = uint32(t)
		}
		if err := d.Write(b.tok, 0, u32Bytes(ids)); err != nil {
			return err
		}
		cs := make([]float32, 0, T*c.RopeDim)
		for i := range T {
			cs = append(cs, ropeAngles(pos+i, c.RopeDim, float64(c.RopeBase))...)
		}
		if err := d.Write(b.cs, 0, f32Bytes(cs)); err != nil {
			return err
		}
		b.embed.Record(e, T)
		for _, L := range b.layers {
			L.attnNorm.Record(e, T)
			L.wq.Record(e, T)
			L.wk.Record(e, T)
			L.wv.Record(e, T)
			L.store.Record(e, T)
			L.attn.Record(e, T)
			L.wo.Record(e, T)
			L.ffnNorm.Record(e, T)
			L.wGate.Record(e, T)
			L.wUp.Record(e, T)
			L.wDown.Record(e, T)
		}
		if len(rows) > 0 {
			b.outNorm.Record(e, T)
		}
	}
	var after func()
	if len(rows) > 0 {
		after = head(e, rows, first)
	}
	if err := e.Submit(); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

// selectRows copies the final-normed hidden states of rows (at most maxOut) to the LM head's input.
func (b *Backend) selectRows(e *Encoder, rows []int) {
	rowBytes := uint64(4 * b.cfg.Dim)
	for i, r := range rows {
		e.Copy(b.xn, uint64(r)*rowBytes, b.sel, uint64(i)*rowBytes, rowBytes)
	}
}

// ropeAngles returns (cos, sin) of pos * base^(-2i/ropeDim) for each rotated pair, in float64 so the
// angle stays exact at large positions.
func ropeAngles(pos, ropeDim int, base float64) []float32 {
	out := make([]float32, ropeDim)
	for i := range ropeDim / 2 {
		th := float64(pos) * math.Pow(base, -2*float64(i)/float64(ropeDim))
		s, c := math.Sincos(th)
		out[2*i], out[2*i+1] = float32(c), float32(s)
	}
	return out
}

// check validates Forward's arguments.
func (b *Backend) check(tokens []int32, want []int) error {
	if err := b.d.Err(); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	if err := engine.CheckForward(tokens, want, b.cfg.Vocab, b.n, b.maxCtx); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	return nil
}
