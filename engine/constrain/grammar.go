// Package constrain restricts generation to a formal language: a grammar over bytes (built from a
// JSON schema or written in llama.cpp's GBNF), matched against a tokenizer's vocabulary so that the
// sampler only ever sees tokens that keep the output inside the language.
//
// The grammar is a set of rules, each a list of alternatives, each a sequence of byte classes and
// references to rules. A Matcher runs it as a pushdown automaton: its state is a set of stacks of
// positions in the grammar, the top of each at a byte class. A Vocab walks the tokens' bytes through
// the matcher in a trie, so that tokens sharing a prefix share the work, and caches the mask of
// allowed tokens per state: a string's body, a number's digits and a key's quotes recur in every
// answer, and their masks are computed once.
package constrain

import (
	"fmt"
	"strings"
)

// byteSet is a set of bytes, one bit each.
type byteSet [4]uint64

func (s *byteSet) add(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s[c>>6] |= 1 << (c & 63)
	}
}

func (s *byteSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

func (s *byteSet) invert() {
	for i := range s {
		s[i] = ^s[i]
	}
}

func single(c byte) byteSet {
	var s byteSet
	s.add(c, c)
	return s
}

// elem is one step of an alternative: a byte of a class, a reference to a rule, or the end of the
// alternative.
type elem struct {
	kind elemKind
	set  byteSet // kind == elemBytes
	ref  int32   // kind == elemRef
}

type elemKind uint8

const (
	elemEnd elemKind = iota
	elemBytes
	elemRef
)

// Grammar is a compiled grammar; rule 0 is the root. A Grammar is immutable and safe for
// concurrent use; Matchers hold the state of one generation.
type Grammar struct {
	elems []elem    // every alternative, each ended by an elemEnd
	alts  [][]int32 // per rule, the index in elems where each alternative starts
	names []string  // per rule, for errors and String
}

// builder assembles a Grammar: rules are declared (and may be referenced) before they are defined,
// which recursive grammars need.
type builder struct {
	names  []string
	bodies [][][]elem // per rule, its alternatives
	byName map[string]int32
}

func newBuilder() *builder { return &builder{byName: map[string]int32{}} }

// declare returns the id of the rule called name, declaring it if new.
func (b *builder) declare(name string) int32 {
	if id, ok := b.byName[name]; ok {
		return id
	}
	id := int32(len(b.names))
	b.names = append(b.names, name)
	b.bodies = append(b.bodies, nil)
	b.byName[name] = id
	return id
}

// fresh declares a new rule named after base, with a suffix if the name is taken.
func (b *builder) fresh(base string) int32 {
	name := base
	for i := 1; ; i++ {
		if _, taken := b.byName[name]; !taken {
			return b.declare(name)
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

func (b *builder) define(id int32, alts ...[]elem) { b.bodies[id] = alts }

func (b *builder) defined(id int32) bool { return b.bodies[id] != nil }

// ruleOf defines a fresh rule with the alternatives and returns a reference to it.
func (b *builder) ruleOf(base string, alts ...[]elem) elem {
	id := b.fresh(base)
	b.define(id, alts...)
	return ref(id)
}

func ref(id int32) elem { return elem{kind: elemRef, ref: id} }

func class(s byteSet) elem { return elem{kind: elemBytes, set: s} }

// lit is the sequence of bytes of s.
func lit(s string) []elem {
	out := make([]elem, len(s))
	for i := range len(s) {
		out[i] = class(single(s[i]))
	}
	return out
}

func seq(parts ...[]elem) []elem {
	var out []elem
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// buildError is a grammar that cannot be matched: a rule undefined or left-recursive.
type buildError struct{ msg string }

func (e *buildError) Error() string { return e.msg }

// build checks that every rule is defined and that no rule can reach itself without consuming a byte
// (left recursion, which a pushdown matcher would expand forever), and flattens the rules.
func (b *builder) build() (*Grammar, error) {
	g := &Grammar{names: b.names, alts: make([][]int32, len(b.names))}
	for id, alts := range b.bodies {
		if alts == nil {
			return nil, &buildError{fmt.Sprintf("rule %q is used but never defined", b.names[id])}
		}
		for _, a := range alts {
			g.alts[id] = append(g.alts[id], int32(len(g.elems)))
			g.elems = append(g.elems, a...)
			g.elems = append(g.elems, elem{kind: elemEnd})
		}
	}
	if err := g.checkLeftRecursion(); err != nil {
		return nil, err
	}
	if _, ok := g.start(); !ok {
		return nil, &buildError{fmt.Sprintf("the grammar is too ambiguous: its start expands to more than %d paths (or nests deeper than %d rules)", maxStacks, maxDepth)}
	}
	return g, nil
}

// nullable reports, per rule, whether it can match the empty string.
func (g *Grammar) nullable() []bool {
	n := make([]bool, len(g.alts))
	for changed := true; changed; {
		changed = false
		for r, alts := range g.alts {
			if n[r] {
				continue
			}
			for _, start := range alts {
				if g.seqNullable(start, n) {
					n[r], changed = true, true
					break
				}
			}
		}
	}
	return n
}

func (g *Grammar) seqNullable(pos int32, n []bool) bool {
	for ; g.elems[pos].kind != elemEnd; pos++ {
		e := g.elems[pos]
		if e.kind == elemBytes || !n[e.ref] {
			return false
		}
	}
	return true
}

// checkLeftRecursion fails if a rule can reach itself at the start of an alternative, through rules
// that match the empty string.
func (g *Grammar) checkLeftRecursion() error {
	n := g.nullable()
	// first[r] = the rules r can call before consuming a byte.
	first := make([][]int32, len(g.alts))
	for r, alts := range g.alts {
		for _, start := range alts {
			for pos := start; g.elems[pos].kind == elemRef; pos++ {
				first[r] = append(first[r], g.elems[pos].ref)
				if !n[g.elems[pos].ref] {
					break
				}
			}
		}
	}
	state := make([]uint8, len(g.alts)) // 0 unvisited, 1 on the path, 2 done
	var visit func(r int32, path []string) error
	visit = func(r int32, path []string) error {
		switch state[r] {
		case 1:
			return &buildError{fmt.Sprintf("rule %q is left-recursive (%s): it can call itself before matching a byte", g.names[r], strings.Join(append(path, g.names[r]), " -> "))}
		case 2:
			return nil
		}
		state[r] = 1
		for _, c := range first[r] {
			if err := visit(c, append(path, g.names[r])); err != nil {
				return err
			}
		}
		state[r] = 2
		return nil
	}
	for r := range g.alts {
		if err := visit(int32(r), nil); err != nil {
			return err
		}
	}
	return nil
}
