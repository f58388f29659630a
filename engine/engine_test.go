package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"smolchat/model/chat"
	"smolchat/model/tokenizer"
)

// A SentencePiece vocabulary with byte fallback: <unk> <s> </s>, the 256 byte tokens, then a few words.
// Any text round-trips through it, so scripted token streams decode to known text.
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.New(testVocab())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// testVocab is testTokenizer's vocabulary.
func testVocab() tokenizer.Vocab {
	v := tokenizer.Vocab{Model: "llama", Pre: "default", BOS: 1, EOS: 2, UNK: 0, EOT: -1, EOM: -1, PAD: -1}
	add := func(s string, typ tokenizer.TokenType) {
		v.Tokens = append(v.Tokens, s)
		v.Types = append(v.Types, int32(typ))
		v.Scores = append(v.Scores, 0)
	}
	add("<unk>", tokenizer.TypeUnknown)
	add("<s>", tokenizer.TypeControl)
	add("</s>", tokenizer.TypeControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), tokenizer.TypeByte)
	}
	for _, w := range []string{"▁Hello", "▁world", "!", "▁STOP", "<think>", "</think>"} {
		typ := tokenizer.TypeNormal
		if strings.Contains(w, "think") {
			typ = tokenizer.TypeUserDefined
		}
		add(w, typ)
	}
	return v
}

func id(t *testing.T, tok *tokenizer.Tokenizer, s string) int32 {
	t.Helper()
	i, ok := tok.TokenID(s)
	if !ok {
		t.Fatalf("no token %q", s)
	}
	return i
}

// scriptBackend is a deterministic stand-in for a model: the logits after position p put all weight on
// script[p] (or EOS past the script). It records every batch it evaluates.
type scriptBackend struct {
	script  []int32
	eos     int32
	vocab   int
	ctx     int
	cache   []int32
	batches [][]int32
	failAt  int // Forward fails once the cache would pass this length (0 = never)
}

func (b *scriptBackend) Name() string    { return "script" }
func (b *scriptBackend) Device() string  { return "test" }
func (b *scriptBackend) Len() int        { return len(b.cache) }
func (b *scriptBackend) Truncate(n int)  { b.cache = b.cache[:n] }
func (b *scriptBackend) MaxContext() int { return b.ctx }
func (b *scriptBackend) Close() error    { return nil }

func (b *scriptBackend) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(b.cache)+len(tokens) > b.ctx {
		return nil, ErrContextFull
	}
	if b.failAt > 0 && len(b.cache)+len(tokens) > b.failAt {
		return nil, errors.New("device lost")
	}
	b.batches = append(b.batches, append([]int32(nil), tokens...))
	start := len(b.cache)
	b.cache = append(b.cache, tokens...)
	var out [][]float32
	for _, w := range want {
		next := b.eos
		if p := start + w; p < len(b.script) {
			next = b.script[p]
		}
		row := make([]float32, b.vocab)
		row[next] = 10
		out = append(out, row)
	}
	return out, nil
}

// newScripted makes an engine whose model continues prompt with the text's tokens, then EOS.
func newScripted(t *testing.T, prompt []int32, continuation []int32) (*Engine, *scriptBackend) {
	tok := testTokenizer(t)
	script := make([]int32, len(prompt)-1, len(prompt)+len(continuation))
	copy(script, prompt[1:])
	script = append(script, continuation...)
	b := &scriptBackend{script: script, eos: tok.EOS(), vocab: tok.VocabSize(), ctx: 64}
	return New(nil, tok, nil, b), b
}

func greedy(max int, stop ...string) GenParams {
	return GenParams{SamplerParams: SamplerParams{Temperature: 0}, MaxTokens: max, Stop: stop}
}

