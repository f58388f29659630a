package gpu

import (
	"context"
	"fmt"
	"math"

	"smolchat/engine"
	"smolchat/model"
)

// The forward pass on the device, listed once in the order it runs and with the step names of
// cpu/forward.go. Each step is one kernel bound at load to its buffers; submit records the list as it
// stands. Where the CPU does work between two matrix products (RoPE, the residual adds, SwiGLU), the GPU
// folds it into the product that precedes it (the ROPE, ACCUM and GLU variants of the matrix kernels),
// which saves a dispatch and a round trip of the activations through memory each time; the step's name
// says what it folds in. QK-norm and NEOX RoPE, which a projection cannot fold in, are a step of their own
// (head_rope.wgsl). The pass has the shape of model.Family for the values the loader lets through (see
// cpu/forward.go): the steps read c.Rope, c.QKNorm, c.NoRope and c.TiedOutput, and no family's name.

// step is one kernel of the forward pass.
type step struct {
	Layer int    // transformer block, -1 outside them
	Name  string // what it computes, as cpu/forward.go names it
	op    stepOp
}

// stepOp is a kernel bound to its buffers (op, matMulOp, embedOp).
type stepOp interface {
	Record(e *encoder, T int)
	// describe names the kernel variant that T tokens after pos cached positions run, and its work.
	describe(T, pos int) opInfo
}

// stepList builds steps in order and keeps the first error, so a block reads as a list.
type stepList struct {
	layer int
	steps []step
	err   error
}

// add builds the step unless an earlier one failed.
func (s *stepList) add(name string, build func() (stepOp, error)) {
	if s.err != nil {
		return
	}
	op, err := build()
	if err != nil {
		if s.layer >= 0 {
			s.err = fmt.Errorf("layer %d, %s: %w", s.layer, name, err)
		} else {
			s.err = fmt.Errorf("%s: %w", name, err)
		}
		return
	}
	s.steps = append(s.steps, step{Layer: s.layer, Name: name, op: op})
}

// buildSteps uploads the layers' weights and builds the forward pass up to the final norm: the token
// embedding, every transformer block (layerSteps), then the final norm, kept apart because only a step
// with wanted rows runs it.
func (b *backend) buildSteps(W model.Weights, embed *weights, up *uploader) error {
	c, d := b.cfg, b.d
	s := stepList{layer: -1}
	s.add("token embedding", func() (stepOp, error) { return d.NewEmbed(embed, whole(b.tok), whole(b.h)) })
	if s.err != nil {
		return s.err
	}
	b.steps = s.steps
	for l, L := range W.Layers {
		w, err := up.layer(L)
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		steps, err := b.layerSteps(l, w)
		if err != nil {
			return err
		}
		b.steps = append(b.steps, steps...)
	}
	for i, st := range b.steps {
		if st.Name == attnStep {
			b.attnAt = append(b.attnAt, i)
		}
	}
	outNorm, err := up.vector(W.OutputNorm)
	if err != nil {
		return err
	}
	s = stepList{layer: -1}
	s.add("final norm", func() (stepOp, error) {
		return d.NewRMSNorm(whole(b.h), outNorm, whole(b.xn), c.Dim, c.Dim, c.RMSEps)
	})
	if s.err != nil {
		return s.err
	}
	b.finalNorm = s.steps[0]
	return nil
}

