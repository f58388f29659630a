package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"smolchat/engine/constrain"
)

// seqFake is a deterministic SeqBackend: the logits after a position put all weight on nextOf(the
// sequence's tokens up to it), so a token depends on the whole sequence and any mix-up of sequences,
// positions or shared prefixes changes the answer. Its pool counts blocks of blockLen positions per
// sequence (forks copy, nothing is shared) against a budget of blocks.
type seqFake struct {
	mu       sync.Mutex
	vocab    int
	ctx      int
	blockLen int
	blocks   int
	seqs     map[SeqID][]int32
	last     SeqID
	freed    []SeqID
	fed      int // tokens evaluated, all sequences together
	loseAt   int // ForwardSeqs fails with ErrBackendLost once fed would pass this (0 = never)
	// clock is the scheduler's clock (newSeqEngine): ForwardSeqs moves it on by cost(batch) when cost
	// is set, and otherwise the steps take no time.
	clock time.Time
	cost  func(batch []SeqEntry) time.Duration
}

func newSeqFake(vocab, blocks int) *seqFake {
	return &seqFake{vocab: vocab, ctx: 4096, blockLen: 4, blocks: blocks, seqs: map[SeqID][]int32{}}
}

// nextOf is the fake model: a hash of the tokens onto the byte tokens 3..202 (never an end token).
func nextOf(tokens []int32) int32 {
	h := uint32(2166136261)
	for _, t := range tokens {
		h = (h ^ uint32(t)) * 16777619
	}
	return 3 + int32(h%200)
}

// continuation is what the fake generates after prompt, n tokens, greedily.
func continuation(prompt []int32, n int) []int32 {
	all := slices.Clone(prompt)
	for range n {
		all = append(all, nextOf(all))
	}
	return all[len(prompt):]
}

func (f *seqFake) Name() string    { return "seqfake" }
func (f *seqFake) Device() string  { return "test" }
func (f *seqFake) MaxContext() int { return f.ctx }
func (f *seqFake) Close() error    { return nil }
func (f *seqFake) Len() int        { return 0 }
func (f *seqFake) Truncate(int)    {}
func (f *seqFake) Forward(context.Context, []int32, []int) ([][]float32, error) {
	return nil, errors.New("seqfake: use ForwardSeqs")
}

func (f *seqFake) NewSeq() SeqID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last++
	f.seqs[f.last] = nil
	return f.last
}

func (f *seqFake) Fork(src SeqID, n int) (SeqID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.seqs[src]
	if !ok {
		return 0, fmt.Errorf("fork of unknown %d", src)
	}
	f.last++
	f.seqs[f.last] = slices.Clone(t[:min(n, len(t))])
	return f.last, nil
}

func (f *seqFake) SeqLen(id SeqID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs[id])
}

func (f *seqFake) TruncateSeq(id SeqID, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.seqs[id]; ok {
		f.seqs[id] = t[:max(0, min(n, len(t)))]
	}
}

func (f *seqFake) FreeSeq(id SeqID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.seqs[id]; ok {
		delete(f.seqs, id)
		f.freed = append(f.freed, id)
	}
}

func (f *seqFake) usedLocked() int {
	n := 0
	for _, t := range f.seqs {
		n += (len(t) + f.blockLen - 1) / f.blockLen
	}
	return n
}

func (f *seqFake) KV() KVUsage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return KVUsage{BlockLen: f.blockLen, BlockBytes: 1, Blocks: f.blocks, Used: f.usedLocked()}
}

func (f *seqFake) BlocksOnlyIn(ids []SeqID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, id := range ids {
		n += (len(f.seqs[id]) + f.blockLen - 1) / f.blockLen
	}
	return n
}

func (f *seqFake) ForwardSeqs(ctx context.Context, batch []SeqEntry) ([][][]float32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	need := 0
	for _, e := range batch {
		t, ok := f.seqs[e.Seq]
		if !ok {
			return nil, fmt.Errorf("unknown sequence %d", e.Seq)
		}
		need += (len(t)+len(e.Tokens)+f.blockLen-1)/f.blockLen - (len(t)+f.blockLen-1)/f.blockLen
	}
	if f.usedLocked()+need > f.blocks {
		return nil, fmt.Errorf("seqfake: %d blocks more: %w", need, ErrKVFull)
	}
	if f.loseAt > 0 && f.fed+len(batch) > f.loseAt {
		return nil, fmt.Errorf("seqfake: device gone: %w", ErrBackendLost)
	}
	if f.cost != nil {
		f.clock = f.clock.Add(f.cost(batch))
	}
	out := make([][][]float32, len(batch))
	for i, e := range batch {
		start := len(f.seqs[e.Seq])
		f.seqs[e.Seq] = append(f.seqs[e.Seq], e.Tokens...)
		f.fed += len(e.Tokens)
		for _, w := range e.Want {
			row := make([]float32, f.vocab)
			row[nextOf(f.seqs[e.Seq][:start+w+1])] = 10
			out[i] = append(out[i], row)
		}
	}
	return out, nil
}

