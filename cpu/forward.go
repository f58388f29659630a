package cpu

import (
	"context"
	"fmt"

	"smolchat/model"
	"smolchat/model/quant"
)

// forwardBatch runs tokens (at most maxBatch) through the model, token t at position at[t].pos of
// sequence at[t].seq (whose blocks cover it: kvPool.grow), writing their K and V to the cache, and writes
// the logits of the batch rows in want to out (len(want) × Vocab). It does not move the sequences'
// lengths. The tokens of different sequences share the matrix products; only attention tells them apart.
//
// The shape of the pass is model.Family's, for the values the loader lets through (model's
// Family.unimplemented): pre-norm blocks, QK-norm when c.QKNorm, RoPE on adjacent (NORM) or half-split
// (NEOX) pairs with the angles of c.RopeAngles (scaling included) except on the c.NoRope layers, no
// biases, a SiLU-GLU feed-forward, unscaled embeddings, and the embedding table as the output projection
// when c.TiedOutput.
func (b *Backend) forwardBatch(ctx context.Context, tokens []int32, at []kvSlot, want []int, out []float32) error {
	b.allocScratch(len(tokens))
	c, s := b.cfg, &b.s
	T := len(tokens)
	neox := c.Rope == model.RopeNeox
	dim, qdim, kvdim, ff := c.Dim, c.QDim(), c.KVDim(), c.FF

	// token embedding: one row of token_embd each, dequantized.
	x := s.x[:T*dim]
	for t, tok := range tokens {
		if err := quant.DequantizeRow(b.embed.Type, b.embed.Row(int(tok)), x[t*dim:(t+1)*dim]); err != nil {
			return fmt.Errorf("cpu backend: embedding of token %d: %w", tok, err)
		}
	}
	// The rotation angles depend only on the position, so one table per token serves every layer.
	for t := range T {
		s.rope[t].fill(&c, at[t].pos)
	}

	xn, tmp := s.xn[:T*dim], s.tmp[:T*dim]
	q, k, v := s.q[:T*qdim], s.k[:T*kvdim], s.v[:T*kvdim]
	att := s.att[:T*qdim]
	gate, up := s.gate[:T*ff], s.up[:T*ff]
	for l := range b.layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		L := &b.layers[l]

		// Attention, in gpu/forward.go's step names: attention norm, q/k/v projection, qk norm (QK-norm
		// families), rope (not on NoPE layers), kv store, attention (softmax(QKᵀ/√d)·V), output projection, residual. The first layer's
		// attention norm is here; the others' come with the residual add that precedes them.
		if l == 0 {
			b.perToken(T, func(t int) {
				rmsNorm(xn[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], L.attnNorm, c.RMSEps)
			})
		}
		s.encX.reset(xn, T, dim)
		if err := b.matmul(&s.encX, product{m: &L.q, out: q}, product{m: &L.k, out: k}, product{m: &L.v, out: v}); err != nil {
			return fmt.Errorf("cpu backend: layer %d, q/k/v projection: %w", l, err)
		}
		b.perToken(T, func(t int) {
			qt, kt := q[t*qdim:(t+1)*qdim], k[t*kvdim:(t+1)*kvdim]
			if c.QKNorm {
				headNorm(qt, L.qNorm, c.HeadDim, c.RMSEps)
				headNorm(kt, L.kNorm, c.HeadDim, c.RMSEps)
			}
			if L.rope {
				s.rope[t].rope(qt, c.HeadDim, neox)
				s.rope[t].rope(kt, c.HeadDim, neox)
			}
			b.kv.store(at[t].seq, l, at[t].pos, k[t*kvdim:(t+1)*kvdim], v[t*kvdim:(t+1)*kvdim])
		})
		b.attention(l, at, q, att)
		s.encAtt.reset(att, T, qdim)
		if err := b.matmul(&s.encAtt, product{m: &L.o, out: tmp}); err != nil {
			return fmt.Errorf("cpu backend: layer %d, output projection: %w", l, err)
		}

		// Feed-forward: residual, ffn norm, gate/up projection, swiglu, down projection, residual.
		b.perToken(T, func(t int) {
			add(x[t*dim:(t+1)*dim], tmp[t*dim:(t+1)*dim])
			rmsNorm(xn[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], L.ffnNorm, c.RMSEps)
		})
		s.encX.reset(xn, T, dim)
		if err := b.matmul(&s.encX, product{m: &L.gate, out: gate}, product{m: &L.up, out: up}); err != nil {
			return fmt.Errorf("cpu backend: layer %d, gate/up projection: %w", l, err)
		}
		b.swiGLU(gate, up)
		s.encFF.reset(gate, T, ff)
		if err := b.matmul(&s.encFF, product{m: &L.down, out: tmp}); err != nil {
			return fmt.Errorf("cpu backend: layer %d, down projection: %w", l, err)
		}
		// The residual, and the next layer's attention norm while the row is in cache.
		var next []float32
		if l+1 < len(b.layers) {
			next = b.layers[l+1].attnNorm
		}
		b.perToken(T, func(t int) {
			add(x[t*dim:(t+1)*dim], tmp[t*dim:(t+1)*dim])
			if next != nil {
				rmsNorm(xn[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], next, c.RMSEps)
			}
		})
	}
	if len(want) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Only the wanted rows go through the final norm and the (vocabulary-sized) output projection
	// (gpu/forward.go's buildHead).
	for i, t := range want {
		rmsNorm(xn[i*dim:(i+1)*dim], x[t*dim:(t+1)*dim], b.outNorm, c.RMSEps)
	}
	s.encX.reset(xn, len(want), dim)
	if err := b.matmul(&s.encX, product{m: &b.output, out: out}); err != nil {
		return fmt.Errorf("cpu backend: output: %w", err)
	}
	return nil
}

// swiGLU writes silu(gate)·up into gate, split over the workers when there is enough of it.
func (b *Backend) swiGLU(gate, up []float32) {
	const chunk = 4096
	if len(gate) <= 4*chunk {
		swiGLU(gate, up)
		return
	}
	var work chunks
	work.reset(len(gate), chunk)
	b.pool.run(func(int) {
		for {
			lo, hi, ok := work.claim()
			if !ok {
				return
			}
			swiGLU(gate[lo:hi], up[lo:hi])
		}
	})
}

// perToken calls f(t) for every token t of a batch of T, on the workers when there is more than one.
func (b *Backend) perToken(T int, f func(t int)) {
	if T == 1 {
		f(0)
		return
	}
	var work chunks
	work.reset(T, 1)
	b.pool.run(func(int) {
		for {
			t, _, ok := work.claim()
			if !ok {
				return
			}
			f(t)
		}
	})
}
