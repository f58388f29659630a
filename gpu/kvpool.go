package gpu

import (
	"fmt"

	"smolchat/engine"
	"smolchat/internal/kvblock"
)

// The KV cache on the device is paged, as the CPU's (cpu/kvcache.go): one pool of blocks of kvBlockLen
// positions under a budget, a sequence a table of block ids, sequences made by Fork sharing their
// prefix's blocks until one writes into a shared block (copy on write). The books are kvblock's. Each
// layer's keys and values are one buffer each (one binding), holding every block's rows: block b's
// position i is cache row b*kvBlockLen + i. The buffers grow (doubling, up to the budget) as blocks are
// first used, so memory follows use; a binding's size limit bounds the budget.
//
// A submit's rows may belong to several sequences. Everything but attention treats them as one batch
// of rows: each weight is read once for all. The kv store writes each row to its sequence's block
// (slots), and attention runs each sequence over its own block table (attnBatch).

// kvBlockBits sets the block size: 256 positions, as the CPU's, a multiple of attnChunk so that a split
// decode chunk is consecutive rows of one block.
const kvBlockBits = 8

const kvBlockLen = 1 << kvBlockBits

// maxSeqsPerSubmit bounds the sequences of one submit: the split decode pass keeps partials for each.
const maxSeqsPerSubmit = 16

// attnBatch is how a submit's rows split into sequences, as the attention kernels read it: each row's
// cache row (slots), the sequences with several rows (prefill) and with one (decode), as attnSeg
// records, and their block tables one after another. write fills it before each submit; the counts
// size the dispatches.
type attnBatch struct {
	blockLen, maxSeqs, maxChunks int
	slots, prefill, decode       *buffer
	tables, partials             *buffer

	nPrefill, nDecode int
	maxRows           int // most rows of a prefill sequence
	maxPos            int // most positions a decode sequence attends to
}

// seqSpan is one sequence's rows in a submit: rows row0..row0+n-1 at its positions pos0..pos0+n-1,
// which its blocks cover.
type seqSpan struct {
	blocks        []int32
	row0, n, pos0 int
}