func TestGenerateStopsAtEOS(t *testing.T) {
	tok := testTokenizer(t)
	prompt := []int32{1, id(t, tok, "▁Hello")}
	e, b := newScripted(t, prompt, []int32{id(t, tok, "▁world"), id(t, tok, "!")})
	var deltas []string
	res, err := e.Generate(context.Background(), prompt, greedy(0), false, func(d Delta) error {
		deltas = append(deltas, d.Answer)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != " world!" || res.FinishReason != FinishStop || len(res.Tokens) != 2 {
		t.Errorf("text %q finish %s tokens %v", res.Text, res.FinishReason, res.Tokens)
	}
	if strings.Join(deltas, "") != " world!" {
		t.Errorf("streamed %q", deltas)
	}
	// The prompt went in as one batch, then one token per step until the logits said EOS.
	if len(b.batches) != 3 || len(b.batches[0]) != 2 {
		t.Errorf("batches %v", b.batches)
	}
	if res.Timings.GeneratedTokens != 2 || res.Timings.PromptTokens != 2 {
		t.Errorf("timings %+v", res.Timings)
	}
}

func TestPrefixReuse(t *testing.T) {
	tok := testTokenizer(t)
	hello, world, bang := id(t, tok, "▁Hello"), id(t, tok, "▁world"), id(t, tok, "!")
	// The "model" says Hello world ! Hello world ! ...
	prompt := []int32{1, hello}
	e, b := newScripted(t, prompt, []int32{world, bang, hello, world, bang})
	first, err := e.Generate(context.Background(), prompt, greedy(2), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Timings.CachedTokens != 0 {
		t.Errorf("first call reused %d tokens", first.Timings.CachedTokens)
	}
	// The next turn extends the previous prompt and answer: only the new tokens are evaluated. The
	// answer's last token was sampled but never evaluated, so it is new too.
	next := append(append(append([]int32{}, prompt...), first.Tokens...), hello)
	b.batches = nil
	second, err := e.Generate(context.Background(), next, greedy(1), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.Timings.CachedTokens != 3 || len(b.batches[0]) != 2 {
		t.Errorf("cached %d, first batch %v; want 3 cached and two new tokens", second.Timings.CachedTokens, b.batches[0])
	}
	if second.Text != " world" {
		t.Errorf("second text %q", second.Text)
	}
	// The same prompt again re-evaluates only its last token, for its logits.
	b.batches = nil
	third, _ := e.Generate(context.Background(), next, greedy(1), false, nil)
	if third.Timings.CachedTokens != len(next)-1 || len(b.batches[0]) != 1 || third.Text != second.Text {
		t.Errorf("repeat: cached %d batches %v text %q", third.Timings.CachedTokens, b.batches, third.Text)
	}
	// A diverging prompt truncates the cache to the common prefix.
	b.batches = nil
	div := []int32{1, world}
	if _, err := e.Generate(context.Background(), div, greedy(1), false, nil); err != nil {
		t.Fatal(err)
	}
	if len(b.batches[0]) != 1 || b.cache[0] != 1 || b.cache[1] != world {
		t.Errorf("diverging prompt: batches %v cache %v", b.batches, b.cache)
	}
}

func TestStopStrings(t *testing.T) {
	tok := testTokenizer(t)
	hello, world, bang, stop := id(t, tok, "▁Hello"), id(t, tok, "▁world"), id(t, tok, "!"), id(t, tok, "▁STOP")
	for _, tc := range []struct {
		name   string
		stops  []string
		want   string
		finish string
	}{
		{"none", nil, " world! STOP Hello", FinishStop},
		{"whole token", []string{" STOP"}, " world!", FinishStop},
		{"across tokens", []string{"! ST"}, " world", FinishStop},
		{"prefix held then released", []string{"!!"}, " world! STOP Hello", FinishStop},
		{"earliest wins", []string{"Hello", "world"}, " ", FinishStop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newScripted(t, []int32{1}, []int32{world, bang, stop, hello})
			var streamed strings.Builder
			res, err := e.Generate(context.Background(), []int32{1}, greedy(0, tc.stops...), false, func(d Delta) error {
				streamed.WriteString(d.Answer)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tc.want || streamed.String() != tc.want || res.FinishReason != tc.finish {
				t.Errorf("text %q streamed %q finish %s; want %q", res.Text, streamed.String(), res.FinishReason, tc.want)
			}
		})
	}
}

func TestUTF8HeldAcrossTokens(t *testing.T) {
	tok := testTokenizer(t)
	// "é" is 0xC3 0xA9: two byte tokens; the first must not be emitted alone.
	c3, a9 := id(t, tok, "<0xC3>"), id(t, tok, "<0xA9>")
	e, _ := newScripted(t, []int32{1}, []int32{c3, a9})
	var deltas []string
	res, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, func(d Delta) error {
		deltas = append(deltas, d.Answer)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "é" || len(deltas) != 2 || deltas[0] != "" || deltas[1] != "é" {
		t.Errorf("text %q deltas %q", res.Text, deltas)
	}
}

func TestThinkSplit(t *testing.T) {
	tok := testTokenizer(t)
	th, nth, hello, world := id(t, tok, "<think>"), id(t, tok, "</think>"), id(t, tok, "▁Hello"), id(t, tok, "▁world")
	e, _ := newScripted(t, []int32{1}, []int32{th, hello, nth, world})
	var thinking, answer strings.Builder
	res, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, func(d Delta) error {
		thinking.WriteString(d.Thinking)
		answer.WriteString(d.Answer)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Thinking != "Hello" || res.Answer != "world" || thinking.String() != "Hello" || answer.String() != "world" {
		t.Errorf("result thinking %q answer %q; streamed %q / %q", res.Thinking, res.Answer, thinking.String(), answer.String())
	}
}

func TestLimitsAndCancellation(t *testing.T) {
	tok := testTokenizer(t)
	hello := id(t, tok, "▁Hello")
	long := make([]int32, 40)
	for i := range long {
		long[i] = hello
	}
	t.Run("max tokens", func(t *testing.T) {
		e, _ := newScripted(t, []int32{1}, long)
		res, _ := e.Generate(context.Background(), []int32{1}, greedy(5), false, nil)
		if res.FinishReason != FinishLength || len(res.Tokens) != 5 {
			t.Errorf("finish %s after %d tokens", res.FinishReason, len(res.Tokens))
		}
	})
	t.Run("context fills", func(t *testing.T) {
		e, b := newScripted(t, []int32{1}, long)
		b.ctx = 10
		res, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, nil)
		if err != nil || res.FinishReason != FinishLength || b.Len() > 10 {
			t.Errorf("err %v finish %s cache %d", err, res.FinishReason, b.Len())
		}
	})
	t.Run("prompt too long", func(t *testing.T) {
		e, b := newScripted(t, []int32{1}, long)
		b.ctx = 4
		_, err := e.Generate(context.Background(), long[:4], greedy(0), false, nil)
		if !errors.Is(err, ErrContextFull) {
			t.Errorf("err %v, want ErrContextFull", err)
		}
	})
	t.Run("emit error cancels", func(t *testing.T) {
		e, _ := newScripted(t, []int32{1}, long)
		n := 0
		res, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, func(Delta) error {
			n++
			if n == 3 {
				return errors.New("client gone")
			}
			return nil
		})
		if err != nil || res.FinishReason != FinishCancelled || len(res.Tokens) != 3 {
			t.Errorf("err %v finish %s tokens %d", err, res.FinishReason, len(res.Tokens))
		}
	})
	t.Run("context cancel", func(t *testing.T) {
		e, _ := newScripted(t, []int32{1}, long)
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		res, err := e.Generate(ctx, []int32{1}, greedy(0), false, func(Delta) error {
			if n++; n == 2 {
				cancel()
			}
			return nil
		})
		if err != nil || res.FinishReason != FinishCancelled || len(res.Tokens) != 2 {
			t.Errorf("err %v finish %s tokens %d", err, res.FinishReason, len(res.Tokens))
		}
	})
	t.Run("backend error keeps cache consistent", func(t *testing.T) {
		e, b := newScripted(t, []int32{1}, long)
		b.failAt = 6
		if _, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, nil); err == nil {
			t.Fatal("no error from a failing backend")
		}
		if len(e.cached) != b.Len() {
			t.Errorf("engine thinks %d tokens are cached, backend has %d", len(e.cached), b.Len())
		}
	})
	t.Run("bad params", func(t *testing.T) {
		e, _ := newScripted(t, []int32{1}, long)
		for _, p := range []GenParams{{MaxTokens: -1}, {SamplerParams: SamplerParams{Temperature: -1}}} {
			if _, err := e.Generate(context.Background(), []int32{1}, p, false, nil); err == nil {
				t.Errorf("params %+v accepted", p)
			}
		}
		if _, err := e.Generate(context.Background(), []int32{1, 99999}, greedy(1), false, nil); err == nil {
			t.Error("token outside the vocabulary accepted")
		}
		if _, err := e.Generate(context.Background(), nil, greedy(1), false, nil); err == nil {
			t.Error("empty prompt accepted")
		}
	})
}

func TestDropOldestTurn(t *testing.T) {
	m := func(roles ...string) []Message {
		var out []Message
		for i, r := range roles {
			out = append(out, Message{Role: r, Content: fmt.Sprint(i)})
		}
		return out
	}
	roles := func(ms []Message) string {
		var s []string
		for _, x := range ms {
			s = append(s, x.Role[:1]+x.Content)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		in   []Message
		want string
		ok   bool
	}{
		{m("system", "user", "assistant", "user"), "s0 u3", true},
		{m("user", "assistant", "user", "assistant", "user"), "u2 a3 u4", true},
		{m("system", "user"), "", false},
		{m("user"), "", false},
		{m("system", "user", "assistant", "tool", "user"), "s0 u4", true},
	} {
		got, ok := dropOldestTurn(tc.in)
		if ok != tc.ok || roles(got) != tc.want {
			t.Errorf("dropOldestTurn(%s) = %q %v, want %q %v", roles(tc.in), roles(got), ok, tc.want, tc.ok)
		}
	}
}

// lostAfter wraps a backend that is lost after n Forward calls.
type lostAfter struct {
	*scriptBackend
	n int
}

func (l *lostAfter) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	if l.n--; l.n < 0 {
		return nil, fmt.Errorf("queue submit: %w", ErrBackendLost)
	}
	return l.scriptBackend.Forward(ctx, tokens, want)
}

// losingEngine is a scripted engine whose backend is lost at its second Forward, and the backend that
// reload then gives.
func losingEngine(t *testing.T) (*Engine, *scriptBackend) {
	tok := testTokenizer(t)
	hello, world := id(t, tok, "▁Hello"), id(t, tok, "▁world")
	e, b := newScripted(t, []int32{1}, []int32{hello, world})
	e.backend = &lostAfter{scriptBackend: b, n: 1}
	fresh := &scriptBackend{script: b.script, eos: b.eos, vocab: b.vocab, ctx: b.ctx}
	e.reload = func() (Backend, error) { return fresh, nil }
	return e, fresh
}

func TestBackendLostIsReplaced(t *testing.T) {
	e, fresh := losingEngine(t)
	reloads := 0
	e.reload = func() (Backend, error) { reloads++; return fresh, nil }

	_, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, nil)
	if !errors.Is(err, ErrBackendLost) || !strings.Contains(err.Error(), "backend was replaced") {
		t.Fatalf("first request: %v, want a lost-backend error saying it was replaced", err)
	}
	res, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, nil)
	if err != nil || res.Text != " Hello world" || reloads != 1 {
		t.Errorf("next request on the new backend: %q, %v (reloads %d)", res.Text, err, reloads)
	}

	// When no backend can be made, requests fail with a clear error instead of crashing.
	e.backend = &lostAfter{scriptBackend: fresh, n: 0}
	e.reload = func() (Backend, error) { return nil, errors.New("no device") }
	for range 2 {
		if _, err := e.Generate(context.Background(), []int32{1}, greedy(0), false, nil); err == nil || !strings.Contains(err.Error(), "no device") {
			t.Errorf("got %v, want the re-creation failure", err)
		}
	}
}

// TestBackendSwapWhileChatting replaces a lost backend while other goroutines start chats and read the
// backend: under -race, a read of the backend outside the engine's lock shows here.
func TestBackendSwapWhileChatting(t *testing.T) {
	e, fresh := losingEngine(t)
	e.tmpl = chat.ForModel("llama", "") // a plain template: Chat needs one
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Chat(context.Background(), ChatRequest{Messages: []Message{{Role: "user", Content: "hi"}}, Params: greedy(0)}, nil)
			_ = e.Backend().Name()
			_ = e.Info().Context
		}()
	}
	e.Generate(context.Background(), []int32{1}, greedy(0), false, nil)
	wg.Wait()
	if e.Backend() != Backend(fresh) {
		t.Error("the lost backend was not replaced")
	}
}

