package cpu

import (
	"math"
	"smolchat/cpu/kernels"

	"smolchat/model/quant"
)

// attnScratch is one worker's buffers for attention.
type attnScratch struct {
	q      []float32 // the query heads of one KV group (rounded to half, except in Exact numerics)
	scores []float32 // group × positions
	acc    []float32 // headDim: the running weighted sum of the values, every element a half
	ms, vs []float32 // per position: the sum's rescaling and the value's weight (attendF16)
}

// attnTile is the most rows of one sequence, at consecutive positions, that attention takes together
// (a tile): their queries meet each cached key in one pass (the key converted from half once for all of
// them), and each block of values serves all of them while it is in cache. A prompt's new tokens after a
// long cached conversation read that conversation's keys and values once a tile instead of once a token.
const attnTile = 16

// attention computes, for each batch token t (at position at[t].pos of sequence at[t].seq, whose keys and
// values up to that position are in the cache) and each query head, softmax(q·Kᵀ/√headDim) over the
// positions up to its own, times V.
//
// Query head h reads KV head h/(Heads/KVHeads) (grouped-query attention). The work is split over
// (tile, KV head) pairs; the query heads of a group and the tokens of a tile are handled together, so
// each cached key and value is read (and converted from half) once per group and tile rather than once
// per query head and token.
//
// As in llama.cpp, the query is rounded to half before its products with the half keys (not in Exact
// numerics). The scores are float32. Fast and Exact numerics then take a float32 softmax and a float32
// weighted sum of the values (kernels.WeightedSumF16). Llama numerics repeat llama.cpp's CPU flash
// attention (attendF16): an online softmax whose running sum of values is kept in half precision. Every
// mode uses the same arithmetic for every batch size and tiling, so that a prompt evaluated at once and
// token by token gives the same logits: a score is one kernels.DotF16Rows product whatever the other
// rows of the call (it takes the queries four at a time, so tiles are single tokens when a group is not
// a multiple of four, whose last queries would otherwise go through its one-query path or not depending
// on the tile), each row's softmax covers its own positions, and each row's sum of values adds the
// blocks in order.
func (b *Backend) attention(l int, at []kvSlot, q, out []float32) {
	c := b.cfg
	hd, qdim := c.HeadDim, c.QDim()
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	tileMax := attnTile
	if group%4 != 0 {
		tileMax = 1
	}
	// Tile i is rows tiles[i]..tiles[i+1]-1.
	tiles := make([]int, 0, len(at)+1)
	for t := range at {
		if t == 0 || t-tiles[len(tiles)-1] == tileMax || at[t].seq != at[t-1].seq || at[t].pos != at[t-1].pos+1 {
			tiles = append(tiles, t)
		}
	}
	tiles = append(tiles, len(at))
	nt := len(tiles) - 1
	var work chunks
	work.reset(nt*c.KVHeads, 1)
	job := func(w int) {
		ws := &b.s.attn[w]
		for {
			i, _, ok := work.claim()
			if !ok {
				return
			}
			tile, kvh := i/c.KVHeads, i%c.KVHeads
			t0, t1 := tiles[tile], tiles[tile+1]
			seq := at[t0].seq
			n0, N := at[t0].pos+1, at[t1-1].pos+1 // the positions of the tile's first and last rows
			rows := (t1 - t0) * group
			if len(ws.q) < rows*hd {
				ws.q = make([]float32, rows*hd)
				ws.acc = make([]float32, hd)
			}
			if len(ws.scores) < rows*N {
				ws.scores = make([]float32, max(rows*N, 2*len(ws.scores)))
			}
			if len(ws.ms) < N {
				ws.ms = make([]float32, max(N, 2*len(ws.ms)))
				ws.vs = make([]float32, max(N, 2*len(ws.vs)))
			}
			qs := ws.q[:rows*hd]
			for t := t0; t < t1; t++ {
				heads := q[t*qdim+kvh*group*hd : t*qdim+(kvh+1)*group*hd]
				dst := qs[(t-t0)*group*hd:]
				for j, x := range heads {
					if b.num == Exact {
						dst[j] = x
					} else {
						dst[j] = quant.F16ToF32(quant.F32ToF16(x))
					}
				}
			}
			sc := ws.scores[:rows*N]
			clear(sc)
			// Scores: each block's keys against the tile's query heads, every key converted once. The
			// tile's earlier rows get scores past their own positions too, which they leave unread.
			for blk := 0; blk*kvBlock < N; blk++ {
				first := blk * kvBlock
				cnt := min(kvBlock, N-first)
				keys := b.kv.keyRows(l, seq.Blocks[blk])[2*kvh*hd:]
				kernels.DotF16Rows(keys, 2*c.KVDim(), cnt, qs, hd, rows, hd, sc[first:], N)
			}
			o := out[t0*qdim+kvh*group*hd:]
			if b.num == Llama {
				for t := range t1 - t0 {
					b.attendF16(ws, seq, l, kvh, sc[t*group*N:], N, n0+t, group, scale, o[t*qdim:t*qdim+group*hd])
				}
			} else {
				b.attendF32(seq, l, kvh, sc, N, n0, t1-t0, group, scale, o, qdim)
			}
		}
	}
	if nt*c.KVHeads == 1 {
		job(0)
		return
	}
	b.pool.run(job)
}

