package cpu

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"smolchat/cpu/kernels"

	"smolchat/model"
	"smolchat/model/quant"
)

// interleaveRows is how many weight rows a thread reads and interleaves at a time when loading: a few
// hundred KB of the largest matrices.
const interleaveRows = 64

// interleave gives every matrix whose type the kernels can interleave (Q4_K and Q6_K on AVX2) a copy in that
// layout, which the matrix products then use instead of the mapped file. The rows are read with ReadAt
// from the model file rather than through the mapping, so that the mapped pages are never touched and
// only the copy counts against the process's memory; a model not backed by a readable file is copied
// from the mapping instead.
func (b *Backend) interleave(m *model.Model, mats []*matrix) error {
	var src io.ReaderAt
	if m.File != nil && m.Path != "" {
		if f, err := os.Open(m.Path); err == nil {
			defer f.Close()
			src = f
		}
	}
	bufs := make([][]byte, b.pool.n)
	errs := make([]error, b.pool.n)
	for _, mt := range mats {
		if !kernels.Interleaves(mt.Type) || mt.Rows%4 != 0 || mt.Cols%quant.QK_K != 0 {
			continue
		}
		size, err := kernels.InterleavedSize(mt.Type, mt.Rows, mt.Cols)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", mt.Name, err)
		}
		rb := mt.RowBytes()
		var off int64 = -1 // the rows' offset in src, or -1 to copy from the mapping
		if src != nil {
			if ti := m.File.Tensor(mt.Name); ti != nil && ti.Size == uint64(len(mt.Data)) {
				off = m.File.DataOffset + int64(ti.Offset)
				// A file changed on disk since it was mapped would not hold the same bytes.
				head := make([]byte, min(len(mt.Data), 64))
				if _, err := src.ReadAt(head, off); err != nil || !bytes.Equal(head, mt.Data[:len(head)]) {
					off = -1
				}
			}
		}
		il, free, err := allocWeights(size)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", mt.Name, err)
		}
		b.frees = append(b.frees, free)
		gb := size / (mt.Rows / 4) // one group of four rows
		var work chunks
		work.reset(mt.Rows, interleaveRows)
		b.pool.run(func(w int) {
			for {
				lo, hi, ok := work.claim()
				if !ok || errs[w] != nil {
					return
				}
				rows := mt.Data[lo*rb : hi*rb]
				if off >= 0 {
					if len(bufs[w]) < len(rows) {
						bufs[w] = make([]byte, interleaveRows*rb)
					}
					if _, err := src.ReadAt(bufs[w][:len(rows)], off+int64(lo*rb)); err != nil {
						errs[w] = fmt.Errorf("tensor %s: reading rows %d-%d: %w", mt.Name, lo, hi-1, err)
						return
					}
					rows = bufs[w][:len(rows)]
				}
				if err := kernels.Interleave(mt.Type, rows, mt.Cols, il[lo/4*gb:hi/4*gb]); err != nil {
					errs[w] = fmt.Errorf("tensor %s: %w", mt.Name, err)
					return
				}
			}
		})
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		mt.il, mt.ilMul = il, kernels.InterleavedMatMulFunc(mt.Type)
	}
	return nil
}
