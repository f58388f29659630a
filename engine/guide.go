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
	c       *constrain.Constraint
	grammar *constrain.Grammar // nil: only bans
	vocab   *constrain.Vocab
	phase   guidePhase
	open    int32   // the <think> token
	eog     []int32 // end-of-generation tokens, forbidden while reasoning
	trigger int32   // with a lazy grammar, the token that starts it; -1 otherwise
	ban     []int32 // tokens never allowed in the free answer
	masked  []float32
}

type guidePhase int

const (
	guideOpenThink guidePhase = iota // the output must start with <think>
	guideReasoning                   // free, but it may not end
	guideAnswer                      // the grammar applies
	guideFree                        // free but for the banned tokens; a lazy grammar waits for its trigger
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
	if p.Grammar == nil && len(p.Ban) == 0 {
		return nil, nil
	}
	g := &guide{grammar: p.Grammar, vocab: e.vocabulary(), eog: e.tok.EOGs(), trigger: -1}
	token := func(text, what string) (int32, error) {
		id, ok := e.tok.TokenID(text)
		if !ok {
			return 0, fmt.Errorf("%s %q is not a token of this vocabulary", what, text)
		}
		return id, nil
	}
	for _, b := range p.Ban {
		id, err := token(b, "banned text")
		if err != nil {
			return nil, err
		}
		g.ban = append(g.ban, id)
	}
	if p.Trigger != "" {
		id, err := token(p.Trigger, "the grammar's trigger")
		if err != nil {
			return nil, err
		}
		g.trigger = id
	}
	g.phase = g.answerPhase()
	if g.phase == guideAnswer {
		g.c = constrain.New(p.Grammar, g.vocab)
	}
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
	case guideFree:
		for _, id := range g.ban {
			if int(id) < len(l) {
				l[id] = inf
			}
		}
	}
	return l
}

// answerPhase is the phase the answer starts in: free with a lazy grammar or none, else constrained.
func (g *guide) answerPhase() guidePhase {
	if g.grammar == nil || g.trigger >= 0 {
		return guideFree
	}
	return guideAnswer
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
		if g.trigger >= 0 && g.c.Final() {
			g.phase = guideFree // a lazy grammar's span is over
		}
	case guideFree:
		if id == g.trigger {
			g.c, g.phase = constrain.New(g.grammar, g.vocab), guideAnswer
		}
	}
	return nil
}

// answering tells the guide that the reasoning block has closed: the answer starts.
func (g *guide) answering() {
	if g.phase == guideReasoning {
		if g.phase = g.answerPhase(); g.phase == guideAnswer {
			g.c = constrain.New(g.grammar, g.vocab)
		}
	}
}

// final reports that the answer is complete and nothing may follow it.
func (g *guide) final() bool { return g.phase == guideAnswer && g.trigger < 0 && g.c.Final() }