// attendF16 turns the raw scores sc (group rows of n, ld apart) of KV head kvh in layer l of seq into out (group rows of
// headDim) the way ggml's flash attention does: for each position in order, a score above the running
// maximum rescales the half accumulator by exp(old max − new max); otherwise the value is weighted by
// exp(score − max). The rescalings and weights are worked out first, then kernels.AccumulateF16 runs the
// half-precision accumulation over each block of the cache.
func (b *Backend) attendF16(ws *attnScratch, seq *kvSeq, l, kvh int, sc []float32, ld, n, group int, scale float32, out []float32) {
	hd := len(out) / group
	ms, vs, acc := ws.ms[:n], ws.vs[:n], ws.acc[:hd]
	ldv := 2 * b.cfg.KVDim()
	for g := range group {
		m, sum := float32(math.Inf(-1)), float32(0)
		for p, x := range sc[g*ld : g*ld+n] {
			x *= scale
			if x > m {
				ms[p], vs[p] = float32(math.Exp(float64(m-x))), 1
				m = x
			} else {
				ms[p], vs[p] = 1, float32(math.Exp(float64(x-m)))
			}
			sum = sum*ms[p] + vs[p]
		}
		clear(acc)
		for blk := 0; blk*kvBlock < n; blk++ {
			first := blk * kvBlock
			cnt := min(kvBlock, n-first)
			kernels.AccumulateF16(acc, b.kv.valueRows(l, seq.Blocks[blk])[2*kvh*hd:], ldv, ms[first:first+cnt], vs[first:first+cnt])
		}
		inv := 1 / sum
		for i, a := range acc {
			out[g*hd+i] = a * inv
		}
	}
}

// attendF32 turns the raw scores of a tile's T tokens for KV head kvh in layer l of seq (sc: group rows
// of ld a token; token t sees the first n0+t positions) into out (token t's group rows of headDim at
// out[t*ldo:]) in float32: a two-pass softmax of each row over its own positions, then Σ weight·value a
// block at a time for every token while the block's values are in cache (each token's sums add the
// blocks in order, as they would alone).
func (b *Backend) attendF32(seq *kvSeq, l, kvh int, sc []float32, ld, n0, T, group int, scale float32, out []float32, ldo int) {
	hd := b.cfg.HeadDim
	for t := range T {
		for g := range group {
			row := sc[(t*group+g)*ld : (t*group+g)*ld+n0+t]
			for i := range row {
				row[i] *= scale
			}
			softmax(row)
		}
		clear(out[t*ldo : t*ldo+group*hd])
	}
	ldv := 2 * b.cfg.KVDim()
	for blk := 0; blk*kvBlock < n0+T-1; blk++ {
		first := blk * kvBlock
		values := b.kv.valueRows(l, seq.Blocks[blk])[2*kvh*hd:]
		for t := range T {
			if n := n0 + t; first < n {
				kernels.WeightedSumF16(out[t*ldo:t*ldo+group*hd], group, values, ldv, sc[t*group*ld+first:], ld, min(kvBlock, n-first))
			}
		}
	}
}
