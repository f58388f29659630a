package cpu

import (
	"fmt"
	"smolchat/cpu/kernels"

	"smolchat/model"
	"smolchat/model/quant"
)

// rowChunk is how many weight rows a thread claims at a time for a batch (and the granularity of the
// longer claims of a single token). Small enough that threads finish together, large enough that
// claiming and unpacking cost little next to the products; a multiple of 4, the interleaved groups.
const rowChunk = 16

// matrix is a weight matrix ready for the matmul: the tensor, the format its dot product wants the
// activations in, and that dot product.
type matrix struct {
	model.Tensor
	actType quant.Type
	dot     func(w, a []byte, n int) float32
	mul     func(w, a []byte, n, rows, cols int, out []float32, ldo int, s *kernels.Scratch) // rows × tokens
	actRow  int                                                                              // bytes of one activation row encoded as actType

	// il is the matrix interleaved for the kernels' layout (interleave.go), nil when its type has none on
	// this CPU; ilMul multiplies its rows.
	il    []byte
	ilMul func(w, a []byte, n, rows, cols int, out []float32, ldo int, s *kernels.Scratch)

	// exact makes the products dequantize each weight row and multiply it with the float32
	// activations (Exact numerics) instead of quantizing the activations.
	exact bool
}

func newMatrix(t model.Tensor) (matrix, error) {
	at := kernels.VecDotType(t.Type)
	dot := kernels.DotFunc(t.Type)
	if dot == nil {
		return matrix{}, fmt.Errorf("tensor %s: no dot product for type %s", t.Name, t.Type)
	}
	n, err := at.RowBytes(t.Cols)
	if err != nil {
		return matrix{}, fmt.Errorf("tensor %s: activations as %s: %w", t.Name, at, err)
	}
	rb, err := t.Type.RowBytes(t.Cols)
	if err != nil {
		return matrix{}, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	if t.Rows <= 0 || rb*t.Rows != len(t.Data) {
		return matrix{}, fmt.Errorf("tensor %s: %d bytes, want %d rows of %d", t.Name, len(t.Data), t.Rows, rb)
	}
	return matrix{Tensor: t, actType: at, dot: dot, mul: kernels.MatMulFunc(t.Type), actRow: n}, nil
}

// encoded is a batch of activation rows encoded for the dot products: one buffer per activation format,
// filled on first use, so that matrices sharing an input (Q, K, V; gate, up) quantize it once.
type encoded struct {
	x     []float32 // rows × cols
	rows  int
	cols  int
	types []quant.Type
	bufs  [][]byte
	valid []bool
}

// reset points e at a new batch of activations and marks every encoding stale.
func (e *encoded) reset(x []float32, rows, cols int) {
	e.x, e.rows, e.cols = x[:rows*cols], rows, cols
	clear(e.valid)
}

// slot returns the buffer for activation format t, growing it to hold e.rows rows of rowBytes.
func (e *encoded) slot(t quant.Type, rowBytes int) (buf []byte, valid *bool) {
	i := 0
	for i < len(e.types) && e.types[i] != t {
		i++
	}
	if i == len(e.types) {
		e.types = append(e.types, t)
		e.bufs = append(e.bufs, nil)
		e.valid = append(e.valid, false)
	}
	need := e.rows * rowBytes
	if len(e.bufs[i]) < need {
		e.bufs[i] = make([]byte, need)
		e.valid[i] = false
	}
	return e.bufs[i][:need], &e.valid[i]
}

// product is one output of a matmul: out (rows of the batch × m.Rows) = x · mᵀ.
type product struct {
	m   *matrix
	out []float32
	act []byte // the activations encoded as m.actType; set by encode
}

// matmul computes every product over the activation batch e: out[t][r] = m.Row(r) · x[t]. All
// products run in one job over their concatenated rows, so a layer's Q, K and V (or gate and up) cost
// one hand-out to the workers. Each weight row is read once for the whole batch, which is what makes a
// long prompt cheaper per token than decoding.
func (b *Backend) matmul(e *encoded, ps ...product) error {
	if err := b.encode(e, ps); err != nil {
		return err
	}
	total := 0
	for _, p := range ps {
		total += p.m.Rows
	}
	chunk := rowChunk
	if e.rows <= kernels.SmallBatch {
		// One token (or the few of a decode step) streams the weights from memory: each thread takes a
		// contiguous span of the rows (spans), claimed in pieces small enough that a thread slowed down
		// by the operating system holds the others up little.
		chunk = max(rowChunk, (total/(32*b.pool.n)+rowChunk-1)/rowChunk*rowChunk)
	}
	work := &b.s.spans
	work.reset(total, chunk, b.pool.n)
	b.pool.run(func(w int) {
		scratch := &b.s.mm[w]
		for {
			lo, hi, ok := work.claim(w)
			if !ok {
				return
			}
			// A chunk may span the boundary between two products.
			for base, i := 0, 0; lo < hi; i++ {
				p := ps[i]
				end := base + p.m.Rows
				if lo < end {
					stop := min(hi, end)
					mulRows(p, e, lo-base, stop-base, scratch)
					lo = stop
				}
				base = end
			}
		}
	})
	return nil
}

// mulRows computes rows r0..r1-1 of p for every activation row. Interleaved matrices go through the
// interleaved kernels, which unpack a batch's rows group by group into scratch; the others use the
// multi-row products on the mapped rows, or one dot product per row for a single token.
func mulRows(p product, e *encoded, r0, r1 int, scratch *kernels.Scratch) {
	m := p.m
	if m.exact {
		mulExact(p, e, r0, r1)
		return
	}
	if m.il != nil {
		// The interleaved copy holds whole groups of four rows; rows outside them (a chunk can start
		// inside a group when an earlier product in the job has a row count that is not a multiple of
		// four) come from the mapped rows, with the same arithmetic.
		g0, g1 := (r0+3)/4, r1/4
		if g0 < g1 {
			gb := len(m.il) / (m.Rows / 4)
			mulMapped(p, e, r0, 4*g0, scratch)
			m.ilMul(m.il[g0*gb:g1*gb], p.act, m.Cols, 4*(g1-g0), e.rows, p.out[4*g0:], m.Rows, scratch)
			mulMapped(p, e, 4*g1, r1, scratch)
			return
		}
	}
	mulMapped(p, e, r0, r1, scratch)
}

// mulMapped computes rows r0..r1-1 of p from the mapped file's rows.
func mulMapped(p product, e *encoded, r0, r1 int, scratch *kernels.Scratch) {
	if r0 >= r1 {
		return
	}
	m, a := p.m, p.act
	rb := m.RowBytes()
	w := m.Data[r0*rb : r1*rb]
	if e.rows == 1 {
		out := p.out[r0:r1]
		for i := range out {
			out[i] = m.dot(w[i*rb:(i+1)*rb], a, m.Cols)
		}
		return
	}
	m.mul(w, a, m.Cols, r1-r0, e.rows, p.out[r0:], m.Rows, scratch)
}

// mulExact computes rows r0..r1-1 of p in float32: each weight row is dequantized (exactly: every
// supported format's values are float32 numbers) and its dot product taken with every activation row.
func mulExact(p product, e *encoded, r0, r1 int) {
	m := p.m
	rb := m.RowBytes()
	row := make([]float32, m.Cols)
	for r := r0; r < r1; r++ {
		// The tensor's type and size were checked by newMatrix, so this cannot fail.
		if err := quant.DequantizeRow(m.Type, m.Data[r*rb:(r+1)*rb], row); err != nil {
			panic(fmt.Sprintf("cpu: dequantizing %s row %d: %v", m.Name, r, err))
		}
		for t := 0; t < e.rows; t++ {
			p.out[t*m.Rows+r] = kernels.DotF32(row, e.x[t*e.cols:(t+1)*e.cols])
		}
	}
}

// encode fills the activation encodings the products need and that are not yet valid.
func (b *Backend) encode(e *encoded, ps []product) error {
	type job struct {
		t   quant.Type
		buf []byte
		n   int
	}
	var jobs []job
	for i, p := range ps {
		if p.m.Cols != e.cols {
			return fmt.Errorf("matmul %s: %d columns, activations have %d", p.m.Name, p.m.Cols, e.cols)
		}
		if p.m.exact {
			continue // mulExact reads e.x
		}
		buf, valid := e.slot(p.m.actType, p.m.actRow)
		ps[i].act = buf
		if !*valid {
			*valid = true
			jobs = append(jobs, job{p.m.actType, buf, p.m.actRow})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	var work chunks
	work.reset(len(jobs)*e.rows, 1)
	errs := make([]error, b.pool.n)
	run := func(w int) {
		for {
			i, _, ok := work.claim()
			if !ok {
				return
			}
			j, t := jobs[i/e.rows], i%e.rows
			if err := kernels.QuantizeActivation(j.t, e.x[t*e.cols:(t+1)*e.cols], j.buf[t*j.n:(t+1)*j.n]); err != nil && errs[w] == nil {
				errs[w] = err
			}
		}
	}
	if len(jobs)*e.rows == 1 {
		run(0) // one row: not worth waking the workers
	} else {
		b.pool.run(run)
	}
	for _, err := range errs {
		if err != nil {
			clear(e.valid)
			return fmt.Errorf("encoding activations: %w", err)
		}
	}
	return nil
}
