package engine

import (
	"fmt"
	"math"

	"smolchat/engine/constrain"
	"smolchat/model/tokenizer"
)

// guide holds a generation to GenParams.Grammar. With reasoning on, the grammar applies to the answer
// only: the output must open the <think> block, may reason freely (but not end there), and is
// constrained from the moment the reasoning block closes.
type guide struct {
	c      *constrain.Constraint
	phase  guidePhase
	open   int32   // the <think> token
	eog    []int32 // end-of-generation tokens, forbidden while reasoning
	masked []float32
}

type guidePhase int

const (
	guideOpenThink guidePhase = iota // the output must start with <think>
	guideReasoning                   // free, but it may not end
	guideAnswer                      // the grammar applies
)

// vocabulary is the engine's tokenizer arranged for constraints, built on first use: tokens that text
// never holds (control tokens) are never allowed.
func (e *Engine) vocabulary() *constrain.Vocab {
	e.vocabOnce.Do(func() {
		piece := func(id int32) []byte {
			switch e.tok.Type(id) {
			case tokenizer.TypeControl, tokenizer.TypeUnknown, tokenizer.TypeUnused:
				return nil
			}
			return e.tok.Piece(id)
		}
		e.vocab = constrain.NewVocab(e.tok.VocabSize(), piece, e.tok.EOGs())
	})
	return e.vocab
}

// newGuide starts a guide for p.Grammar, or returns nil without one. reasoning says the prompt leaves
// the model to reason first (chat.Prompt.Thinking).
func (e *Engine) newGuide(p GenParams, reasoning bool) (*guide, error) {
	if p.Grammar == nil {
		return nil, nil
	}
	g := &guide{c: constrain.New(p.Grammar, e.vocabulary()), phase: guideAnswer, eog: e.tok.EOGs()}
	if reasoning {
		open, ok := e.tok.TokenID(thinkOpen)
		if !ok {
			return nil, fmt.Errorf("constrained decoding with reasoning on needs a %s token, and this vocabulary has none; turn reasoning off", thinkOpen)
		}
		g.open, g.phase = open, guideOpenThink
	}
	return g, nil
}

// mask returns logits with every token the guide forbids set to -Inf (a copy; logits is not changed).
func (g *guide) mask(logits []float32) []float32 {
	g.masked = append(g.masked[:0], logits...)
	l := g.masked
	inf := float32(math.Inf(-1))
	switch g.phase {
	case guideOpenThink:
		for i := range l {
			if int32(i) != g.open {
				l[i] = inf
			}
		}
	case guideReasoning:
		for _, id := range g.eog {
			if int(id) < len(l) {
				l[id] = inf
			}
		}
	case guideAnswer:
		m := g.c.Mask()
		for i := range l {
			if m[i>>6]>>(i&63)&1 == 0 {
				l[i] = inf
			}
		}
	}
	return l
}

// accept advances the guide over the token sampled from its mask.
func (g *guide) accept(id int32) error {
	switch g.phase {
	case guideOpenThink:
		g.phase = guideReasoning
	case guideAnswer:
		if !g.c.Accept(id) {
			return fmt.Errorf("constrained decoding: no token can continue the output (token %d was refused); the grammar may need bytes the vocabulary cannot write", id)
		}
	}
	return nil
}

// answering tells the guide that the reasoning block has closed: the grammar applies from now on.
func (g *guide) answering() {
	if g.phase == guideReasoning {
		g.phase = guideAnswer
	}
}

// final reports that the answer is complete and nothing may follow it.
func (g *guide) final() bool { return g.phase == guideAnswer && g.c.Final() }
