package engine

import (
	"context"
	"testing"

	"smolchat/engine/constrain"
)

// TestGuide runs scripted models under a grammar: the answer follows the grammar whatever the model
// wants, the generation stops when the grammar is complete, and with reasoning on the output opens
// <think>, reasons freely (but cannot end there) and is constrained after </think>.
// TestGuideLazyAndBan: a lazy grammar applies from its trigger token until complete, then the
// answer is free again; a banned token is never written.
func TestGuideLazyAndBan(t *testing.T) {
	tok := testTokenizer(t)
	hello, world, stop := id(t, tok, "▁Hello"), id(t, tok, "▁world"), id(t, tok, "▁STOP")
	quote, h := id(t, tok, "<0x22>"), id(t, tok, "<0x68>")
	g, err := constrain.CompileSchema([]byte(`{"const":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, hello}
	e, _ := newScripted(t, prompt, []int32{world, stop, quote, world, world, world, world, tok.EOS()})
	p := greedy(0)
	p.Grammar, p.Trigger = g, "▁STOP"
	res, err := e.Generate(context.Background(), prompt, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Answer != ` world STOP"hi" world` || res.FinishReason != FinishStop {
		t.Errorf("lazy grammar: answer %q finish %s", res.Answer, res.FinishReason)
	}
	e, _ = newScripted(t, prompt, []int32{world, h, world, tok.EOS()})
	p = greedy(0)
	p.Ban = []string{"▁world"}
	res, err = e.Generate(context.Background(), prompt, p, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range res.Tokens {
		if id == world {
			t.Errorf("banned token written: %v (%q)", res.Tokens, res.Text)
		}
	}
	p.Ban = []string{"no such token"}
	if _, err := e.Generate(context.Background(), prompt, p, false, nil); err == nil {
		t.Error("a ban of text that is no token was accepted")
	}
}

func TestGuide(t *testing.T) {
	tok := testTokenizer(t)
	hello, world := id(t, tok, "▁Hello"), id(t, tok, "▁world")
	open, close := id(t, tok, "<think>"), id(t, tok, "</think>")
	quote, h, i := id(t, tok, "<0x22>"), id(t, tok, "<0x68>"), id(t, tok, "<0x69>")
	g, err := constrain.CompileSchema([]byte(`{"enum":["hi"," STOP!"]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                     string
		script                   []int32
		reasoning                bool
		max                      int
		thinking, answer, finish string
	}{
		// Where the script's token is refused, greedy sampling takes the allowed token of the lowest
		// id: the byte tokens come first, and among them '"', then ' ' before 'h'.
		{"the model's choice", []int32{quote, h, i, quote, world}, false, 0, "", `"hi"`, FinishStop},
		{"forced answer", []int32{world, world, world}, false, 0, "", `" STOP!"`, FinishStop},
		{"the end is refused until the answer is complete", []int32{quote, h, tok.EOS()}, false, 0, "", `"hi"`, FinishStop},
		{"reasoning first", []int32{open, world, close, quote, h, i, quote}, true, 0, "world", `"hi"`, FinishStop},
		{"the output must open the block", []int32{world, world, close, quote, h, i, quote}, true, 0, "world", `"hi"`, FinishStop},
		{"reasoning cannot end the output", []int32{open, world, tok.EOS()}, true, 6, "world", "", FinishLength},
		{"max tokens cuts the answer", []int32{quote, h}, false, 2, "", `"h`, FinishLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prompt := []int32{1, hello}
			e, _ := newScripted(t, prompt, tt.script)
			p := greedy(tt.max)
			p.Grammar, p.reasoning = g, tt.reasoning
			res, err := e.Generate(context.Background(), prompt, p, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Answer != tt.answer || res.FinishReason != tt.finish || (tt.finish == FinishStop && res.Thinking != tt.thinking) {
				t.Errorf("thinking %q answer %q finish %s; want %q %q %s (text %q)", res.Thinking, res.Answer, res.FinishReason,
					tt.thinking, tt.answer, tt.finish, res.Text)
			}
			for _, id := range res.Tokens {
				if tok.IsEOG(id) {
					t.Errorf("an end token among the generated %v", res.Tokens)
				}
			}
		})
	}
}
