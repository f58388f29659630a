package cpu

import (
	"encoding/binary"
	"fmt"

	"smolchat/engine"
	"smolchat/model/quant"
)

// kvBlockBits sets the KV block size: 1<<kvBlockBits positions per block. Small blocks waste little at
// the end of each sequence; large ones make fewer calls into the attention kernels. It stays 256, the
// page size of the cache before it held sequences: attention sums each block's values apart (the AVX2
// kernel of kernels.WeightedSumF16 keeps its sums in registers over a block), so the block size is part of
// the numerics, and changing it moves every logit by a rounding (and the answers tests pin). Prefix
// sharing does not depend on it: prompts are matched token by token and a shared partial block is
// copied on write. 256 positions of SmolLM3-3B (36 layers, 4 KV heads of 128) are 18 MiB.
const kvBlockBits = 8

const kvBlock = 1 << kvBlockBits

// kvPool holds every sequence's keys and values in fixed-size blocks of kvBlock positions (paged, as
// vLLM's PagedAttention): a sequence is a table of block ids, so sequences of any length share one
// budget without fragmentation, and sequences with a common prefix share its blocks.
//
// Values are IEEE half floats, as llama.cpp's default cache: half the memory and bandwidth of float32,
// and the same rounding as the reference. A block is one allocation holding, for each layer, the keys
// then the values of its positions, a row per position ([pos][kvDim]): a query·key product is one
// contiguous dot product, and attention adds each position's value row to its accumulators in turn.
//
// Blocks are counted by reference (the sequences whose tables hold them). A block with no reference
// goes to the free list, its memory kept for reuse; memory is allocated as blocks are first used, up
// to limit blocks (the budget), so it follows use rather than the budget.
type kvPool struct {
	layers, kvDim int
	data          [][]byte // by block id; allocated on first use
	refs          []int32  // by block id
	free          []int32  // ids of allocated blocks without a reference
	limit         int      // the most blocks
}

func newKVPool(layers, kvDim, limit int) kvPool {
	return kvPool{layers: layers, kvDim: kvDim, limit: limit}
}

// blockBytes is the memory of one block.
func (p *kvPool) blockBytes() int { return kvBlockBytes(p.layers, p.kvDim) }

func kvBlockBytes(layers, kvDim int) int { return layers * 2 * kvBlock * kvDim * 2 }

// available is how many blocks alloc can still hand out.
func (p *kvPool) available() int { return len(p.free) + p.limit - len(p.data) }

// used is the number of blocks with a reference.
func (p *kvPool) used() int { return len(p.data) - len(p.free) }

// alloc takes a block with one reference; the caller has checked available.
func (p *kvPool) alloc() int32 {
	if n := len(p.free); n > 0 {
		id := p.free[n-1]
		p.free = p.free[:n-1]
		p.refs[id] = 1
		return id
	}
	p.data = append(p.data, make([]byte, p.blockBytes()))
	p.refs = append(p.refs, 1)
	return int32(len(p.data) - 1)
}

// release drops one reference to block id.
func (p *kvPool) release(id int32) {
	if p.refs[id]--; p.refs[id] == 0 {
		p.free = append(p.free, id)
	}
}

// keyRows and valueRows are layer l's key or value rows in block id: kvBlock rows of kvDim halves.
func (p *kvPool) keyRows(l int, id int32) []byte {
	n := kvBlock * p.kvDim * 2
	return p.data[id][2*l*n : (2*l+1)*n]
}

func (p *kvPool) valueRows(l int, id int32) []byte {
	n := kvBlock * p.kvDim * 2
	return p.data[id][(2*l+1)*n : (2*l+2)*n]
}

// kvSeq is one sequence's cache: its first n positions live in blocks, position i in
// blocks[i/kvBlock] at row i%kvBlock.
type kvSeq struct {
	blocks []int32
	n      int
}

