package engine

import "slices"

// convCache keeps the KV sequences of finished generations (conversations), so that a request whose
// prompt starts with one of them (the next turn, a conversation returned to, a common system prompt)
// only evaluates the rest. It is bounded by maxCached entries and by the KV budget: the scheduler evicts
// the least recently used entry when a batch finds the pool full, before it refuses any running
// sequence. The scheduler's goroutine alone uses it.
//
// Prompts are matched token by token against every entry's tokens (scheduler.match), which finds the
// longest common prefix exactly, the partial last block included; the backend shares the blocks of
// that prefix with the new sequence (Fork, copy on write).
type convCache struct {
	entries []*cachedSeq // least recently used first
	// spill, when set, is called with an entry about to be evicted (the disk cache writes it).
	spill func(*cachedSeq)
}

type cachedSeq struct {
	seq    SeqID
	tokens []int32 // the tokens whose keys and values the sequence holds
	// spilled: the disk cache holds these tokens, or was tried and need not be again.
	spilled bool
}

// add keeps seq, which holds tokens (spilled: the disk cache holds them). Entries whose tokens are a prefix of these are dropped: the new
// entry serves every prompt they would; and when an entry already holds these tokens and more, seq is
// freed instead and that entry counts as used.
func (c *convCache) add(b SeqBackend, seq SeqID, tokens []int32, spilled bool) *cachedSeq {
	for _, e := range c.entries {
		if len(e.tokens) >= len(tokens) && slices.Equal(e.tokens[:len(tokens)], tokens) {
			b.FreeSeq(seq)
			c.touch(e)
			return e
		}
	}
	c.entries = slices.DeleteFunc(c.entries, func(e *cachedSeq) bool {
		if len(e.tokens) <= len(tokens) && slices.Equal(e.tokens, tokens[:len(e.tokens)]) {
			b.FreeSeq(e.seq)
			return true
		}
		return false
	})
	e := &cachedSeq{seq: seq, tokens: slices.Clone(tokens), spilled: spilled}
	c.entries = append(c.entries, e)
	for len(c.entries) > maxCached {
		c.evictOldest(b)
	}
	return e
}

// touch marks e as just used.
func (c *convCache) touch(e *cachedSeq) {
	c.remove(e)
	c.entries = append(c.entries, e)
}

// remove takes e out of the cache without freeing its sequence (a request took it over).
func (c *convCache) remove(e *cachedSeq) {
	c.entries = slices.DeleteFunc(c.entries, func(x *cachedSeq) bool { return x == e })
}

// evictOldest frees the least recently used entry; it returns false when the cache is empty.
func (c *convCache) evictOldest(b SeqBackend) bool {
	if len(c.entries) == 0 {
		return false
	}
	if c.spill != nil && !c.entries[0].spilled {
		c.spill(c.entries[0])
	}
	b.FreeSeq(c.entries[0].seq)
	c.entries = c.entries[1:]
	return true
}

// seqs are the cached sequences.
func (c *convCache) seqs() []SeqID {
	ids := make([]SeqID, len(c.entries))
	for i, e := range c.entries {
		ids[i] = e.seq
	}
	return ids
}
