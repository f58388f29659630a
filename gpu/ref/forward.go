package ref

import (
	"fmt"
	"math"

	"smolchat/model"
	"smolchat/model/quant"
)

// Model is a float32 copy of a model's weights for the reference forward pass. Unlike the CPU backend
// it never quantizes activations, so it isolates the GPU kernels' own error.
type Model struct {
	cfg           model.Config
	embed, output []float32
	outNorm       []float32
	layers        []layer
	keys, values  [][]float32 // per layer, position-major
	n             int
}

type layer struct {
	attnNorm, ffnNorm        []float32
	qNorm, kNorm             []float32
	q, k, v, o, gate, up, dn []float32
}

// NewModel dequantizes every weight of m (memory: four bytes per parameter).
func NewModel(m *model.Model) (*Model, error) {
	c := m.Config
	deq := func(t model.Tensor) ([]float32, error) {
		out := make([]float32, t.Rows*t.Cols)
		rb := t.RowBytes()
		for r := range t.Rows {
			if err := quant.DequantizeRow(t.Type, t.Data[r*rb:(r+1)*rb], out[r*t.Cols:(r+1)*t.Cols]); err != nil {
				return nil, fmt.Errorf("ref: tensor %s: %w", t.Name, err)
			}
		}
		return out, nil
	}
	r := &Model{cfg: c, keys: make([][]float32, c.Layers), values: make([][]float32, c.Layers)}
	var err error
	if r.embed, err = deq(m.Weights.Embed); err != nil {
		return nil, err
	}
	if r.outNorm, err = deq(m.Weights.OutputNorm); err != nil {
		return nil, err
	}
	if r.output, err = deq(m.Weights.Output); err != nil {
		return nil, err
	}
	for _, L := range m.Weights.Layers {
		var l layer
		for _, p := range []struct {
			dst *[]float32
			t   model.Tensor
		}{{&l.attnNorm, L.AttnNorm}, {&l.ffnNorm, L.FFNNorm}, {&l.q, L.Q}, {&l.k, L.K}, {&l.v, L.V}, {&l.o, L.O},
			{&l.gate, L.Gate}, {&l.up, L.Up}, {&l.dn, L.Down}, {&l.qNorm, L.QNorm}, {&l.kNorm, L.KNorm}} {
			if p.t.Data == nil { // no QK-norm
				continue
			}
			if *p.dst, err = deq(p.t); err != nil {
				return nil, err
			}
		}
		r.layers = append(r.layers, l)
	}
	return r, nil
}

// Step evaluates one token at the next position and returns its logits. It follows model.Family for
// the values the loader lets through (see cpu/forward.go).
func (r *Model) Step(tok int32) []float32 {
	c := r.cfg
	pos := r.n
	h := append([]float32(nil), r.embed[int(tok)*c.Dim:(int(tok)+1)*c.Dim]...)
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	cs := Angles(&c, pos)
	neox := c.Rope == model.RopeNeox
	for li, L := range r.layers {
		x := RMSNorm(h, L.attnNorm, c.RMSEps)
		q := MatVec(L.q, c.QDim(), c.Dim, x)
		k := MatVec(L.k, c.KVDim(), c.Dim, x)
		v := MatVec(L.v, c.KVDim(), c.Dim, x)
		if c.QKNorm {
			HeadNorm(q, L.qNorm, c.HeadDim, c.RMSEps)
			HeadNorm(k, L.kNorm, c.HeadDim, c.RMSEps)
		}
		if !c.NoRope[li] {
			Rotate(q, c.HeadDim, neox, cs)
			Rotate(k, c.HeadDim, neox, cs)
		}
		r.keys[li] = append(r.keys[li], k...)
		r.values[li] = append(r.values[li], v...)
		att := Attention(q, r.keys[li], r.values[li], c.Heads, c.KVHeads, c.HeadDim, pos+1, scale)
		o := MatVec(L.o, c.Dim, c.QDim(), att)
		for i := range h {
			h[i] += o[i]
		}
		x = RMSNorm(h, L.ffnNorm, c.RMSEps)
		g := SiluMul(MatVec(L.gate, c.FF, c.Dim, x), MatVec(L.up, c.FF, c.Dim, x))
		d := MatVec(L.dn, c.Dim, c.FF, g)
		for i := range h {
			h[i] += d[i]
		}
	}
	r.n++
	return MatVec(r.output, c.Vocab, c.Dim, RMSNorm(h, r.outNorm, c.RMSEps))
}