// TestContinuation: a begun answer is encoded after the prompt with its reasoning's tags as special
// tokens and its text as message text is; a reasoning without an answer is left open.
func TestContinuation(t *testing.T) {
	tok := testTokenizer(t)
	e := New(nil, tok, nil, nil)
	special := func(s string) []int32 { return tok.Encode(s, tokenizer.EncodeOptions{ParseSpecial: true}) }
	text := func(s string) []int32 { return tok.Encode(s, tokenizer.EncodeOptions{}) }
	cat := func(parts ...[]int32) []int32 { return slices.Concat(parts...) }
	tests := []struct {
		p       Partial
		want    []int32
		inThink bool
	}{
		{Partial{Answer: "Hello"}, text("Hello"), false},
		{Partial{Thinking: "Hello", Answer: "world"}, cat(special("<think>\n"), text("Hello"), special("\n</think>\n"), text("world")), false},
		{Partial{Thinking: "Hello"}, cat(special("<think>\n"), text("Hello")), true},
	}
	th := id(t, tok, "<think>")
	for _, tc := range tests {
		got, inThink := e.continuation(tc.p)
		if !slices.Equal(got, tc.want) || inThink != tc.inThink {
			t.Errorf("continuation(%+v) = %v, %v; want %v, %v", tc.p, got, inThink, tc.want, tc.inThink)
		}
		if slices.Contains(got, th) != (tc.p.Thinking != "") {
			t.Errorf("continuation(%+v): the <think> token is there: %v, want %v", tc.p, slices.Contains(got, th), tc.p.Thinking != "")
		}
	}
}

