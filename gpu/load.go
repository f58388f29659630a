package gpu

import (
	"cmp"
	"fmt"

	"smolchat/engine"
	"smolchat/internal/kvblock"
	"smolchat/model"
	"smolchat/model/quant"
)

// load chooses the kernel variants (tune.go), uploads the weights, allocates activations and the KV
// cache, and builds the forward pass's steps (forward.go) and the output head.
func (b *backend) load(m *model.Model, opts options) error {
	var err error
	if b.tuning, err = b.tune(m.Weights, opts.Tune, cmp.Or(opts.Parallel, engine.DefaultParallel)); err != nil {
		return err
	}
	up := newUploader(b.d, m.Weights, b.cfg, opts.Progress)
	if err := b.allocActivations(); err != nil {
		return err
	}
	if err := b.allocCache(opts.KVMemory, opts.Parallel); err != nil {
		return err
	}
	// The embedding table is uploaded first: the output head reads it too when the model ties them.
	embed, err := up.matrix(m.Weights.Embed)
	if err != nil {
		return err
	}
	if err := b.buildSteps(m.Weights, embed, up); err != nil {
		return err
	}
	if err := b.buildHead(m.Weights, embed, up); err != nil {
		return err
	}
	b.log.Info("gpu backend ready", "adapter", b.d.Info.Name, "weights_mib", up.total>>20, "context", b.maxCtx,
		"kv", map[bool]string{true: "f16", false: "f32"}[b.kvF16], "kv_budget_mib", int64(b.kv.Limit())*int64(b.kvBlockBytes())>>20,
		"batch", b.batch, "subgroups", b.d.Subgroups())
	return nil
}

// uploader streams tensors to the device, reporting progress over all of a model's bytes.
type uploader struct {
	d           *device
	dim         int
	done, total int64
	progress    func(done, total int64)
}

func newUploader(d *device, W model.Weights, c model.Config, progress func(done, total int64)) *uploader {
	up := &uploader{d: d, dim: c.Dim, progress: progress}
	tensors := []model.Tensor{W.Embed, W.OutputNorm}
	if !c.TiedOutput {
		tensors = append(tensors, W.Output)
	}
	for _, L := range W.Layers {
		tensors = append(tensors, L.AttnNorm, L.Q, L.K, L.V, L.O, L.FFNNorm, L.Gate, L.Up, L.Down, L.QNorm, L.KNorm)
	}
	for _, t := range tensors {
		up.total += int64(len(t.Data))
	}
	return up
}

// matrix uploads a weight matrix as stored (the kernels dequantize it).
func (up *uploader) matrix(t model.Tensor) (*weights, error) {
	w, err := up.d.UploadWeights(t.Name, t.Type, t.Cols, t.Rows, t.Data, func(n int64) {
		if up.progress != nil {
			up.progress(up.done+n, up.total)
		}
	})
	up.done += int64(len(t.Data))
	return w, err
}

// vector uploads a norm weight of the model's width as float32: it is small, and every token reads it
// whole.
func (up *uploader) vector(t model.Tensor) (bufRange, error) { return up.vectorOf(t, up.dim) }

