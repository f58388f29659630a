package kvblock

import (
	"fmt"
	"sync"

	"smolchat/engine"
)

// Seqs is an engine.SeqBackend's sequences by id, over its pool: the backends embed it for the
// SeqBackend methods that only keep books (NewSeq, Fork, SeqLen, TruncateSeq, FreeSeq, KV,
// BlocksOnlyIn). Those take the backend's lock, which also guards its forward passes; Lookup and Drop
// are functions, not methods, so that they stay off the backend's method set, and the backend calls
// them holding the lock.
type Seqs struct {
	mu         *sync.Mutex
	pool       *Pool
	name       string // the backend, "cpu backend": errors start with it
	blockBytes int
	byID       map[engine.SeqID]*Seq
	next       engine.SeqID
}

// NewSeqs keeps the sequences of the backend called name, whose lock is mu, in pool, whose blocks take
// blockBytes each.
func NewSeqs(name string, mu *sync.Mutex, pool *Pool, blockBytes int) Seqs {
	return Seqs{mu: mu, pool: pool, name: name, blockBytes: blockBytes, byID: map[engine.SeqID]*Seq{}}
}

// NewSeq makes an empty sequence.
func (s *Seqs) NewSeq() engine.SeqID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(&Seq{})
}

func (s *Seqs) add(q *Seq) engine.SeqID {
	s.next++
	s.byID[s.next] = q
	return s.next
}

// Fork makes a sequence that shares the first n positions of src.
func (s *Seqs) Fork(src engine.SeqID, n int) (engine.SeqID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.byID[src]
	if !ok {
		return 0, fmt.Errorf("%s: fork of unknown sequence %d", s.name, src)
	}
	return s.add(s.pool.Fork(q, n)), nil
}

// SeqLen is the number of cached positions of sequence id (0 for an unknown one).
func (s *Seqs) SeqLen(id engine.SeqID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.byID[id]; ok {
		return q.N
	}
	return 0
}

// TruncateSeq keeps the first n positions of sequence id.
func (s *Seqs) TruncateSeq(id engine.SeqID, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.byID[id]; ok {
		s.pool.Truncate(q, n)
	}
}

// FreeSeq releases sequence id and its blocks.
func (s *Seqs) FreeSeq(id engine.SeqID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.byID[id]; ok {
		s.pool.Truncate(q, 0)
		delete(s.byID, id)
	}
}

// KV reports the pool's blocks.
func (s *Seqs) KV() engine.KVUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return engine.KVUsage{BlockLen: s.pool.BlockLen(), BlockBytes: s.blockBytes, Blocks: s.pool.Limit(), Used: s.pool.Used()}
}

// BlocksOnlyIn counts the blocks that no sequence but those of ids holds.
func (s *Seqs) BlocksOnlyIn(ids []engine.SeqID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := make([]*Seq, 0, len(ids))
	for _, id := range ids {
		if q, ok := s.byID[id]; ok {
			held = append(held, q)
		}
	}
	return s.pool.OnlyIn(held)
}

// Lookup returns the sequences of a batch's entries, checked: each known and in the batch once, its
// tokens and wanted rows valid for a vocabulary of vocab and a context of maxCtx (engine.CheckForward).
// The caller holds the lock.
func Lookup(s *Seqs, batch []engine.SeqEntry, vocab, maxCtx int) ([]*Seq, error) {
	seqs := make([]*Seq, len(batch))
	for i, e := range batch {
		q, ok := s.byID[e.Seq]
		if !ok {
			return nil, fmt.Errorf("%s: batch entry %d: unknown sequence %d", s.name, i, e.Seq)
		}
		for _, o := range seqs[:i] {
			if o == q {
				return nil, fmt.Errorf("%s: batch entry %d: sequence %d is in the batch twice", s.name, i, e.Seq)
			}
		}
		if err := engine.CheckForward(e.Tokens, e.Want, vocab, q.N, maxCtx); err != nil {
			return nil, fmt.Errorf("%s: sequence %d: %w", s.name, e.Seq, err)
		}
		seqs[i] = q
	}
	return seqs, nil
}

// Get returns sequence id. The caller holds the lock.
func Get(s *Seqs, id engine.SeqID) (*Seq, bool) {
	q, ok := s.byID[id]
	return q, ok
}

// Add gives q, a sequence the backend filled itself (an imported cache), an id. The caller holds the
// lock.
func Add(s *Seqs, q *Seq) engine.SeqID { return s.add(q) }

// Drop forgets every sequence, as a closed backend's pool is gone. The caller holds the lock.
func Drop(s *Seqs) { clear(s.byID) }