// tokensOf is sequence id's tokens.
func (f *seqFake) tokensOf(id SeqID) []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seqs[id])
}

// now is the fake's clock.
func (f *seqFake) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

// newSeqEngine makes an engine on a seqFake with the test tokenizer, timed by the fake's clock.
func newSeqEngine(t *testing.T, parallel, blocks int) (*Engine, *seqFake) {
	tok := testTokenizer(t)
	f := newSeqFake(tok.VocabSize(), blocks)
	e := New(nil, tok, nil, f)
	e.Parallel = parallel
	e.hooks.now = f.now
	t.Cleanup(func() { e.Close() })
	return e, f
}

// lockstep holds the scheduler at each batch until the test lets it go, so that tests see every step
// in order without timing.
// arrived receives a value each time a request reaches the scheduler.
type lockstep struct {
	steps   chan []SeqEntry
	proceed chan struct{}
	done    chan struct{}
	arrived chan struct{}
}

// holdSteps installs the test hooks; call it before the engine's first generation.
func holdSteps(t *testing.T, e *Engine) *lockstep {
	beforeScheduler(t, e)
	l := &lockstep{steps: make(chan []SeqEntry), proceed: make(chan struct{}), done: make(chan struct{}),
		arrived: make(chan struct{}, 64)}
	e.hooks.onSubmit = func() { l.arrived <- struct{}{} }
	e.hooks.onStep = func(b []SeqEntry) {
		select {
		case l.steps <- b:
			select {
			case <-l.proceed:
			case <-l.done:
			}
		case <-l.done:
		}
	}
	t.Cleanup(func() { close(l.done) })
	return l
}

// beforeScheduler fails the test if e's scheduler has started: hooks set later would race with it.
func beforeScheduler(t *testing.T, e *Engine) {
	t.Helper()
	if e.sched != nil {
		t.Fatal("test hooks set after the scheduler started")
	}
}

// next waits for the next batch; the scheduler evaluates it when release is called.
func (l *lockstep) next() []SeqEntry { return <-l.steps }
func (l *lockstep) release()         { l.proceed <- struct{}{} }

// drain lets every step go until stop closes (nil: until the test ends).
func (l *lockstep) drain(stop <-chan struct{}) {
	for {
		select {
		case <-l.steps:
			select {
			case l.proceed <- struct{}{}:
			case <-l.done:
				return
			}
		case <-stop:
			return
		case <-l.done:
			return
		}
	}
}

type genResult struct {
	res Result
	err error
}

func startGen(e *Engine, ctx context.Context, prompt []int32, p GenParams, emit func(Delta) error) <-chan genResult {
	c := make(chan genResult, 1)
	go func() {
		res, err := e.Generate(ctx, prompt, p, false, emit)
		c <- genResult{res, err}
	}()
	return c
}

// prompt is n tokens starting with 3+first, so that prompts with different firsts share no prefix.
func prompt(first int32, n int) []int32 {
	p := []int32{3 + first}
	for i := range n - 1 {
		p = append(p, 3+(first*31+int32(i)*7)%200)
	}
	return p
}

// TestSchedulerMatchesAlone runs generations together, some sharing prompt prefixes (forks of running
// and cached sequences), and checks each one's tokens against the fake model's greedy continuation.
func TestSchedulerMatchesAlone(t *testing.T) {
	for _, parallel := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("parallel %d", parallel), func(t *testing.T) {
			e, _ := newSeqEngine(t, parallel, 1000)
			base := prompt(5, 30)
			prompts := [][]int32{base, append(slices.Clone(base[:20]), 9, 9, 9), prompt(6, 3), append(slices.Clone(base), 4), prompt(7, 70)}
			var results []<-chan genResult
			for i, p := range prompts {
				results = append(results, startGen(e, context.Background(), p, greedy(10+i), nil))
			}
			for i, c := range results {
				r := <-c
				if r.err != nil {
					t.Fatal(r.err)
				}
				if want := continuation(prompts[i], 10+i); !slices.Equal(r.res.Tokens, want) {
					t.Errorf("request %d: tokens %v, want %v", i, r.res.Tokens, want)
				}
			}
		})
	}
}