// vectorOf uploads a norm weight of n floats.
func (up *uploader) vectorOf(t model.Tensor, n int) (bufRange, error) {
	if t.Rows != 1 || t.Cols != n {
		return bufRange{}, fmt.Errorf("tensor %s is %dx%d, want a vector of %d", t.Name, t.Rows, t.Cols, n)
	}
	v := make([]float32, t.Cols)
	if err := quant.DequantizeRow(t.Type, t.Data, v); err != nil {
		return bufRange{}, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	buf, err := up.d.UploadF32(t.Name, v)
	up.done += int64(len(t.Data))
	return whole(buf), err
}

// layerWeights are one transformer block's tensors on the device.
type layerWeights struct {
	attnNorm, ffnNorm              bufRange
	qNorm, kNorm                   bufRange // QK-norm gains (Family.QKNorm)
	q, k, v, o, gate, upProj, down *weights
}

// layer uploads block L's tensors.
func (up *uploader) layer(L model.Layer) (layerWeights, error) {
	var w layerWeights
	var err error
	if w.attnNorm, err = up.vector(L.AttnNorm); err != nil {
		return w, err
	}
	if w.ffnNorm, err = up.vector(L.FFNNorm); err != nil {
		return w, err
	}
	if L.QNorm.Data != nil {
		if w.qNorm, err = up.vectorOf(L.QNorm, L.QNorm.Cols); err != nil {
			return w, err
		}
		if w.kNorm, err = up.vectorOf(L.KNorm, L.KNorm.Cols); err != nil {
			return w, err
		}
	}
	for _, m := range []struct {
		dst **weights
		t   model.Tensor
	}{{&w.q, L.Q}, {&w.k, L.K}, {&w.v, L.V}, {&w.o, L.O}, {&w.gate, L.Gate}, {&w.upProj, L.Up}, {&w.down, L.Down}} {
		if *m.dst, err = up.matrix(m.t); err != nil {
			return w, err
		}
	}
	return w, nil
}

// allocActivations allocates the per-token activations for a batch of tokens, and the output head's
// inputs and logits for as many rows as one read-back carries.
func (b *backend) allocActivations() error {
	c, d, T := b.cfg, b.d, b.batch
	var err error
	for _, a := range []struct {
		dst    **buffer
		label  string
		perTok int
	}{
		{&b.tok, "tokens", 1}, {&b.h, "hidden", c.Dim}, {&b.xn, "normed", c.Dim},
		{&b.q, "q", c.QDim()}, {&b.k, "k", c.KVDim()}, {&b.v, "v", c.KVDim()}, {&b.att, "attention", c.QDim()},
		{&b.gate, "gate", c.FF}, {&b.cs, "rope cos/sin", c.RopeDim},
	} {
		if *a.dst, err = d.NewStorage(a.label, uint64(4*T*max(a.perTok, 1))); err != nil {
			return err
		}
	}
	// Logits rows read back per submit: enough for a batch, within one binding.
	b.maxOut = int(min(uint64(T), d.limits.MaxStorageBufferBindingSize/uint64(4*c.Vocab), 16))
	if b.maxOut < 1 {
		return fmt.Errorf("one row of %d logits exceeds the storage binding limit of %d bytes: this device cannot run a vocabulary this large",
			c.Vocab, d.limits.MaxStorageBufferBindingSize)
	}
	if d.headTex() && d.activationTextureFits(c.Dim, b.maxOut) {
		b.sel, err = d.NewActivationTexture("selected rows", c.Dim, b.maxOut)
	} else {
		b.sel, err = d.NewStorage("selected rows", uint64(4*b.maxOut*c.Dim))
	}
	if err != nil {
		return err
	}
	b.logits, err = d.NewStorage("logits", uint64(4*b.maxOut*c.Vocab))
	return err
}

// allocCache sizes the KV pool's budget (kvBudget), allocates the cache buffers for one context (they
// grow as blocks are used: reserveKV) and the layout of a submit's sequences for attention. A submit
// takes at most maxSeqsPerSubmit sequences, fewer when their split decode partials would exceed a
// binding.
func (b *backend) allocCache(budget int64, parallel int) error {
	c, d := b.cfg, b.d
	lb := b.kvLayerBytes()
	blocks, err := d.kvBudget(budget, b.maxCtx, parallel, int64(b.kvBlockBytes()), int64(lb))
	if err != nil {
		return err
	}
	b.kv = kvblock.New(kvBlockBits, blocks)
	b.Seqs = kvblock.NewSeqs("gpu backend", &b.mu, &b.kv, int(b.kvBlockBytes()))
	b.kc, b.vc = make([]*buffer, c.Layers), make([]*buffer, c.Layers)
	if err := b.reserveKV(ceilDiv(b.maxCtx, kvBlockLen)); err != nil {
		return fmt.Errorf("allocating the KV cache (%d positions): %w", b.maxCtx, err)
	}
	if b.kvScratch, err = d.NewStorage("kv block copy", lb); err != nil {
		return err
	}
	part := attnPartialBytes(b.attnShape(), b.maxCtx)
	b.maxSeqs = int(min(uint64(min(maxSeqsPerSubmit, b.batch)), d.limits.MaxStorageBufferBindingSize/part))
	if b.maxSeqs < 1 {
		return fmt.Errorf("split decode attention over %d positions needs %d bytes of partials, over the storage binding limit %d: use a smaller context",
			b.maxCtx, part, d.limits.MaxStorageBufferBindingSize)
	}
	b.attnBatch, err = d.newAttnBatch(b.attnShape(), kvBlockLen, b.batch, b.maxSeqs, b.maxCtx)
	return err
}

// kvBlockBytes is the memory of one block: every layer's keys and values.
func (b *backend) kvBlockBytes() uint64 { return 2 * uint64(b.cfg.Layers) * b.kvLayerBytes() }
