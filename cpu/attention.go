package cpu

import (
	"math"

	"smolchat/model/quant"
)

// attnScratch is one worker's buffers for attention.
type attnScratch struct {
	q      []float32 // the query heads of one KV group, rounded to half
	scores []float32 // group × positions
}

// attention computes, for each of the T batch tokens (at positions pos0..pos0+T-1, already in the cache)
// and each query head, softmax(q·Kᵀ/√headDim) over the positions up to its own, times V.
//
// Query head h reads KV head h/(Heads/KVHeads) (grouped-query attention). The work is split over
// (token, KV head) pairs, and the query heads of a group are handled together, so each cached key and
// value is read (and converted from half) once per group rather than once per query head. As in llama.cpp,
// the query is rounded to half before its product with the half keys; scores, softmax and the weighted sum
// stay in float32.
func (b *Backend) attention(l, pos0, T int, q, out []float32) {
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
			n := pos0 + t + 1 // causal: positions 0..pos0+t
			if len(ws.q) < group*hd {
				ws.q = make([]float32, group*hd)
			}
			if len(ws.scores) < group*n {
				ws.scores = make([]float32, max(group*n, 2*len(ws.scores)))
			}
			heads := q[t*qdim+kvh*group*hd : t*qdim+(kvh+1)*group*hd]
			qs := ws.q[:group*hd]
			for j, x := range heads {
				qs[j] = quant.F16ToF32(quant.F32ToF16(x))
			}
			sc := ws.scores[:group*n]
			clear(sc)
			// Scores: each page's keys against the group's query heads, every key converted once.
			for page := 0; page*kvPage < n; page++ {
				first := page * kvPage
				cnt := min(kvPage, n-first)
				keys := b.kv.keyRows(l, page)[2*kvh*hd:]
				quant.DotF16Rows(keys, 2*c.KVDim(), cnt, qs, hd, group, hd, sc[first:], n)
			}
			for g := range group {
				row := sc[g*n : (g+1)*n]
				for i := range row {
					row[i] *= scale
				}
				softmax(row)
			}
			// Σ weight·value: the values are stored transposed, so each of the head's hd elements is a
			// run over the page's positions, and its product with each query head's weights a dot product.
			o := out[t*qdim+kvh*group*hd : t*qdim+(kvh+1)*group*hd]
			clear(o)
			for page := 0; page*kvPage < n; page++ {
				first := page * kvPage
				cnt := min(kvPage, n-first)
				vals := b.kv.valueRows(l, page)[2*kvh*hd*kvPage:]
				quant.DotF16Rows(vals, 2*kvPage, hd, sc[first:], n, group, cnt, o, hd)
			}
		}
	}
	if T*c.KVHeads == 1 {
		job(0)
		return
	}
	b.pool.run(job)
}