// layerSteps builds transformer block l, step by step as cpu/forward.go computes it.
func (b *backend) layerSteps(l int, w layerWeights) ([]step, error) {
	c, d := b.cfg, b.d
	dim, qdim, kvdim, ff := c.Dim, c.QDim(), c.KVDim(), c.FF
	h, xn := whole(b.h), whole(b.xn)
	rope := !c.NoRope[l]
	// Adjacent-pair RoPE of un-normed heads is fused into the projection (rope_pair.wgsl); QK-norm and
	// NEOX pairs take a step of their own after it (head_rope.wgsl).
	fused := rope && c.Rope == model.RopeNorm && !c.QKNorm
	apart := c.QKNorm || (rope && !fused)
	s := stepList{layer: l}

	// Attention: norm, Q/K/V projections, QK-norm, RoPE, cache, softmax(QKᵀ/√d)·V, output projection + residual.
	s.add("attention norm", func() (stepOp, error) { return d.NewRMSNorm(h, w.attnNorm, xn, dim, dim, c.RMSEps) })
	s.add(withRope("q projection", fused), func() (stepOp, error) { return b.projection(w.q, b.q, qdim, fused) })
	s.add(withRope("k projection", fused), func() (stepOp, error) { return b.projection(w.k, b.k, kvdim, fused) })
	if apart {
		s.add(headStep("q", c.QKNorm, rope), func() (stepOp, error) { return b.headRope(b.q, c.Heads, qdim, w.qNorm, rope) })
		s.add(headStep("k", c.QKNorm, rope), func() (stepOp, error) { return b.headRope(b.k, c.KVHeads, kvdim, w.kNorm, rope) })
	}
	s.add("v projection", func() (stepOp, error) { return d.NewMatMul(w.v, xn, dim, whole(b.v), kvdim, 0) })
	s.add(attnStep, func() (stepOp, error) { return b.attention(l) })
	s.add("output projection + residual", func() (stepOp, error) { return d.NewMatMulAdd(w.o, whole(b.att), qdim, h, dim, 0) })

	// Feed-forward: norm, down(silu(gate) · up) + residual.
	s.add("ffn norm", func() (stepOp, error) { return d.NewRMSNorm(h, w.ffnNorm, xn, dim, dim, c.RMSEps) })
	s.add("gate projection", func() (stepOp, error) { return d.NewMatMul(w.gate, xn, dim, whole(b.gate), ff, 0) })
	s.add("up projection + swiglu", func() (stepOp, error) { return d.NewMatMulGLU(w.upProj, xn, dim, whole(b.gate), ff, 0) })
	s.add("down projection + residual", func() (stepOp, error) { return d.NewMatMulAdd(w.down, whole(b.gate), ff, h, dim, 0) })
	return s.steps, s.err
}

// attnStep names each layer's attention step, which a growing KV cache rebinds (reserveKV).
const attnStep = "kv store + attention"

// attention binds layer l's kv store and attention to its caches.
func (b *backend) attention(l int) (*attentionOp, error) {
	return b.d.NewAttention(whole(b.q), whole(b.k), whole(b.v), whole(b.kc[l]), whole(b.vc[l]), whole(b.att), b.attnShape())
}

// attnShape is the model's attention over the backend's buffers.
func (b *backend) attnShape() attnShape {
	c := b.cfg
	return attnShape{Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, QStride: c.QDim(), OutStride: c.QDim(),
		KVStride: c.KVDim(), Scale: float32(1 / math.Sqrt(float64(c.HeadDim))), F16: b.kvF16, Batch: b.attnBatch}
}

// withRope names a query or key projection: on NoPE layers it does not rotate.
func withRope(name string, rope bool) string {
	if rope {
		return name + " + rope"
	}
	return name
}

// headStep names the step after a query or key projection: "q norm + rope", "k rope", "q norm".
func headStep(which string, norm, rope bool) string {
	switch {
	case norm && rope:
		return which + " norm + rope"
	case norm:
		return which + " norm"
	}
	return which + " rope"
}

// headRope binds the QK-norm (gains g, when the family has it) and RoPE (when rope) of the heads in out.
func (b *backend) headRope(out *buffer, heads, stride int, g bufRange, rope bool) (*op, error) {
	c := b.cfg
	return b.d.NewHeadRope(whole(out), heads, c.HeadDim, stride, c.RopeDim, headOptions{
		Norm: c.QKNorm, G: g, Eps: c.RMSEps, Rope: rope, CS: whole(b.cs), Neox: c.Rope == model.RopeNeox})
}

// projection binds a query or key projection of the normed hidden states into out (stride floats per
// token), rotating the heads as they are stored when rope is set.
func (b *backend) projection(w *weights, out *buffer, stride int, rope bool) (*matMulOp, error) {
	c := b.cfg
	if !rope {
		return b.d.NewMatMul(w, whole(b.xn), c.Dim, whole(out), stride, 0)
	}
	return b.d.NewMatMulRope(w, whole(b.xn), c.Dim, whole(out), stride, whole(b.cs), c.HeadDim, c.RopeDim)
}

