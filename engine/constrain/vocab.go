package constrain

import (
	"bytes"
	"slices"
)

// Vocab is a tokenizer's vocabulary arranged for matching: the tokens' bytes in a trie, laid out in
// preorder so that a walk is a loop over an array that skips a refused prefix's subtree in one jump.
// It is immutable and shared by every generation with the same tokenizer.
type Vocab struct {
	size  int
	nodes []trieNode
	eog   []int32
	piece func(int32) []byte
}

type trieNode struct {
	b      byte
	depth  int32 // bytes from the root, ≥ 1
	end    int32 // index of the first node after this one's subtree
	tokens []int32
}

// NewVocab arranges a vocabulary of size tokens. piece gives a token's bytes, nil for a token that
// text never contains (control tokens: a constraint never allows them); eog are the tokens that end a
// generation, allowed exactly when the grammar is complete.
func NewVocab(size int, piece func(id int32) []byte, eog []int32) *Vocab {
	type tok struct {
		b  []byte
		id int32
	}
	var toks []tok
	for id := range int32(size) {
		if slices.Contains(eog, id) {
			continue
		}
		if b := piece(id); len(b) > 0 {
			toks = append(toks, tok{b, id})
		}
	}
	slices.SortFunc(toks, func(a, b tok) int {
		if c := bytes.Compare(a.b, b.b); c != 0 {
			return c
		}
		return int(a.id - b.id)
	})
	v := &Vocab{size: size, eog: slices.Clone(eog), piece: piece}
	var path []int32 // node index per depth on the current path
	var prev []byte
	for _, t := range toks {
		lcp := 0
		for lcp < len(prev) && lcp < len(t.b) && prev[lcp] == t.b[lcp] {
			lcp++
		}
		for len(path) > lcp { // close the nodes beyond the shared prefix
			v.nodes[path[len(path)-1]].end = int32(len(v.nodes))
			path = path[:len(path)-1]
		}
		for d := lcp; d < len(t.b); d++ {
			path = append(path, int32(len(v.nodes)))
			v.nodes = append(v.nodes, trieNode{b: t.b[d], depth: int32(d + 1)})
		}
		n := &v.nodes[path[len(path)-1]]
		n.tokens = append(n.tokens, t.id)
		prev = t.b
	}
	for _, i := range path {
		v.nodes[i].end = int32(len(v.nodes))
	}
	return v
}

// Constraint holds one generation to a grammar over a vocabulary: the mask of allowed tokens at each
// step, cached per matcher state.
type Constraint struct {
	g     *Grammar
	v     *Vocab
	m     *Matcher
	cache map[string][]uint64
	d     *dfa
}

// maxCachedMasks bounds a constraint's cache (16 KiB a mask for a vocabulary of 128k).
const maxCachedMasks = 2048

// New starts a constraint of g over v.
func New(g *Grammar, v *Vocab) *Constraint {
	return &Constraint{g: g, v: v, m: g.NewMatcher(), cache: map[string][]uint64{}, d: newDFA(g)}
}

// Mask returns the allowed tokens in the current state as a bit set (bit id%64 of word id/64). The
// slice is shared with the cache: do not modify it.
func (c *Constraint) Mask() []uint64 {
	s := c.m.s
	if m, ok := c.cache[s.key]; ok {
		return m
	}
	m := c.compute(s)
	if len(c.cache) >= maxCachedMasks {
		clear(c.cache)
	}
	c.cache[s.key] = m
	return m
}

// compute walks the trie from state s: each node advances its parent's state by its byte; a node
// whose state dies takes its whole subtree with it. The states are those of a DFA built lazily over
// the matcher's canonical states, so that the walk is mostly table lookups: a string's body, for one,
// is a single state looping on itself.
func (c *Constraint) compute(s *state) []uint64 {
	mask := make([]uint64, (c.v.size+63)/64)
	if s.complete() {
		for _, id := range c.v.eog {
			mask[id/64] |= 1 << (id % 64)
		}
	}
	if c.d.full() {
		c.d = newDFA(c.g)
	}
	levels := []int32{c.d.id(s)}
	nodes := c.v.nodes
	for k := 0; k < len(nodes); {
		n := &nodes[k]
		for int(n.depth) >= len(levels) {
			levels = append(levels, 0)
		}
		next := c.d.step(levels[n.depth-1], n.b)
		if next < 0 {
			k = int(n.end)
			continue
		}
		levels[n.depth] = next
		for _, id := range n.tokens {
			mask[id/64] |= 1 << (id % 64)
		}
		k++
	}
	return mask
}

// dfa memoizes the matcher's transitions between canonical states.
type dfa struct {
	g       *Grammar
	states  []*state
	ids     map[string]int32
	next    [][256]int32 // per state and byte: the next state, unknown, or dead
	scratch []*stack
}

const (
	dfaUnknown = 0 // the zero value: next holds id+1 for known transitions
	dfaDead    = -1
	maxDFA     = 1 << 14 // states (1 KiB of transitions each) before the DFA starts over
)

func newDFA(g *Grammar) *dfa { return &dfa{g: g, ids: map[string]int32{}} }

func (d *dfa) full() bool { return len(d.states) >= maxDFA }

// id is the number of state s, added if new.
func (d *dfa) id(s *state) int32 {
	if id, ok := d.ids[s.key]; ok {
		return id
	}
	id := int32(len(d.states))
	d.states = append(d.states, s)
	d.next = append(d.next, [256]int32{})
	d.ids[s.key] = id
	return id
}

// step is the state after byte b from state id, -1 if b is refused.
func (d *dfa) step(id int32, b byte) int32 {
	switch n := d.next[id][b]; {
	case n > 0:
		return n - 1
	case n == dfaDead:
		return -1
	}
	var s *state
	s, d.scratch = d.g.advance(d.states[id], b, d.scratch)
	if s == nil {
		d.next[id][b] = dfaDead
		return -1
	}
	n := d.id(s)
	d.next[id][b] = n + 1
	return n
}

// Accept advances over token id and reports whether the grammar allowed it; an end-of-generation
// token is allowed when the grammar is complete.
func (c *Constraint) Accept(id int32) bool {
	if slices.Contains(c.v.eog, id) {
		return c.m.Complete()
	}
	if id < 0 || int(id) >= c.v.size {
		return false
	}
	b := c.v.piece(id)
	return len(b) > 0 && c.m.Accept(b)
}

// Complete reports whether the output so far is a whole sentence of the grammar.
func (c *Constraint) Complete() bool { return c.m.Complete() }

// Final reports whether the output is complete and no token may extend it.
func (c *Constraint) Final() bool { return c.m.Final() }