// TestSchedulerSampledMatchesAlone runs sampled generations together (each its own seed; penalties, a
// grammar two of them share, log probabilities: the state a step's picks use, which they take at once)
// and each alone on an engine of its own: each request's tokens and log probabilities must not depend on
// the others, and a step must have picked the tokens of all four.
func TestSchedulerSampledMatchesAlone(t *testing.T) {
	str, err := constrain.CompileSchema([]byte(`{"type":"string","maxLength":12}`))
	if err != nil {
		t.Fatal(err)
	}
	params := func(i int) GenParams {
		p := GenParams{MaxTokens: 24, SamplerParams: SamplerParams{Temperature: 2, TopP: 0.9, Seed: uint64(100 + i)}}
		switch i {
		case 1:
			p.RepeatPenalty, p.RepeatLastN = 1.5, 16
		case 2:
			p.Grammar = str
		case 3:
			p.Grammar, p.Logprobs, p.TopLogprobs = str, true, 3 // the grammar shared, as n > 1 choices share it
		}
		return p
	}
	prompts := [][]int32{prompt(1, 12), prompt(2, 5), prompt(3, 40), prompt(4, 9)}
	var alone []Result
	for i, pr := range prompts {
		e, _ := newSeqEngine(t, 1, 1000)
		res, err := e.Generate(context.Background(), pr, params(i), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, res)
	}
	e, _ := newSeqEngine(t, len(prompts), 1000)
	l := holdSteps(t, e)
	var together []<-chan genResult
	for i, pr := range prompts {
		together = append(together, startGen(e, context.Background(), pr, params(i), nil))
	}
	for range prompts {
		<-l.arrived // the first step waits for them all: the next admits the others beside the first
	}
	// Let the steps go, counting the rows that pick a token in each.
	stop, most := make(chan struct{}), make(chan int)
	go func() {
		m := 0
		for {
			select {
			case b := <-l.steps:
				n := 0
				for _, x := range b {
					n += min(len(x.Want), 1)
				}
				m = max(m, n)
				l.release()
			case <-stop:
				most <- m
				return
			}
		}
	}()
	for i, c := range together {
		r := <-c
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Equal(r.res.Tokens, alone[i].Tokens) || !reflect.DeepEqual(r.res.Logprobs, alone[i].Logprobs) {
			t.Errorf("request %d: tokens %v together, %v alone; log probabilities equal: %v", i, r.res.Tokens,
				alone[i].Tokens, reflect.DeepEqual(r.res.Logprobs, alone[i].Logprobs))
		}
	}
	close(stop)
	if m := <-most; m < len(prompts) {
		t.Errorf("at most %d rows picked a token in one step, want %d", m, len(prompts))
	}
}