// buildHead builds the output projection (the embedding table again when the model ties them) and the
// device argmax over its logits.
func (b *backend) buildHead(W model.Weights, embed *weights, up *uploader) error {
	c, d := b.cfg, b.d
	output := embed
	if !c.TiedOutput {
		var err error
		if output, err = up.matrix(W.Output); err != nil {
			return err
		}
	}
	var err error
	if b.lmHead, err = d.NewMatMulRows(output, whole(b.sel), c.Dim, whole(b.logits), c.Vocab, 0); err != nil {
		return fmt.Errorf("output projection: %w", err)
	}
	if b.argmax, err = d.NewArgmax(whole(b.logits), c.Vocab, 0); err != nil {
		return fmt.Errorf("argmax: %w", err)
	}
	return nil
}

// Steps lists the forward pass's steps up to the final norm, in the order a submit records them.
func (b *backend) Steps() []step {
	return append(append([]step(nil), b.steps...), b.finalNorm)
}

// headFunc records the output work for rows (indices into a submit's tokens, at most maxOut; first is
// the index in want of the first of them) after the final norm, and returns what to do with the
// read-back once the submit completes (or nil).
type headFunc func(e *encoder, rows []int, first int) (after func())

// forwardOwn evaluates tokens on Forward's own sequence.
func (b *backend) forwardOwn(ctx context.Context, tokens []int32, want []int, head headFunc) error {
	if err := engine.CheckForward(tokens, want, b.cfg.Vocab, b.own.N, b.maxCtx); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	return b.forward(ctx, []*kvSeq{&b.own}, []engine.SeqEntry{{Tokens: tokens, Want: want}}, head)
}

// forward evaluates a checked batch, entry i on seqs[i]: it takes the blocks the batch needs (or fails
// with ErrKVFull before any work), stacks every entry's tokens into rows, and runs them through the
// layers in submits of at most b.batch rows from at most b.maxSeqs sequences, recording head for the
// wanted rows of each. On any error, cancellation included, every sequence keeps the positions it had:
// positions are only committed at the end.
func (b *backend) forward(ctx context.Context, seqs []*kvSeq, batch []engine.SeqEntry, head headFunc) error {
	if err := b.d.Err(); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	need, rows := 0, 0
	for i, e := range batch {
		need += b.kv.GrowCost(seqs[i], len(e.Tokens))
		rows += len(e.Tokens)
	}
	if need > b.kv.Available() {
		return b.kv.ErrFull("gpu backend", need)
	}
	if err := b.reserveKV(need); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	before := b.d.Stats()
	defer func() {
		after := b.d.Stats()
		b.last = StepStats{Tokens: rows, Dispatches: int(after.Dispatches - before.Dispatches), Submits: int(after.Submits - before.Submits)}
	}()
	// Copy on write is recorded at the start of the first submit, which nothing stops before it runs:
	// a sequence's replaced block must hold its old positions even if the batch fails later.
	var copies [][2]int32
	cow := func(dst, src int32) { copies = append(copies, [2]int32{dst, src}) }
	rb := batchRows{entry: make([]int, 0, rows), first: make([]int, len(batch)), start: make([]int, len(batch))}
	tokens := make([]int32, 0, rows)
	var want []int // rows of tokens
	for i, e := range batch {
		s := seqs[i]
		rb.start[i], rb.first[i] = s.N, len(tokens)
		b.kv.Grow(s, len(e.Tokens), cow)
		for _, w := range e.Want {
			want = append(want, len(tokens)+w)
		}
		tokens = append(tokens, e.Tokens...)
		for range e.Tokens {
			rb.entry = append(rb.entry, i)
		}
	}
	wi := 0
	for off := 0; off < len(tokens); {
		if off > 0 {
			if err := ctx.Err(); err != nil {
				return b.undo(seqs, rb.start, err)
			}
		}
		end, spans := b.nextSubmit(seqs, rb, off)
		var local []int
		first := wi
		for wi < len(want) && want[wi] < end {
			local = append(local, want[wi]-off)
			wi++
		}
		// The first maxOut wanted rows ride along with the layers' submit; more get output-only submits
		// while the rows' final hidden states are still in place.
		n0 := min(len(local), b.maxOut)
		if err := b.submit(tokens[off:end], spans, copies, true, local[:n0], first, head); err != nil {
			return b.undo(seqs, rb.start, err)
		}
		copies = nil
		for done := n0; done < len(local); done += b.maxOut {
			if err := b.submit(tokens[off:end], spans, nil, false, local[done:min(done+b.maxOut, len(local))], first+done, head); err != nil {
				return b.undo(seqs, rb.start, err)
			}
		}
		off = end
	}
	for i, e := range batch {
		seqs[i].N += len(e.Tokens)
	}
	return nil
}

