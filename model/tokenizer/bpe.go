package tokenizer

import (
	"fmt"
	"strings"
)

// bpe is a byte-level BPE model: the merge table and the per-word machinery.
//
// Symbols are identified by integers rather than strings: every token is its own id, and a merge whose
// parts or result are not tokens (which a well-formed vocabulary never has, but nothing forbids) gets an
// extra id at or above the vocabulary size. A merge is then one map lookup on a pair of ints.
type bpe struct {
	nTokens int32
	ids     map[string]int32 // token text → id (the tokenizer's map, shared)
	merges  map[uint64]merge // (left, right) symbol pair → rank and result
	byteSym [256]int32       // raw byte → symbol of its one-character byte-level string
	split   splitFunc
	// ignoreMerges emits a word that is itself a token as that token without merging (Llama 3 does so).
	ignoreMerges bool

	cache wordCache
}

type merge struct {
	rank   int32
	result int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(ids map[string]int32, nTokens int, merges []string, split splitFunc, ignoreMerges bool) (*bpe, error) {
	m := &bpe{
		nTokens:      int32(nTokens),
		ids:          ids,
		merges:       make(map[uint64]merge, len(merges)),
		split:        split,
		ignoreMerges: ignoreMerges,
	}
	extra := map[string]int32{}
	intern := func(s string) int32 {
		if id, ok := ids[s]; ok {
			return id
		}
		if id, ok := extra[s]; ok {
			return id
		}
		id := int32(nTokens + len(extra))
		extra[s] = id
		return id
	}
	for b := range m.byteSym {
		m.byteSym[b] = intern(byteChar[b])
	}
	for rank, line := range merges {
		// "left right"; the first character may itself be a space in a raw (non byte-level) vocabulary,
		// so the separator is searched from the second byte on, as llama.cpp does.
		sep := -1
		if len(line) > 1 {
			if k := strings.IndexByte(line[1:], ' '); k >= 0 {
				sep = k + 1
			}
		}
		if sep < 0 {
			return nil, fmt.Errorf("merge %d (%q) is not two space-separated parts", rank, line)
		}
		left, right := line[:sep], line[sep+1:]
		if right == "" {
			return nil, fmt.Errorf("merge %d (%q) has an empty right part", rank, line)
		}
		key := pairKey(intern(left), intern(right))
		if _, dup := m.merges[key]; dup {
			continue // the first (best-ranked) occurrence wins
		}
		if nTokens+len(extra) >= 1<<31-1 {
			return nil, fmt.Errorf("merge table too large")
		}
		m.merges[key] = merge{rank: int32(rank), result: intern(left + right)}
	}
	return m, nil
}

// encode appends the tokens of one text fragment (already free of special tokens) to out.
func (m *bpe) encode(text string, out []int32, ws *bpeWork) []int32 {
	m.split(text, func(word string) {
		out = m.encodeWord(word, out, ws)
	})
	return out
}

func (m *bpe) encodeWord(word string, out []int32, ws *bpeWork) []int32 {
	cacheable := len(word) <= maxCachedWord
	if cacheable {
		if toks, ok := m.cache.get(word); ok {
			return append(out, toks...)
		}
	}
	start := len(out)
	out = m.mergeWord(word, out, ws)
	if cacheable {
		m.cache.put(word, out[start:])
	}
	return out
}

// bpeSymbol is one symbol of a word being merged: a span of the word's bytes, linked to its neighbours.
type bpeSymbol struct {
	id         int32
	start, end int // byte span in the word; end == start once merged into the left neighbour
	prev, next int // -1 at the ends
}

// bpeCand is a candidate merge of two adjacent symbols.
type bpeCand struct {
	rank            int32
	left, right     int
	leftID, rightID int32 // the symbols' ids when queued; a changed id means the candidate is stale
	result          int32
}

// bpeWork is scratch space reused across the words of one Encode call.
type bpeWork struct {
	syms []bpeSymbol
	heap []bpeCand
}

// mergeWord applies merges to one word in rank order: repeatedly merge the adjacent pair with the best
// (lowest) rank, leftmost first on ties. A heap of candidate pairs makes this O(n log n) in the word
// length; candidates made stale by an earlier merge are skipped when they surface.
func (m *bpe) mergeWord(word string, out []int32, ws *bpeWork) []int32 {
	if m.ignoreMerges {
		if id, ok := m.ids[byteEncode(word)]; ok {
			return append(out, id)
		}
	}
	if len(word) == 1 {
		return m.emitSymbol(word, m.byteSym[word[0]], out)
	}
	syms := ws.syms[:0]
	for i := 0; i < len(word); i++ {
		syms = append(syms, bpeSymbol{id: m.byteSym[word[i]], start: i, end: i + 1, prev: i - 1, next: i + 1})
	}
	syms[len(syms)-1].next = -1
	h := ws.heap[:0]
	push := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		if mg, ok := m.merges[pairKey(syms[l].id, syms[r].id)]; ok {
			h = heapPush(h, bpeCand{rank: mg.rank, left: l, right: r, leftID: syms[l].id, rightID: syms[r].id, result: mg.result})
		}
	}
	for i := 1; i < len(syms); i++ {
		push(i-1, i)
	}
	for len(h) > 0 {
		var c bpeCand
		c, h = heapPop(h)
		l, r := &syms[c.left], &syms[c.right]
		if l.end == l.start || r.end == r.start || l.id != c.leftID || r.id != c.rightID {
			continue
		}
		l.id, l.end, l.next = c.result, r.end, r.next
		r.end = r.start
		if l.next >= 0 {
			syms[l.next].prev = c.left
		}
		push(l.prev, c.left)
		push(c.left, l.next)
	}
	for i := 0; i >= 0; i = syms[i].next {
		s := syms[i]
		out = m.emitSymbol(word[s.start:s.end], s.id, out)
	}
	ws.syms, ws.heap = syms, h
	return out
}

// emitSymbol appends a finished symbol. One that is not a token (only possible with a vocabulary whose
// merges produce non-tokens) falls back, like llama.cpp, to the single-byte tokens of its byte-level text.
func (m *bpe) emitSymbol(raw string, id int32, out []int32) []int32 {
	if id < m.nTokens {
		return append(out, id)
	}
	enc := byteEncode(raw)
	for i := 0; i < len(enc); i++ {
		if t, ok := m.ids[enc[i:i+1]]; ok {
			out = append(out, t)
		}
	}
	return out
}

// less orders candidates by rank, then by position.
func (a bpeCand) less(b bpeCand) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}
