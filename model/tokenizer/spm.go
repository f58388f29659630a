package tokenizer

import (
	"fmt"
	"strings"
)

// spaceMarker is SentencePiece's visible space, U+2581 "▁", which stands for ' ' inside tokens.
const spaceMarker = "\u2581"

// spm is a SentencePiece BPE model as llama.cpp runs it: start from single characters, repeatedly merge
// the adjacent pair whose concatenation is the vocabulary token with the highest score, and spell out any
// character that never became a token with byte tokens <0xXX>.
type spm struct {
	ids       map[string]int32 // token text → id (the tokenizer's map, shared)
	scores    []float32
	byteToken [256]int32 // byte → its <0xXX> token, or the one-byte token, or -1
	unk       int32
	// wordCuts is set when no token has a ▁ after another character, as in LLaMA's vocabulary. Then no
	// merge can cross the start of a word (a ▁ after a non-▁), so each word can be merged on its own: the
	// same result as merging the whole text at once, without a priority queue as long as the text.
	wordCuts bool
	cache    wordCache // word → tokens, when wordCuts
}

func newSPM(tokens []string, ids map[string]int32, scores []float32, unk int32) *spm {
	m := &spm{ids: ids, scores: scores, unk: unk, wordCuts: true}
	for _, s := range tokens {
		if strings.Contains(strings.TrimLeft(s, spaceMarker), spaceMarker) {
			m.wordCuts = false
			break
		}
	}
	for b := range m.byteToken {
		m.byteToken[b] = -1
		if id, ok := ids[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteToken[b] = id
		} else if id, ok := ids[string([]byte{byte(b)})]; ok {
			m.byteToken[b] = id
		}
	}
	return m
}

// spmSymbol is a span of the escaped text, linked to its neighbours; end == start once merged away.
type spmSymbol struct {
	start, end int
	prev, next int
}

// spmCand is a candidate merge: the pair's concatenation is a token with the given score. size is the
// pair's byte length when queued; if either symbol has changed since, the sizes no longer add up.
type spmCand struct {
	score       float32
	left, right int
	size        int
}

type spmWork struct {
	syms []spmSymbol
	heap []spmCand
}

// utf8Len is the length of the UTF-8 sequence a lead byte announces, judged by its top four bits as
// llama.cpp does: continuation bytes count as 1, and a symbol cut from invalid input is spelled out with
// byte tokens, so nothing is lost.
func utf8Len(b byte) int {
	switch {
	case b < 0xC0:
		return 1
	case b < 0xE0:
		return 2
	case b < 0xF0:
		return 3
	}
	return 4
}

// encode appends the tokens of one fragment. prefixSpace adds the leading space SentencePiece models
// expect at the start of a text and after a special token.
func (m *spm) encode(fragment string, prefixSpace bool, out []int32, ws *spmWork) []int32 {
	if prefixSpace {
		fragment = " " + fragment
	}
	text := strings.ReplaceAll(fragment, " ", spaceMarker)
	if !m.wordCuts {
		return m.merge(text, 0, len(text), out, ws)
	}
	// Cut before every ▁ symbol that follows a symbol other than ▁. The scan steps through the same
	// symbols as merge does, so a cut never falls inside one, even in invalid UTF-8.
	from, prevSpace := 0, false
	for i := 0; i < len(text); {
		n := min(utf8Len(text[i]), len(text)-i)
		space := n == len(spaceMarker) && text[i:i+n] == spaceMarker
		if space && !prevSpace && i > from {
			out = m.word(text, from, i, out, ws)
			from = i
		}
		prevSpace = space
		i += n
	}
	return m.word(text, from, len(text), out, ws)
}

// word appends the tokens of the word text[from:to], from the cache when it was seen before.
func (m *spm) word(text string, from, to int, out []int32, ws *spmWork) []int32 {
	w := text[from:to]
	if len(w) > maxCachedWord {
		return m.merge(text, from, to, out, ws)
	}
	if toks, ok := m.cache.get(w); ok {
		return append(out, toks...)
	}
	n := len(out)
	out = m.merge(text, from, to, out, ws)
	m.cache.put(w, out[n:])
	return out
}

// merge runs the merges over text[from:to], a word or the whole text, and appends the tokens.
func (m *spm) merge(text string, from, to int, out []int32, ws *spmWork) []int32 {
	if from >= to {
		return out
	}
	syms := ws.syms[:0]
	for i := from; i < to; {
		n := min(utf8Len(text[i]), to-i)
		syms = append(syms, spmSymbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1})
		i += n
	}
	syms[len(syms)-1].next = -1
	h := ws.heap[:0]
	push := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		if id, ok := m.ids[text[syms[l].start:syms[r].end]]; ok {
			h = heapPush(h, spmCand{score: m.scores[id], left: l, right: r, size: syms[r].end - syms[l].start})
		}
	}
	for i := 1; i < len(syms); i++ {
		push(i-1, i)
	}
	for len(h) > 0 {
		var c spmCand
		c, h = heapPop(h)
		l, r := &syms[c.left], &syms[c.right]
		ln, rn := l.end-l.start, r.end-r.start
		if ln == 0 || rn == 0 || ln+rn != c.size {
			continue
		}
		l.end, l.next = r.end, r.next
		r.end = r.start
		if l.next >= 0 {
			syms[l.next].prev = c.left
		}
		push(l.prev, c.left)
		push(c.left, l.next)
	}
	for i := 0; i >= 0; i = syms[i].next {
		piece := text[syms[i].start:syms[i].end]
		if id, ok := m.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(piece); j++ {
			switch id := m.byteToken[piece[j]]; {
			case id >= 0:
				out = append(out, id)
			case m.unk >= 0:
				out = append(out, m.unk)
			}
		}
	}
	ws.syms, ws.heap = syms, h
	return out
}

// less puts the best candidate first: the highest score, then the leftmost.
func (a spmCand) less(b spmCand) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}