// newAttnBatch allocates the layout of submits of up to rows rows and maxSeqs sequences of up to
// maxCtx positions, in blocks of blockLen, for attention of shape s.
func (d *device) newAttnBatch(s attnShape, blockLen, rows, maxSeqs, maxCtx int) (*attnBatch, error) {
	if blockLen%attnChunk != 0 {
		return nil, fmt.Errorf("kv blocks of %d positions: want a multiple of %d", blockLen, attnChunk)
	}
	a := &attnBatch{blockLen: blockLen, maxSeqs: maxSeqs, maxChunks: ceilDiv(maxCtx, attnChunk)}
	var err error
	for _, b := range []struct {
		dst   **buffer
		label string
		size  uint64
	}{
		{&a.slots, "kv slots", uint64(4 * rows)},
		{&a.prefill, "prefill sequences", uint64(16 * maxSeqs)},
		{&a.decode, "decode sequences", uint64(16 * maxSeqs)},
		{&a.tables, "block tables", uint64(4 * maxSeqs * ceilDiv(maxCtx, blockLen))},
		{&a.partials, "attention partials", uint64(maxSeqs) * attnPartialBytes(s, maxCtx)},
	} {
		if *b.dst, err = d.NewStorage(b.label, b.size); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// write lays out a submit's sequences (at most maxSeqs, rows consecutive from 0) on the device.
func (a *attnBatch) write(d *device, spans []seqSpan) error {
	var slots, prefill, decode, tables []uint32
	a.nPrefill, a.nDecode, a.maxRows, a.maxPos = 0, 0, 0, 0
	for _, s := range spans {
		for i := range s.n {
			p := s.pos0 + i
			slots = append(slots, uint32(int(s.blocks[p/a.blockLen])*a.blockLen+p%a.blockLen))
		}
		seg := []uint32{uint32(s.row0), uint32(s.n), uint32(s.pos0), uint32(len(tables))}
		for _, b := range s.blocks[:ceilDiv(s.pos0+s.n, a.blockLen)] {
			tables = append(tables, uint32(b))
		}
		if s.n == 1 {
			decode = append(decode, seg...)
			a.nDecode++
			a.maxPos = max(a.maxPos, s.pos0+1)
		} else {
			prefill = append(prefill, seg...)
			a.nPrefill++
			a.maxRows = max(a.maxRows, s.n)
		}
	}
	for _, w := range []struct {
		b *buffer
		v []uint32
	}{{a.slots, slots}, {a.prefill, prefill}, {a.decode, decode}, {a.tables, tables}} {
		if err := d.Write(w.b, 0, u32Bytes(w.v)); err != nil {
			return err
		}
	}
	return nil
}

// kvBudget is the pool's size in blocks for a budget of budget bytes (0: engine.DefaultKVMemory for
// parallel sequences), blocks of blockBytes of which one layer's keys take layerBytes. Each layer's
// keys (and values) are one binding, so the device's binding and buffer limits bound the pool: a
// default budget is capped to them, a given one past them is refused.
func (d *device) kvBudget(budget int64, maxCtx, parallel int, blockBytes, layerBytes int64) (int, error) {
	minBlocks := int64(ceilDiv(maxCtx, kvBlockLen))
	maxBlocks := int64(min(d.limits.MaxStorageBufferBindingSize, d.limits.MaxBufferSize)) / layerBytes
	if budget == 0 {
		if parallel <= 0 {
			parallel = engine.DefaultParallel
		}
		budget = engine.DefaultKVMemory(blockBytes/kvBlockLen, maxCtx, parallel, kvBlockLen)
		budget = max(min(budget, maxBlocks*blockBytes), minBlocks*blockBytes)
	}
	blocks := budget / blockBytes
	switch {
	case budget < 0 || blocks < minBlocks:
		return 0, fmt.Errorf("a KV memory budget of %d bytes does not hold the context of %d positions (%d bytes); raise --kv-memory or lower --ctx",
			budget, maxCtx, minBlocks*blockBytes)
	case blocks > maxBlocks:
		return 0, fmt.Errorf("a KV memory budget of %d bytes is %d blocks of %d positions, but a layer's keys for more than %d blocks exceed the device's limit of %d bytes a binding: give --kv-memory %d or less",
			budget, blocks, kvBlockLen, maxBlocks, min(d.limits.MaxStorageBufferBindingSize, d.limits.MaxBufferSize), maxBlocks*blockBytes)
	}
	return int(blocks), nil
}

// kvLayerBytes is one layer's keys (or values) of one block.
func (b *backend) kvLayerBytes() uint64 {
	return uint64(kvBlockLen * b.cfg.KVDim() * cacheElt(b.kvF16))
}

// reserveKV makes the cache buffers hold the blocks a batch needing need more blocks will use: the ids
// kvblock hands out come from its free list first, then new ones. Growing allocates every layer's larger
// buffers first (a failure leaves the cache as it was), copies the old ones into them and rebinds the
// layers' attention.
func (b *backend) reserveKV(need int) error {
	free := b.kv.Allocated() - b.kv.Used()
	want := b.kv.Allocated() + max(0, need-free)
	if want <= b.kvCap {
		return nil
	}
	newCap := min(b.kv.Limit(), max(want, 2*b.kvCap))
	lb := b.kvLayerBytes()
	kc, vc := make([]*buffer, len(b.kc)), make([]*buffer, len(b.vc))
	for l := range kc {
		for _, c := range [][]*buffer{kc, vc} {
			nb, err := b.d.NewStorage(fmt.Sprintf("blk.%d.kv_cache", l), uint64(newCap)*lb)
			if err != nil {
				for _, nb := range append(kc, vc...) {
					if nb != nil {
						b.d.free(nb)
					}
				}
				return fmt.Errorf("growing the KV cache to %d blocks of %d positions: %w", newCap, kvBlockLen, err)
			}
			c[l] = nb
		}
	}
	if b.kvCap > 0 {
		e, err := b.d.NewEncoder("growing the KV cache")
		if err != nil {
			return err
		}
		for l := range kc {
			e.Copy(b.kc[l], 0, kc[l], 0, uint64(b.kvCap)*lb)
			e.Copy(b.vc[l], 0, vc[l], 0, uint64(b.kvCap)*lb)
		}
		if err := e.Submit(); err != nil {
			return err
		}
		for l := range kc {
			b.d.free(b.kc[l])
			b.d.free(b.vc[l])
		}
	}
	b.kc, b.vc, b.kvCap = kc, vc, newCap
	for l, i := range b.attnAt {
		op, err := b.attention(l)
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		b.steps[i].op = op
	}
	return nil
}

// copyBlocks records the copies of copy on write, block src's rows to block dst in every layer's keys
// and values, through a scratch block (WebGPU copies between distinct buffers only).
func (b *backend) copyBlocks(e *encoder, copies [][2]int32) {
	lb := b.kvLayerBytes()
	for _, c := range copies {
		dst, src := uint64(c[0])*lb, uint64(c[1])*lb
		for l := range b.cfg.Layers {
			for _, buf := range []*buffer{b.kc[l], b.vc[l]} {
				e.Copy(buf, src, b.kvScratch, 0, lb)
				e.Copy(b.kvScratch, 0, buf, dst, lb)
			}
		}
	}
}

// kvSeq is a sequence's cache: kvblock's table of blocks.
type kvSeq = kvblock.Seq