// TestSchedulerNewcomer starts a request while three others decode: its prompt is evaluated in chunks
// in the same steps as their tokens (they keep flowing), and its first token comes with the step that
// ends its prompt: the next step decodes it beside them.
func TestSchedulerNewcomer(t *testing.T) {
	e, f := newSeqEngine(t, 4, 1000)
	e.hooks.promptChunk = 8
	l := holdSteps(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := startStreams(e, l, ctx, 3)
	const newLen = 2*8 + 5 // two full chunks and a part
	results = append(results, startGen(e, ctx, prompt(9, newLen), greedy(0), nil))
	<-l.arrived // it arrived while the scheduler waits: the next step admits it
	l.release()
	var chunks []int
	var newSeq SeqID
	for step := 0; ; step++ {
		b := l.next()
		if step > 4 {
			t.Fatal("the new request is not done with its prompt after 4 steps")
		}
		var prefill []SeqEntry
		for _, x := range b {
			if len(x.Tokens) > 1 || (newSeq != 0 && x.Seq == newSeq) {
				prefill = append(prefill, x)
			}
		}
		if len(prefill) == 0 && newSeq == 0 {
			t.Fatalf("the step after the new request arrived does not admit it: %v", b)
		}
		if newSeq == 0 {
			newSeq = prefill[0].Seq
		}
		if d := decodeRows(b); d != 3 && len(chunks) < 3 {
			t.Errorf("step %d of the new prompt: %d sequences decode beside it, want 3", len(chunks)+1, d)
		}
		if len(chunks) == 3 {
			// The step after the prompt's last chunk: the new sequence decodes its first token.
			if len(prefill) != 1 || len(prefill[0].Tokens) != 1 || decodeRows(b) != 4 {
				t.Errorf("after its prompt: batch %v, want four decoding sequences", b)
			}
			if got := f.tokensOf(newSeq); len(got) != newLen {
				t.Errorf("the new sequence holds %d tokens before its first decode step, want %d", len(got), newLen)
			}
			l.release()
			break
		}
		chunks = append(chunks, len(prefill[0].Tokens))
		l.release()
	}
	if !slices.Equal(chunks, []int{8, 8, 5}) {
		t.Errorf("the new prompt was evaluated in chunks %v, want [8 8 5]", chunks)
	}
	cancelAll(t, l, cancel, results)
}

// decodeRows counts the decode rows of batch b.
func decodeRows(b []SeqEntry) (n int) {
	for _, x := range b {
		if len(x.Tokens) == 1 && len(x.Want) == 1 {
			n++
		}
	}
	return n
}

// startStreams starts n endless greedy generations and returns once a step carries the decode rows of
// all n; that step is held (l.release lets it go).
func startStreams(e *Engine, l *lockstep, ctx context.Context, n int) []<-chan genResult {
	var results []<-chan genResult
	for i := range n {
		results = append(results, startGen(e, ctx, prompt(int32(i), 5), greedy(0), nil))
	}
	for decodeRows(l.next()) != n {
		l.release()
	}
	for range n {
		<-l.arrived
	}
	return results
}

// cancelAll cancels the generations of results and checks that each ended cancelled.
func cancelAll(t *testing.T, l *lockstep, cancel context.CancelFunc, results []<-chan genResult) {
	t.Helper()
	cancel()
	stop := make(chan struct{})
	go l.drain(stop)
	for _, c := range results {
		if r := <-c; r.err != nil || r.res.FinishReason != FinishCancelled {
			t.Errorf("after cancel: %v, %q", r.err, r.res.FinishReason)
		}
	}
	close(stop)
}

// TestSchedulerRides runs a prompt of chunks chunks while 3 sequences decode, on a fake device whose
// decode step takes 120 ms and a step with a prompt chunk rowCost per row, so that the 3 decode rows
// cost a chunk 3·rowCost/120 ms decode steps (sums of quarters: exact in floating point), and checks
// which chunks they ride with (ride.go): within rideBudget (1.5) over the prompt, spread evenly, and
// at least every rideEvery (8) chunks.
func TestSchedulerRides(t *testing.T) {
	for _, c := range []struct {
		name    string
		chunks  int
		rowCost time.Duration
		want    string // per chunk: R the decode rows ride with it, - they sit it out
	}{
		{"free rows", 12, 0, "RRRRRRRRRRRR"},                             // the steps take no time: the costs stay unknown
		{"cheap rows", 12, time.Millisecond, "RRRRRRRRRRRR"},             // 0.025 steps a chunk
		{"one chunk", 1, 20 * time.Millisecond, "R"},                     // 0.5 ≤ 1.5
		{"four chunks", 4, 20 * time.Millisecond, "-RRR"},                // 0.5 > 1.5/4; 0.5 ≤ 1.5·2/4, 1 ≤ 1.5·3/4, 1.5 ≤ 1.5
		{"twelve chunks", 12, 20 * time.Millisecond, "---R---R---R"},     // 0.5, 1, 1.5 ≤ 1.5·i/12 from i = 4, 8, 12
		{"twelve cheaper", 12, 10 * time.Millisecond, "-R-R-R-R-R-R"},    // 0.25 a chunk
		{"dear rows", 20, 70 * time.Millisecond, "-------R-------R----"}, // 1.75 a chunk: every rideEvery
	} {
		t.Run(c.name, func(t *testing.T) {
			e, f := newSeqEngine(t, 4, 1000)
			e.hooks.promptChunk = 8
			if c.rowCost > 0 {
				f.cost = func(batch []SeqEntry) time.Duration {
					rows, prompt := 0, false
					for _, x := range batch {
						rows += len(x.Tokens)
						prompt = prompt || len(x.Want) == 0 || len(x.Tokens) > 1
					}
					if !prompt {
						return 120 * time.Millisecond
					}
					return time.Duration(rows) * c.rowCost
				}
			}
			l := holdSteps(t, e)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			results := startStreams(e, l, ctx, 3)
			l.release() // a decode step of all three, timed
			newLen := 8 * c.chunks
			results = append(results, startGen(e, ctx, prompt(9, newLen), greedy(0), nil))
			<-l.arrived
			var got []byte
			for fed := 0; fed < newLen; {
				b := l.next()
				switch d := decodeRows(b); {
				case len(b) == d:
					// a decode step before the new request's admission
				case d == 3:
					got = append(got, 'R')
				case d == 0:
					got = append(got, '-')
				default:
					t.Fatalf("a chunk with %d of the 3 decode rows: %v", d, b)
				}
				for _, x := range b {
					if len(x.Tokens) > 1 {
						fed += len(x.Tokens)
					}
				}
				l.release()
			}
			if string(got) != c.want {
				t.Errorf("the decode rows rode with the chunks as %s, want %s", got, c.want)
			}
			cancelAll(t, l, cancel, results)
		})
	}
}

// TestSchedulerCancelMidBatch cancels one of three decoding requests: its sequence leaves before the
// next batch, which goes on without it, into the conversation cache with what it evaluated (not freed:
// a stopped answer's conversation is usually sent again), and the others' tokens are those they get
// alone.
func TestSchedulerCancelMidBatch(t *testing.T) {
	e, f := newSeqEngine(t, 4, 1000)
	l := holdSteps(t, e)
	ctxs := make([]context.Context, 3)
	cancels := make([]context.CancelFunc, 3)
	var results []<-chan genResult
	prompts := [][]int32{prompt(1, 6), prompt(2, 9), prompt(3, 4)}
	for i := range 3 {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		defer cancels[i]()
		results = append(results, startGen(e, ctxs[i], prompts[i], greedy(0), nil))
	}
	// Run until all three decode, and five steps more.
	decoding := 0
	var victim SeqID
	for steps := 0; decoding < 5; steps++ {
		b := l.next()
		if len(b) == 3 && len(b[0].Tokens) == 1 && len(b[1].Tokens) == 1 && len(b[2].Tokens) == 1 {
			decoding++
			for _, x := range b {
				if got := f.tokensOf(x.Seq); len(got) >= len(prompts[1]) && slices.Equal(got[:len(prompts[1])], prompts[1]) {
					victim = x.Seq
				}
			}
		}
		l.release()
	}
	if victim == 0 {
		t.Fatal("no sequence holds the second prompt")
	}
	b := l.next() // the scheduler waits before this batch: cancel now
	cancels[1]()
	l.release()
	b = l.next()
	for _, x := range b {
		if x.Seq == victim {
			t.Errorf("the cancelled sequence %d is in the next batch", victim)
		}
	}
	// The scheduler waits in onStep: the test may read its cache.
	cached := false
	for _, c := range e.sched.cache.entries {
		if c.seq == victim {
			cached = true
			if got := f.tokensOf(victim); !slices.Equal(c.tokens, got) || len(got) <= len(prompts[1]) {
				t.Errorf("the cancelled sequence is cached as %v; it holds %v (its prompt and answer so far)", c.tokens, got)
			}
		}
	}
	if !cached {
		t.Errorf("the cancelled sequence %d is not in the conversation cache", victim)
	}
	l.release()
	stop := make(chan struct{})
	go l.drain(stop)
	defer close(stop)
	cancels[0]()
	cancels[2]()
	for i, c := range results {
		r := <-c
		switch {
		case r.err != nil:
			t.Errorf("request %d: %v", i, r.err)
		case r.res.FinishReason != FinishCancelled:
			t.Errorf("request %d: finish %q, want cancelled", i, r.res.FinishReason)
		case i != 1 && len(r.res.Tokens) < 8:
			t.Errorf("request %d: %d tokens, want more than the 7 steps it ran beside the cancelled one", i, len(r.res.Tokens))
		case !slices.Equal(r.res.Tokens, continuation(prompts[i], len(r.res.Tokens))):
			t.Errorf("request %d beside a cancelled one: tokens %v, want %v", i, r.res.Tokens, continuation(prompts[i], len(r.res.Tokens)))
		}
	}
}

// TestSchedulerCancelledKeepsConversation stops an answer after a few deltas (the client went away, or
// pressed stop) and sends the conversation again with the stopped answer and a new turn: the prompt and
// the answer so far come from the cache, and the new answer is the model's.
func TestSchedulerCancelledKeepsConversation(t *testing.T) {
	e, _ := newSeqEngine(t, 4, 1000)
	first := prompt(4, 40)
	deltas := 0
	stopped, err := e.Generate(context.Background(), first, greedy(50), false, func(Delta) error {
		if deltas++; deltas == 3 {
			return errors.New("client gone")
		}
		return nil
	})
	if err != nil || stopped.FinishReason != FinishCancelled {
		t.Fatalf("stopped answer: %v, finish %q", err, stopped.FinishReason)
	}
	next := slices.Concat(first, stopped.Tokens, prompt(9, 10))
	r, err := e.Generate(context.Background(), next, greedy(5), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Timings.CachedTokens; got < len(first)+2 || got > len(first)+len(stopped.Tokens) {
		t.Errorf("cached tokens %d, want the prompt's %d and most of the %d answer tokens", got, len(first), len(stopped.Tokens))
	}
	if want := continuation(next, 5); !slices.Equal(r.Tokens, want) {
		t.Errorf("tokens %v, want %v", r.Tokens, want)
	}
}

// together runs a greedy generation of max tokens for each prompt side by side (the scheduler is held
// at its first step until every request has arrived) and returns their results.
func together(l *lockstep, e *Engine, prompts [][]int32, max int) []genResult {
	var started []<-chan genResult
	for _, p := range prompts {
		started = append(started, startGen(e, context.Background(), p, greedy(max), nil))
	}
	for range prompts {
		<-l.arrived
	}
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() {
		l.drain(stop)
		close(drained)
	}()
	results := make([]genResult, len(started))
	for i, c := range started {
		results[i] = <-c
	}
	close(stop)
	<-drained // the next call holds the scheduler again
	return results
}

// TestSchedulerKVFull fills a budget with three running sequences that each need more blocks: the
// cached conversations go first, then the newest request fails with ErrKVFull and the others finish.
func TestSchedulerKVFull(t *testing.T) {
	e, _ := newSeqEngine(t, 3, 12) // 12 blocks of 4 positions
	l := holdSteps(t, e)
	// A cached conversation of 8 positions (2 blocks).
	if r := together(l, e, [][]int32{prompt(8, 6)}, 3)[0]; r.err != nil {
		t.Fatal(r.err)
	}
	if st, _ := e.SchedulerStats(); st.CachedSeqs != 1 {
		t.Fatalf("%d cached conversations, want 1", st.CachedSeqs)
	}
	ok, full := tally(t, together(l, e, [][]int32{prompt(20, 4), prompt(21, 4), prompt(22, 4)}, 12))
	// 3 × 16 positions need 12 blocks: the cached conversation is evicted, and then they fit.
	st, _ := e.SchedulerStats()
	if full != 0 || ok != 3 || st.Evictions != 1 {
		t.Errorf("%d finished, %d refused, %d evictions; want 3, 0, 1", ok, full, st.Evictions)
	}
	// Three that need 3 × 20 positions (15 blocks) cannot all fit: one is refused.
	// The cached conversations go first, then the newest request.
	if ok, full := tally(t, together(l, e, [][]int32{prompt(30, 4), prompt(31, 4), prompt(32, 4)}, 16)); ok != 2 || full != 1 {
		t.Errorf("%d finished, %d refused; want 2 and 1", ok, full)
	}
}

// tally counts the results that finished and those refused with ErrKVFull.
func tally(t *testing.T, results []genResult) (ok, full int) {
	for _, r := range results {
		switch {
		case errors.Is(r.err, ErrKVFull):
			full++
		case r.err == nil:
			ok++
		default:
			t.Errorf("unexpected error: %v", r.err)
		}
	}
	return ok, full
}

// TestSchedulerSlowClient holds one client's emit: its sequence sits out the decode steps once it is
// aheadMax tokens ahead of its client, while the other keeps decoding; once the client takes its
// tokens, it decodes again, and both answers are the model's.
func TestSchedulerSlowClient(t *testing.T) {
	e, f := newSeqEngine(t, 2, 1000)
	l := holdSteps(t, e)
	gate := make(chan struct{})
	slow := startGen(e, context.Background(), prompt(1, 5), greedy(6), func(Delta) error { <-gate; return nil })
	<-l.arrived
	fast := startGen(e, context.Background(), prompt(2, 5), greedy(20), func(Delta) error { return nil })
	<-l.arrived
	var slowSeq SeqID
	slowSteps, steps := 0, 0
	for steps < 12 {
		b := l.next()
		for _, x := range b {
			if got := append(f.tokensOf(x.Seq), x.Tokens...); got[0] == prompt(1, 5)[0] {
				slowSeq = x.Seq
				slowSteps++
			}
		}
		steps++
		l.release()
	}
	// The slow sequence: its prompt step (whose token waits for the client) and aheadMax-1 decode steps.
	if slowSeq == 0 || slowSteps != aheadMax {
		t.Errorf("the sequence of a client that takes nothing was in %d of %d steps, want %d", slowSteps, steps, aheadMax)
	}
	close(gate)
	stop := make(chan struct{})
	defer close(stop)
	go l.drain(stop)
	for i, c := range []<-chan genResult{slow, fast} {
		r := <-c
		p := prompt(int32(i+1), 5)
		if r.err != nil || !slices.Equal(r.res.Tokens, continuation(p, len(r.res.Tokens))) || len(r.res.Tokens) != []int{6, 20}[i] {
			t.Errorf("request %d: %v, tokens %v", i, r.err, r.res.Tokens)
		}
	}
}

// watchWaits reports, without blocking the scheduler, that it waited for its clients (at most one
// report is held).
func watchWaits(t *testing.T, e *Engine) <-chan struct{} {
	beforeScheduler(t, e)
	waits := make(chan struct{}, 1)
	e.hooks.onWait = func() {
		select {
		case waits <- struct{}{}:
		default:
		}
	}
	return waits
}

// takeOnTick is the emit of a streaming client that takes each token only when tick lets it.
func takeOnTick(tick <-chan struct{}) func(Delta) error {
	return func(d Delta) error {
		if d.Token >= 0 {
			<-tick
		}
		return nil
	}
}

// TestSchedulerStreamingClients runs three streaming clients that each take a token only after the
// scheduler has planned the step that follows the one that made it (a client's goroutine runs a moment
// after the step; the scheduler plans the next one at once): every decoding sequence must still be in
// every step. (Sitting out while one token waited for its client, four such streams on lavapipe took
// about 240 steps for 128 tokens each.)
func TestSchedulerStreamingClients(t *testing.T) {
	const clients, tokens = 3, 8
	e, f := newSeqEngine(t, clients, 1000)
	l := holdSteps(t, e)
	waits := watchWaits(t, e)
	ticks := make([]chan struct{}, clients)
	var results []<-chan genResult
	for c := range clients {
		ticks[c] = make(chan struct{})
		results = append(results, startGen(e, context.Background(), prompt(int32(c+1), 5), greedy(tokens), takeOnTick(ticks[c])))
		<-l.arrived
	}
	produced := make([]int, clients)
	var pending []int // clients with a token made by the last step, not taken yet
	unfinished := func() (n int) {
		for _, p := range produced {
			if p < tokens {
				n++
			}
		}
		return n
	}
	for step := 0; unfinished() > 0; step++ {
		var b []SeqEntry
		select {
		case b = <-l.steps:
		case <-waits:
			if unfinished() > 1 {
				for _, c := range ticks {
					close(c) // let the clients go, so that the engine closes
				}
				t.Fatalf("after step %d the scheduler waited for the clients instead of decoding (tokens made %v)", step, produced)
			}
			// The last sequence running waits for its client (TestSchedulerLoneStreamWaits).
			for _, c := range pending {
				ticks[c] <- struct{}{}
			}
			pending = nil
			b = <-l.steps
		}
		in := make([]bool, clients)
		var made []int
		for _, x := range b {
			c := int(append(f.tokensOf(x.Seq), x.Tokens...)[0]) - 4 // prompt(c+1, 5) starts with 4+c
			in[c] = true
			if len(x.Want) > 0 {
				made = append(made, c)
			}
		}
		for c, n := range produced {
			if n > 0 && n < tokens && !in[c] {
				t.Errorf("step %d: client %d (%d of %d tokens, the last not taken yet) sat out", step, c, n, tokens)
			}
		}
		for _, c := range pending {
			ticks[c] <- struct{}{} // the client takes its token now, after the plan
		}
		pending = made
		for _, c := range made {
			produced[c]++
		}
		l.release()
	}
	for _, c := range pending {
		ticks[c] <- struct{}{}
	}
	stop := make(chan struct{})
	defer close(stop)
	go l.drain(stop)
	for c, res := range results {
		r := <-res
		if p := prompt(int32(c+1), 5); r.err != nil || !slices.Equal(r.res.Tokens, continuation(p, tokens)) {
			t.Errorf("client %d: %v, tokens %v", c, r.err, r.res.Tokens)
		}
	}
}

// TestSchedulerLoneStreamWaits runs one streaming client: with no other row in the step, its sequence
// waits for the client to take each token before it decodes the next (on a CPU-type device the
// client's work would otherwise run beside the step's threads).
func TestSchedulerLoneStreamWaits(t *testing.T) {
	const tokens = 3
	e, _ := newSeqEngine(t, 2, 1000)
	l := holdSteps(t, e)
	waits := watchWaits(t, e)
	tick := make(chan struct{})
	res := startGen(e, context.Background(), prompt(1, 5), greedy(tokens), takeOnTick(tick))
	<-l.arrived
	for i := range tokens {
		l.next() // the prompt, then a decode step a token
		// A wait seen before this step's release (a spare wake-up's) says nothing about what follows it.
		select {
		case <-waits:
		default:
		}
		l.release()
		if i == tokens-1 {
			break // the generation is over
		}
		select {
		case <-waits:
		case b := <-l.steps:
			close(tick)
			t.Fatalf("token %d: the lone sequence stepped (%d entries) before its client took its token", i+1, len(b))
		}
		tick <- struct{}{}
	}
	tick <- struct{}{}
	if r := <-res; r.err != nil || !slices.Equal(r.res.Tokens, continuation(prompt(1, 5), tokens)) {
		t.Errorf("%v, tokens %v", r.err, r.res.Tokens)
	}
}

// TestSchedulerBackendLost loses the backend in the middle of a batch of three: each running request
// gets the error, the engine re-creates the backend, and the next request runs on the new one.
func TestSchedulerBackendLost(t *testing.T) {
	e, f := newSeqEngine(t, 4, 1000)
	f.loseAt = 3*5 + 3*4 // three prompts of 5, then four decode steps
	var replaced *seqFake
	e.reload = func() (Backend, error) {
		replaced = newSeqFake(f.vocab, 1000)
		return replaced, nil
	}
	l := holdSteps(t, e)
	var started []<-chan genResult
	for i := range 3 {
		started = append(started, startGen(e, context.Background(), prompt(int32(i), 5), greedy(0), nil))
	}
	for range 3 {
		<-l.arrived
	}
	stop := make(chan struct{})
	defer close(stop)
	go l.drain(stop)
	for i, c := range started {
		if r := <-c; !errors.Is(r.err, ErrBackendLost) {
			t.Errorf("request %d: err = %v, want ErrBackendLost", i, r.err)
		}
	}
	res, err := e.Generate(context.Background(), prompt(7, 5), greedy(4), false, nil)
	if err != nil || !slices.Equal(res.Tokens, continuation(prompt(7, 5), 4)) {
		t.Fatalf("after the loss: %v, tokens %v", err, res.Tokens)
	}
	if replaced == nil || replaced.fed == 0 {
		t.Error("the request after the loss did not run on the re-created backend")
	}
}

// BenchmarkSchedulerPicks is the time a step of four sequences spends picking their tokens with the
// default sampling (temperature 0.6, top-p 0.95) from rows of a 128k vocabulary shaped like a model's
// (benchLogits): the rows one after another, as the scheduler did, and at once (pickAll). The device
// waits for the picks: the next step needs their tokens.
func BenchmarkSchedulerPicks(b *testing.B) {
	tok := testTokenizer(b)
	e := New(nil, tok, nil, newSeqFake(tok.VocabSize(), 1000))
	b.Cleanup(func() { e.Close() })
	const rows = 4
	who := make([]*seqRequest, rows)
	batch := make([]SeqEntry, rows)
	out := make([][][]float32, rows)
	for k := range rows {
		p := GenParams{SamplerParams: DefaultSamplerParams()}
		p.Seed = uint64(k)
		g, err := e.newGeneration(context.Background(), []int32{1, 2, 3}, p, false, 1<<20, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		who[k], batch[k], out[k] = &seqRequest{g: g}, SeqEntry{Want: []int{0}}, [][]float32{benchLogits()}
	}
	b.Run("one after another", func(b *testing.B) {
		for b.Loop() {
			for k, r := range who {
				if _, err := r.g.step.pick(out[k][0], r.g.history); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("at once", func(b *testing.B) {
		for b.Loop() {
			pickAll(who, batch, out)
		}
	})
}
