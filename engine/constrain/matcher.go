package constrain

import (
	"encoding/binary"
	"slices"
)

// stack is one path through the grammar: pos is the byte class to match next, next the positions to
// return to, innermost first. Stacks are immutable and share their tails.
type stack struct {
	pos  int32
	next *stack
}

// accepted stands for a stack that has matched the whole root rule.
var accepted = &stack{pos: -1}

// state is the set of stacks a matcher may be in, in a canonical order, with its key.
type state struct {
	stacks []*stack
	key    string
}

// maxStacks bounds the stacks of one state: an ambiguous grammar could otherwise make them grow
// without bound. A schema's grammar stays at a handful.
const maxStacks = 512

// maxDepth bounds the expansion of nested rules that match no byte.
const maxDepth = 1000

// expand appends to out the stacks that continue at pos with return stack next, with their tops at
// byte classes (or accepted). It reports false if the expansion ran too deep.
func (g *Grammar) expand(out []*stack, pos int32, next *stack, depth int) ([]*stack, bool) {
	if depth > maxDepth || len(out) > maxStacks {
		return out, false // too deep or too ambiguous: refuse rather than explode
	}
	e := &g.elems[pos]
	switch e.kind {
	case elemBytes:
		return append(out, &stack{pos: pos, next: next}), true
	case elemEnd:
		if next == nil {
			return append(out, accepted), true
		}
		return g.expand(out, next.pos, next.next, depth+1)
	}
	ret := &stack{pos: pos + 1, next: next}
	ok := true
	for _, start := range g.alts[e.ref] {
		out, ok = g.expand(out, start, ret, depth+1)
		if !ok {
			break
		}
	}
	return out, ok
}

// start is the state before any byte; false if its expansion is too deep or too ambiguous.
func (g *Grammar) start() (*state, bool) {
	var out []*stack
	for _, start := range g.alts[0] {
		var ok bool
		if out, ok = g.expand(out, start, nil, 0); !ok {
			return nil, false
		}
	}
	st, _ := g.canon(out)
	return st, true
}

// step appends to out the stacks that in continue as after byte c; none if c is not allowed.
func (g *Grammar) step(in []*stack, c byte, out []*stack) []*stack {
	out = out[:0]
	for _, st := range in {
		if st == accepted || !g.elems[st.pos].set.has(c) {
			continue
		}
		var ok bool
		if out, ok = g.expand(out, st.pos+1, st.next, 0); !ok || len(out) > maxStacks {
			return out[:0]
		}
	}
	return out
}

// advance is the state after byte c, nil if c is not allowed.
func (g *Grammar) advance(s *state, c byte, scratch []*stack) (*state, []*stack) {
	out := g.step(s.stacks, c, scratch)
	if len(out) == 0 {
		return nil, out
	}
	next, _ := g.canon(out)
	return next, out
}

// canon sorts and deduplicates stacks and computes the state's key: the positions of each stack.
func (g *Grammar) canon(in []*stack) (*state, bool) {
	type keyed struct {
		s *stack
		k string
	}
	ks := make([]keyed, len(in))
	var buf []byte
	for i, s := range in {
		buf = buf[:0]
		for t := s; t != nil; t = t.next {
			buf = binary.AppendUvarint(buf, uint64(t.pos+1))
		}
		ks[i] = keyed{s, string(buf)}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	st := &state{}
	var key []byte
	for i, k := range ks {
		if i > 0 && k.k == ks[i-1].k {
			continue
		}
		st.stacks = append(st.stacks, k.s)
		key = binary.AppendUvarint(key, uint64(len(k.k)))
		key = append(key, k.k...)
	}
	st.key = string(key)
	return st, true
}

// complete reports whether the state has matched the whole grammar.
func (s *state) complete() bool {
	return slices.Contains(s.stacks, accepted)
}

// final reports whether nothing can follow: the grammar is matched and no byte may extend it.
func (s *state) final() bool { return len(s.stacks) == 1 && s.stacks[0] == accepted }

// Matcher follows one output through a grammar.
type Matcher struct {
	g       *Grammar
	s       *state
	scratch []*stack
}

// NewMatcher starts matching g from its beginning.
func (g *Grammar) NewMatcher() *Matcher {
	s, _ := g.start() // build checked that it expands
	return &Matcher{g: g, s: s}
}

// Accept advances over text and reports whether it is allowed; a refused text leaves the matcher as it
// was.
func (m *Matcher) Accept(text []byte) bool {
	s := m.s
	for _, c := range text {
		if s, m.scratch = m.g.advance(s, c, m.scratch); s == nil {
			return false
		}
	}
	m.s = s
	return true
}

// Complete reports whether the output so far is a whole sentence of the grammar.
func (m *Matcher) Complete() bool { return m.s.complete() }

// Final reports whether the output is complete and nothing may follow it.
func (m *Matcher) Final() bool { return m.s.final() }
