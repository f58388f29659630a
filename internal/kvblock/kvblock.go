// Package kvblock keeps the books of a paged KV cache (as vLLM's PagedAttention): a pool of fixed-size
// blocks of positions counted by reference, and sequences that are tables of block ids. The backends
// (cpu, gpu) hold the blocks' memory, each in its own way, and ask the pool which block a position
// lives in, which blocks to take or give back, and when a shared block must be copied before a write.
//
// Sequences of any length share one budget without fragmentation, and sequences with a common prefix
// (Fork) share its blocks. A block with no reference goes to the free list for reuse; block ids are
// handed out from 0 up, so a backend may allocate memory as ids are first used (Allocated).
package kvblock

import (
	"fmt"

	"smolchat/engine"
)

// Seq is one sequence's cache: its first N positions live in blocks, position i in
// Blocks[i/BlockLen] at row i%BlockLen.
type Seq struct {
	Blocks []int32
	N      int
}

// Pool counts the references to up to a limit of blocks of 1<<bits positions each.
type Pool struct {
	bits  int
	refs  []int32 // by block id, for every id handed out so far
	free  []int32 // ids without a reference
	limit int
}

// New makes a pool of at most limit blocks of 1<<bits positions.
func New(bits, limit int) Pool { return Pool{bits: bits, limit: limit} }

// BlockLen is the positions of a block.
func (p *Pool) BlockLen() int { return 1 << p.bits }

// Limit is the budget in blocks.
func (p *Pool) Limit() int { return p.limit }

// Allocated is the number of block ids handed out so far (0..Allocated()-1): the blocks whose memory
// the backend must hold.
func (p *Pool) Allocated() int { return len(p.refs) }

// Available is how many blocks Grow can still hand out.
func (p *Pool) Available() int { return len(p.free) + p.limit - len(p.refs) }

// Used is the number of blocks with a reference.
func (p *Pool) Used() int { return len(p.refs) - len(p.free) }

// alloc takes a block with one reference; the caller has checked Available.
func (p *Pool) alloc() int32 {
	if n := len(p.free); n > 0 {
		id := p.free[n-1]
		p.free = p.free[:n-1]
		p.refs[id] = 1
		return id
	}
	p.refs = append(p.refs, 1)
	return int32(len(p.refs) - 1)
}

// release drops one reference to block id.
func (p *Pool) release(id int32) {
	if p.refs[id]--; p.refs[id] == 0 {
		p.free = append(p.free, id)
	}
}

// ErrFull is the error of a batch that needs need more blocks than the pool has left; backend names
// who says so ("cpu backend").
func (p *Pool) ErrFull(backend string, need int) error {
	return fmt.Errorf("%s: the batch needs %d more KV blocks of %d positions but %d of %d are free: %w",
		backend, need, p.BlockLen(), p.Available(), p.Limit(), engine.ErrKVFull)
}

// GrowCost is the number of blocks Grow(s, extra) takes from the pool: new blocks past the end of s's
// table, and a copy of its last block when that one is partly filled and shared (copy on write).
func (p *Pool) GrowCost(s *Seq, extra int) int {
	mask := p.BlockLen() - 1
	need := (s.N+extra+mask)>>p.bits - len(s.Blocks)
	if s.N&mask != 0 && extra > 0 && p.refs[s.Blocks[len(s.Blocks)-1]] > 1 {
		need++
	}
	return need
}

// Grow makes s's table cover positions s.N..s.N+extra-1 with blocks that s alone references, so that
// their keys and values can be written; s.N is unchanged. When s's last block is partly filled and
// shared, s gets a new block in its place and copyBlock(dst, src) must copy the old one's contents
// (another sequence holds positions of it past s's, which s's writes must not overwrite). The caller
// has checked GrowCost against Available.
func (p *Pool) Grow(s *Seq, extra int, copyBlock func(dst, src int32)) {
	if extra <= 0 {
		return
	}
	if s.N&(p.BlockLen()-1) != 0 {
		last := len(s.Blocks) - 1
		if old := s.Blocks[last]; p.refs[old] > 1 {
			id := p.alloc()
			copyBlock(id, old)
			p.release(old)
			s.Blocks[last] = id
		}
	}
	for len(s.Blocks)<<p.bits < s.N+extra {
		s.Blocks = append(s.Blocks, p.alloc())
	}
}

// Truncate keeps s's first n positions (all of them when n ≥ s.N, none when n < 0) and releases the
// blocks past them.
func (p *Pool) Truncate(s *Seq, n int) {
	s.N = max(0, min(n, s.N))
	keep := (s.N + p.BlockLen() - 1) >> p.bits
	for _, id := range s.Blocks[keep:] {
		p.release(id)
	}
	s.Blocks = s.Blocks[:keep]
}

// Fork makes a sequence sharing s's first n positions (at most s.N): the blocks that hold them gain a
// reference.
func (p *Pool) Fork(s *Seq, n int) *Seq {
	n = max(0, min(n, s.N))
	f := &Seq{Blocks: append([]int32(nil), s.Blocks[:(n+p.BlockLen()-1)>>p.bits]...), N: n}
	for _, id := range f.Blocks {
		p.refs[id]++
	}
	return f
}

// OnlyIn counts the blocks that no sequence but those of seqs holds: the blocks freeing them would
// return to the pool.
func (p *Pool) OnlyIn(seqs []*Seq) int {
	held := map[int32]int32{}
	for _, s := range seqs {
		for _, id := range s.Blocks {
			held[id]++
		}
	}
	n := 0
	for id, refs := range held {
		if refs == p.refs[id] {
			n++
		}
	}
	return n
}