// undo cuts every sequence back to its length before a failed batch and returns err.
func (b *backend) undo(seqs []*kvSeq, start []int, err error) error {
	for i, s := range seqs {
		b.kv.Truncate(s, start[i])
	}
	return err
}

// batchRows says where a batch's stacked rows come from: row r is of entry entry[r]; entry i's rows
// start at row first[i] and its sequence's position start[i].
type batchRows struct {
	entry, first, start []int
}

// nextSubmit picks the rows of the submit that starts at row off: up to b.batch rows from at most
// b.maxSeqs entries. It returns the row past them and each entry's span of them.
func (b *backend) nextSubmit(seqs []*kvSeq, rb batchRows, off int) (int, []seqSpan) {
	var spans []seqSpan
	r := off
	for r < len(rb.entry) && r-off < b.batch && len(spans) < b.maxSeqs {
		i, r0 := rb.entry[r], r
		for r < len(rb.entry) && r-off < b.batch && rb.entry[r] == i {
			r++
		}
		spans = append(spans, seqSpan{blocks: seqs[i].Blocks, row0: r0 - off, n: r - r0, pos0: rb.start[i] + r0 - rb.first[i]})
	}
	return r, spans
}

// submit evaluates one submit's rows, spans the sequences they belong to: with layers, it records the
// copies of copy on write, writes the rows' inputs and records every step up to the final norm; with
// rows, the final norm and head. It submits once.
func (b *backend) submit(chunk []int32, spans []seqSpan, copies [][2]int32, layers bool, rows []int, first int, head headFunc) error {
	T := len(chunk)
	if err := b.d.SetStep(T, spans[0].pos0); err != nil {
		return err
	}
	e, err := b.d.NewEncoder("forward")
	if err != nil {
		return err
	}
	if layers {
		b.copyBlocks(e, copies)
		if err := b.writeInputs(chunk, spans); err != nil {
			return err
		}
		for _, s := range b.steps {
			s.op.Record(e, T)
		}
		if len(rows) > 0 {
			b.finalNorm.op.Record(e, T)
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

// writeInputs writes a submit's token ids, the RoPE angles of each row's position (computed by
// model.Config.RopeAngles as the CPU backend's are), and the layout of its sequences for attention.
func (b *backend) writeInputs(chunk []int32, spans []seqSpan) error {
	c := b.cfg
	ids := make([]uint32, len(chunk))
	for i, t := range chunk {
		ids[i] = uint32(t)
	}
	if err := b.d.Write(b.tok, 0, u32Bytes(ids)); err != nil {
		return err
	}
	cs := make([]float32, len(chunk)*c.RopeDim)
	for _, s := range spans {
		for i := range s.n {
			r := s.row0 + i
			c.RopeAngles(s.pos0+i, cs[r*c.RopeDim:(r+1)*c.RopeDim])
		}
	}
	if err := b.d.Write(b.cs, 0, f32Bytes(cs)); err != nil {
		return err
	}
	return b.attnBatch.write(b.d, spans)
}

// selectRows copies the final-normed hidden states of rows (at most maxOut) to the LM head's input, a
// buffer or a texture (device.headTex).
func (b *backend) selectRows(e *encoder, rows []int) {
	rowBytes := uint64(4 * b.cfg.Dim)
	for i, r := range rows {
		if b.sel.tex != nil {
			e.CopyToTexture(b.xn, uint64(r)*rowBytes, b.sel, i)
		} else {
			e.Copy(b.xn, uint64(r)*rowBytes, b.sel, uint64(i)*rowBytes, rowBytes)
		}
	}
}