// store writes layer l's key and value rows (kvDim floats each) for position pos of s, rounding them to
// half. The block is s's own (grow made it so).
func (p *kvPool) store(s *kvSeq, l, pos int, k, v []float32) {
	id, i := s.blocks[pos>>kvBlockBits], 2*(pos&(kvBlock-1))*p.kvDim
	kr := p.keyRows(l, id)[i : i+2*p.kvDim]
	for j, x := range k[:p.kvDim] {
		binary.LittleEndian.PutUint16(kr[2*j:], quant.F32ToF16(x))
	}
	vr := p.valueRows(l, id)[i : i+2*p.kvDim]
	for j, x := range v[:p.kvDim] {
		binary.LittleEndian.PutUint16(vr[2*j:], quant.F32ToF16(x))
	}
}

// growCost is the number of blocks grow(s, extra) takes from the pool: new blocks past the end of s's
// table, and a copy of its last block when that one is partly filled and shared (copy on write).
func (p *kvPool) growCost(s *kvSeq, extra int) int {
	need := (s.n+extra+kvBlock-1)>>kvBlockBits - len(s.blocks)
	if s.n&(kvBlock-1) != 0 && extra > 0 && p.refs[s.blocks[len(s.blocks)-1]] > 1 {
		need++
	}
	return need
}

// grow makes s's table cover positions s.n..s.n+extra-1 with blocks that s alone references, so that
// their keys and values can be written; s.n is unchanged. The caller has checked growCost against
// available.
func (p *kvPool) grow(s *kvSeq, extra int) {
	if extra <= 0 {
		return
	}
	if s.n&(kvBlock-1) != 0 {
		last := len(s.blocks) - 1
		if old := s.blocks[last]; p.refs[old] > 1 {
			// Another sequence shares this block's first positions; the new ones must not overwrite
			// its own positions past ours, so s gets a copy.
			id := p.alloc()
			copy(p.data[id], p.data[old])
			p.release(old)
			s.blocks[last] = id
		}
	}
	for len(s.blocks)<<kvBlockBits < s.n+extra {
		s.blocks = append(s.blocks, p.alloc())
	}
}

// truncate keeps s's first n positions (all of them when n ≥ s.n, none when n < 0) and releases the
// blocks past them.
func (p *kvPool) truncate(s *kvSeq, n int) {
	s.n = max(0, min(n, s.n))
	keep := (s.n + kvBlock - 1) >> kvBlockBits
	for _, id := range s.blocks[keep:] {
		p.release(id)
	}
	s.blocks = s.blocks[:keep]
}

// fork makes a sequence sharing s's first n positions (at most s.n): the blocks that hold them gain a
// reference.
func (p *kvPool) fork(s *kvSeq, n int) *kvSeq {
	n = max(0, min(n, s.n))
	f := &kvSeq{blocks: append([]int32(nil), s.blocks[:(n+kvBlock-1)>>kvBlockBits]...), n: n}
	for _, id := range f.blocks {
		p.refs[id]++
	}
	return f
}

// errFull is the error of a batch that needs more blocks than the budget has left.
func (p *kvPool) errFull(need int) error {
	return fmt.Errorf("cpu backend: the batch needs %d more KV blocks of %d positions but %d of %d are free: %w",
		need, kvBlock, p.available(), p.limit, engine.ErrKVFull)
}

// runs calls f with the bytes of positions from..to-1 of the sequence whose table is blocks, in the
// order ExportSeq writes them: a block at a time, layer by layer, key rows then value rows. from is a
// multiple of kvBlock, so every run starts at a block's first row.
func (p *kvPool) runs(blocks []int32, from, to int, f func([]byte) error) error {
	for pos := from; pos < to; pos += kvBlock {
		id, rows := blocks[pos>>kvBlockBits], min(to-pos, kvBlock)
		for l := range p.layers {
			if err := f(p.keyRows(l, id)[:rows*p.kvDim*2]); err != nil {
				return err
			}
			if err := f(p.valueRows(l, id)[:rows*p.kvDim*2]); err != nil {
				return err
			}
		}
	}
	return nil
}
