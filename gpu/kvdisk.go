package gpu

import (
	"fmt"
	"io"

	"smolchat/engine"
	"smolchat/internal/kvblock"
)

// The conversation cache's disk spill (engine/kvdisk.go) reads a sequence's keys and values back from
// the device and writes them to fresh blocks. The bytes are the cache's own, laid out as the CPU
// backend's export: a run per block (the block's positions in the range), each run layer by layer, the
// key rows then the value rows, kvDim little-endian elements a row. With an f16 cache (KV_F16, the
// default where the device has shader-f16) they are halves, byte for byte the CPU's layout; an f32
// cache writes float32s, twice the disk, because rounding them to halves would move the logits of a
// conversation read back by about 2e-3 of their scale (measured on the tiny SmolLM3-shaped file),
// twenty times the GPU's batching tolerance. Either way a sequence read back computes as before.
//
// The layout is the CPU's, but not the format: KVFormat names the backend and the element type, so that
// a file written on the GPU is refused by the CPU backend and the other way round. The two compute
// their keys and values in different orders, and the CPU promises that a conversation read back from
// disk answers bit for bit as one evaluated again; keys from the GPU would break that, and the GPU's own
// tolerance (TestSeqContract) is stated for its own keys.

// KVFormat names the layout and numerics of ExportSeq's bytes.
func (b *backend) KVFormat() string {
	return fmt.Sprintf("gpu %s keys and values: %d layers of %d, runs of %d positions",
		b.kvType(), b.cfg.Layers, b.cfg.KVDim(), kvBlockLen)
}

// kvType names the cache's element type.
func (b *backend) kvType() string {
	if b.kvF16 {
		return "f16"
	}
	return "f32"
}

// maxExportRead bounds the bytes one submit of ExportSeq reads back, so that a long range does not
// need a read-back buffer of its whole size; the disk cache exports a block at a time (18 MiB for
// SmolLM3-3B with an f16 cache), which one submit reads.
const maxExportRead = 64 << 20

// ExportSeq writes the keys and values of positions from..to-1 of sequence id to w (from a multiple of
// the block length). The range's rows of every layer are read back in one submit (one copy into the
// read-back buffer and one map); a range of more than maxExportRead bytes takes a submit per
// maxExportRead.
func (b *backend) ExportSeq(id engine.SeqID, from, to int, w io.Writer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.d.Err(); err != nil {
		return fmt.Errorf("gpu backend: export: %w", err)
	}
	s, ok := kvblock.Get(&b.Seqs, id)
	if !ok {
		return fmt.Errorf("gpu backend: export of unknown sequence %d", id)
	}
	if from < 0 || from%kvBlockLen != 0 || to > s.N || from > to {
		return fmt.Errorf("gpu backend: export of positions %d..%d of a sequence of %d (the start must be a multiple of %d)", from, to, s.N, kvBlockLen)
	}
	return b.export(s.Blocks, from, to, w, maxExportRead)
}

// export writes positions from..to-1 of the sequence whose table is blocks, reading back at most
// maxRead bytes a submit (but at least a block).
func (b *backend) export(blocks []int32, from, to int, w io.Writer, maxRead int) error {
	rowBytes := b.cfg.KVDim() * cacheElt(b.kvF16) // a row in the cache
	blockRead := 2 * b.cfg.Layers * kvBlockLen * rowBytes
	perSubmit := max(1, maxRead/blockRead) * kvBlockLen
	for pos := from; pos < to; pos += perSubmit {
		raw, err := b.readRows(blocks, pos, min(pos+perSubmit, to), rowBytes)
		if err != nil {
			return fmt.Errorf("gpu backend: export of positions %d..%d: %w", from, to, err)
		}
		if _, err := w.Write(raw); err != nil {
			return err
		}
	}
	return nil
}

// readRows reads the cache's rows of positions from..to-1 of the sequence whose table is blocks, in
// ExportSeq's order, in one submit.
func (b *backend) readRows(blocks []int32, from, to, rowBytes int) ([]byte, error) {
	raw := make([]byte, 2*b.cfg.Layers*(to-from)*rowBytes)
	e, err := b.d.NewEncoder("exporting the KV cache")
	if err != nil {
		return nil, err
	}
	lb, off := b.kvLayerBytes(), 0
	for pos := from; pos < to; pos += kvBlockLen {
		at, n := uint64(blocks[pos>>kvBlockBits])*lb, min(to-pos, kvBlockLen)*rowBytes
		for l := range b.cfg.Layers {
			e.ReadBack(b.kc[l], at, raw[off:off+n])
			e.ReadBack(b.vc[l], at, raw[off+n:off+2*n])
			off += 2 * n
		}
	}
	return raw, e.Submit()
}

// ImportSeq makes a sequence of n positions from what ExportSeq wrote for positions 0..n-1: it takes
// the blocks (or fails with ErrKVFull before reading), then reads a block's rows at a time and queues
// their writes into the cache. On any error the blocks go back to the pool and no sequence is made.
func (b *backend) ImportSeq(r io.Reader, n int) (engine.SeqID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.d.Err(); err != nil {
		return 0, fmt.Errorf("gpu backend: import: %w", err)
	}
	if n < 0 || n > b.maxCtx {
		return 0, fmt.Errorf("gpu backend: import of %d positions into a context of %d", n, b.maxCtx)
	}
	s := &kvSeq{}
	need := b.kv.GrowCost(s, n)
	if need > b.kv.Available() {
		return 0, b.kv.ErrFull("gpu backend", need)
	}
	if err := b.reserveKV(need); err != nil {
		return 0, fmt.Errorf("gpu backend: import of %d positions: %w", n, err)
	}
	b.kv.Grow(s, n, func(dst, src int32) {}) // an empty sequence has no shared partial block to copy
	if err := b.writeRows(r, s.Blocks, n); err != nil {
		b.kv.Truncate(s, 0)
		return 0, fmt.Errorf("gpu backend: import of %d positions: %w", n, err)
	}
	s.N = n
	return kvblock.Add(&b.Seqs, s), nil
}

// writeRows reads positions 0..n-1 in ExportSeq's order from r into the blocks of table blocks.
func (b *backend) writeRows(r io.Reader, blocks []int32, n int) error {
	row := b.cfg.KVDim() * cacheElt(b.kvF16)
	lb := b.kvLayerBytes()
	run := make([]byte, 2*b.cfg.Layers*kvBlockLen*row)
	for pos := 0; pos < n; pos += kvBlockLen {
		at, rows := uint64(blocks[pos>>kvBlockBits])*lb, min(n-pos, kvBlockLen)
		part := run[:2*b.cfg.Layers*rows*row]
		if _, err := io.ReadFull(r, part); err != nil {
			return err
		}
		for l := range b.cfg.Layers {
			k, v := part[2*l*rows*row:(2*l+1)*rows*row], part[(2*l+1)*rows*row:(2*l+2)*rows*row]
			if err := b.d.Write(b.kc[l], at, k); err != nil {
				return err
			}
			if err := b.d.Write(b.vc[l], at, v); err != nil {
				return err
			}
		}
	}
	return nil
}