// TestPromptSpecialTokens: a raw prompt and a rendered chat get BOS and EOS as the model's
// tokenizer.ggml.add_bos_token and add_eos_token say, as llama.cpp's server adds them (add_special).
func TestPromptSpecialTokens(t *testing.T) {
	for _, tc := range []struct {
		addBOS, addEOS bool
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		v := testVocab()
		v.AddBOS, v.AddEOS = &tc.addBOS, &tc.addEOS
		tok, err := tokenizer.New(v)
		if err != nil {
			t.Fatal(err)
		}
		e := &Engine{tok: tok, tmpl: chat.ForModel("llama", "")}
		_, chatIDs, err := e.RenderChat([]Message{{Role: "user", Content: "Hello"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for what, ids := range map[string][]int32{"raw prompt": e.Tokenize("Hello world", false), "chat": chatIDs} {
			if got := ids[0] == tok.BOS(); got != tc.addBOS {
				t.Errorf("add_bos %v, add_eos %v: %s %v starts with BOS: %v", tc.addBOS, tc.addEOS, what, ids, got)
			}
			if got := ids[len(ids)-1] == tok.EOS(); got != tc.addEOS {
				t.Errorf("add_bos %v, add_eos %v: %s %v ends with EOS: %v", tc.addBOS, tc.addEOS, what, ids, got)
			}
		}
	}
}
