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

// attention computes, for each batch token t (at position at[t].pos of sequence at[t].seq, whose keys and
// values up to that position are in the cache) and each query head, softmax(q·Kᵀ/√headDim) over the positions up to its own, times V.
//
// Query head h reads KV head h/(Heads/KVHeads) (grouped-query attention). The work is split over
// (token, KV head) pairs, and the query heads of a group are handled together, so each cached key and
// value is read (and converted from half) once per group rather than once per query head.
//
// As in llama.cpp, the query is rounded to half before its products with the half keys (not in Exact
// numerics). The scores are float32. Fast and Exact numerics then take a float32 softmax and a float32
// weighted sum of the values (kernels.WeightedSumF16). Llama numerics repeat llama.cpp's CPU flash
// attention (attendF16): an online softmax whose running sum of values is kept in half precision. Every
// mode uses the same arithmetic for every batch size, so that a prompt evaluated at once and token by
// token gives the same logits.
func (b *Backend) attention(l int, at []kvSlot, q, out []float32) {
	T := len(at)
	c := b.cfg
	hd, qdim := c.HeadDim, c.QDim()
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	var work chunks
	work.reset(T*c.KVHeads, 1)
	job := func(w int) {
		ws := &b.s.attn[w]
		for {
			i, _, ok := work.claim()
			if !ok {
				return
			}
			t, kvh := i/c.KVHeads, i%c.KVHeads
			seq := at[t].seq
			n := at[t].pos + 1 // causal: positions 0..pos of its own sequence
			if len(ws.q) < group*hd {
				ws.q = make([]float32, group*hd)
				ws.acc = make([]float32, hd)
			}
			if len(ws.scores) < group*n {
				ws.scores = make([]float32, max(group*n, 2*len(ws.scores)))
				ws.ms = make([]float32, max(n, 2*len(ws.ms)))
				ws.vs = make([]float32, max(n, 2*len(ws.vs)))
			}
			heads := q[t*qdim+kvh*group*hd : t*qdim+(kvh+1)*group*hd]
			qs := ws.q[:group*hd]
			for j, x := range heads {
				if b.num == Exact {
					qs[j] = x
				} else {
					qs[j] = quant.F16ToF32(quant.F32ToF16(x))
				}
			}
			sc := ws.scores[:group*n]
			clear(sc)
			// Scores: each block's keys against the group's query heads, every key converted once.
			for blk := 0; blk*kvBlock < n; blk++ {
				first := blk * kvBlock
				cnt := min(kvBlock, n-first)
				keys := b.kv.keyRows(l, seq.Blocks[blk])[2*kvh*hd:]
				kernels.DotF16Rows(keys, 2*c.KVDim(), cnt, qs, hd, group, hd, sc[first:], n)
			}
			o := out[t*qdim+kvh*group*hd : t*qdim+(kvh+1)*group*hd]
			if b.num == Llama {
				b.attendF16(ws, seq, l, kvh, sc, n, group, scale, o)
			} else {
				b.attendF32(seq, l, kvh, sc, n, group, scale, o)
			}
		}
	}
	if T*c.KVHeads == 1 {
		job(0)
		return
	}
	b.pool.run(job)
}

// attendF16 turns the raw scores sc (group rows of n) of KV head kvh in layer l of seq into out (group rows of
// headDim) the way ggml's flash attention does: for each position in order, a score above the running
// maximum rescales the half accumulator by exp(old max − new max); otherwise the value is weighted by
// exp(score − max). The rescalings and weights are worked out first, then kernels.AccumulateF16 runs the
// half-precision accumulation over each block of the cache.
func (b *Backend) attendF16(ws *attnScratch, seq *kvSeq, l, kvh int, sc []float32, n, group int, scale float32, out []float32) {
	hd := len(out) / group
	ms, vs, acc := ws.ms[:n], ws.vs[:n], ws.acc[:hd]
	ldv := 2 * b.cfg.KVDim()
	for g := range group {
		m, sum := float32(math.Inf(-1)), float32(0)
		for p, x := range sc[g*n : (g+1)*n] {
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

// attendF32 turns the raw scores sc (group rows of n) of KV head kvh in layer l of seq into out (group
// rows of headDim) in float32: a two-pass softmax of each row, then Σ weight·value over each block of
// the cache.
func (b *Backend) attendF32(seq *kvSeq, l, kvh int, sc []float32, n, group int, scale float32, out []float32) {
	hd := len(out) / group
	for g := range group {
		row := sc[g*n : (g+1)*n]
		for i := range row {
			row[i] *= scale
		}
		softmax(row)
	}
	clear(out)
	ldv := 2 * b.cfg.KVDim()
	for blk := 0; blk*kvBlock < n; blk++ {
		first := blk * kvBlock
		cnt := min(kvBlock, n-first)
		kernels.WeightedSumF16(out, group, b.kv.valueRows(l, seq.Blocks[blk])[2*kvh*hd:], ldv, sc[first:], n, cnt)
	}
}
