package cpu

import (
	"encoding/binary"

	"smolchat/internal/kvblock"
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
// vLLM's PagedAttention): a sequence is a table of block ids (kvblock.Seq), so sequences of any length
// share one budget without fragmentation, and sequences with a common prefix share its blocks. The
// books (references, free blocks, copy on write) are kvblock's; this holds the blocks' memory.
//
// Values are IEEE half floats, as llama.cpp's default cache: half the memory and bandwidth of float32,
// and the same rounding as the reference. A block is one allocation holding, for each layer, the keys
// then the values of its positions, a row per position ([pos][kvDim]): a query·key product is one
// contiguous dot product, and attention adds each position's value row to its accumulators in turn.
//
// A block's memory is allocated when kvblock first hands out its id and kept for reuse, so memory
// follows use rather than the budget.
type kvPool struct {
	kvblock.Pool
	layers, kvDim int
	data          [][]byte // by block id
}

// kvSeq is one sequence's cache: position i in blocks[i/kvBlock] at row i%kvBlock.
type kvSeq = kvblock.Seq

func newKVPool(layers, kvDim, limit int) kvPool {
	return kvPool{Pool: kvblock.New(kvBlockBits, limit), layers: layers, kvDim: kvDim}
}

// blockBytes is the memory of one block.
func (p *kvPool) blockBytes() int { return kvBlockBytes(p.layers, p.kvDim) }

func kvBlockBytes(layers, kvDim int) int { return layers * 2 * kvBlock * kvDim * 2 }

// keyRows and valueRows are layer l's key or value rows in block id: kvBlock rows of kvDim halves.
func (p *kvPool) keyRows(l int, id int32) []byte {
	n := kvBlock * p.kvDim * 2
	return p.data[id][2*l*n : (2*l+1)*n]
}

func (p *kvPool) valueRows(l int, id int32) []byte {
	n := kvBlock * p.kvDim * 2
	return p.data[id][(2*l+1)*n : (2*l+2)*n]
}

// store writes layer l's key and value rows (kvDim floats each) for position pos of s, rounding them to
// half. The block is s's own (grow made it so).
func (p *kvPool) store(s *kvSeq, l, pos int, k, v []float32) {
	id, i := s.Blocks[pos>>kvBlockBits], 2*(pos&(kvBlock-1))*p.kvDim
	kr := p.keyRows(l, id)[i : i+2*p.kvDim]
	for j, x := range k[:p.kvDim] {
		binary.LittleEndian.PutUint16(kr[2*j:], quant.F32ToF16(x))
	}
	vr := p.valueRows(l, id)[i : i+2*p.kvDim]
	for j, x := range v[:p.kvDim] {
		binary.LittleEndian.PutUint16(vr[2*j:], quant.F32ToF16(x))
	}
}

// grow makes s's table cover positions s.N..s.N+extra-1 with blocks that s alone references
// (kvblock.Pool.Grow), allocating the memory of blocks used for the first time. The caller has checked
// GrowCost against Available.
func (p *kvPool) grow(s *kvSeq, extra int) {
	p.Grow(s, extra, func(dst, src int32) {
		p.allocData()
		copy(p.data[dst], p.data[src])
	})
	p.allocData()
}

// allocData gives every block id handed out so far its memory.
func (p *kvPool) allocData() {
	for len(p.data) < p.Allocated() {
		p.data = append(p.data, make([]byte, p.blockBytes()))
	}
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
