package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A step evaluates at most prefillChunk prompt tokens, whether or not other sequences decode: a prompt
// that arrives while they decode is evaluated in as many steps as alone, and the running streams' decode
// rows ride with those chunks as far as its share of their cost allows (ride.go). Smaller chunks while
// others decode (64 before) kept their tokens coming four times as often, but every extra step reads all
// the weights once more: a 512-token prompt beside three streams took 9 batches against 2 alone (now 3,
// the one in flight at its arrival included; BenchmarkArrival). llama.cpp's server likewise evaluates its
// micro-batch of up to 512 prompt tokens in the decode step.

// minShare is the fewest prompt tokens worth waiting for: a request whose prompt shares that many more
// with a sequence in prefill than with any other waits for that prefill, then starts after it.
const minShare = 16

// maxCached bounds the conversations the cache keeps besides the KV budget, so that matching a prompt
// against them stays cheap.
const maxCached = 64

// scheduler runs the generations of an engine whose backend holds many sequences (SeqBackend): continuous
// batching, as llama.cpp's server slots and vLLM do. One goroutine (run) owns the backend. A step:
//
//  1. takes the requests that arrived, and ends those whose ctx is done: a running one leaves the
//     batch at once, and no other sequence notices (its blocks go to the conversation cache, see end);
//  2. admits waiting requests while fewer than parallel run. Each starts after the longest prefix its
//     prompt shares with a cached conversation, a running sequence or a file of the disk cache (read
//     back into the conversation cache first), whose blocks it shares (Fork); a request whose prompt
//     shares more with one still in prefill waits for that prefill to end;
//  3. builds one batch: the last picked token of every decoding sequence (one row each, its logits
//     wanted), then chunks of the prompts still in prefill, in arrival order, at most prefillChunk
//     tokens in all. A prompt's last chunk wants its last row: the logits of the first token. The
//     decode rows sit out a chunk that cannot afford them (ride.go);
//  4. evaluates the batch with one ForwardSeqs: every weight is read once for all its rows. When the KV
//     budget is full it evicts the least recently used cached conversation and plans again; with no
//     cached one left it fails the newest request (ErrKVFull);
//  5. hands each wanted row to its generation: the steppers pick the tokens (sampling, grammar,
//     logprobs), the rows at once (pickAll), then push emits each and says whether its generation is
//     over. A finished sequence's blocks stay in the conversation cache (convCache), which spills to
//     disk (kvdisk.go) what it evicts, and what it holds while the scheduler has nothing to run or
//     closes.
//
// Deltas go to each request's outbox; the request's own goroutine (generate) calls emit, so a slow
// client never holds up the batch. A sequence whose client has aheadMax of its tokens not emitted yet
// sits out the decode steps until it takes one: a client that stops reading stops its own generation
// (aheadMax tokens on), not the others. The slack lets a client's goroutine run a little after the
// step that made its token: with none (sitting out while one token waits), the plan that follows a
// step at once found most streaming sequences' goroutines not yet run, and four streams on lavapipe
// took about 240 steps for 128 tokens each instead of 128. A sequence that would be alone in a step
// waits for its client to take every token, as on the one-sequence path.
type scheduler struct {
	e        *Engine
	b        SeqBackend
	parallel int
	chunk    int // prompt tokens per step: prefillChunk, or the hooks' promptChunk
	maxCtx   int
	base     context.Context
	stop     context.CancelFunc

	mu       sync.Mutex
	incoming []*seqRequest
	closed   bool
	wake     chan struct{} // signalled when a request arrives
	stopped  chan struct{} // closed when run returns
	gone     atomic.Bool   // the backend was lost and replaced by one without sequences

	waiting []*seqRequest
	running []*seqRequest // in admission order
	cache   convCache
	// disk keeps cached conversations in files (nil: off, or the backend cannot export its KV); exp is
	// the backend's export.
	disk *kvDisk
	exp  KVExporter

	costs   stepCosts
	skipped int // chunks evaluated in a row without the decode rows of sequences that wait to decode

	stats atomic.Pointer[SchedulerStats]
	schedHooks
}

// schedHooks are what tests set on an Engine before its scheduler starts (newScheduler copies them, so
// the scheduler's goroutine reads them without a lock). onStep and onSubmit, when set, are called with
// each batch before it is evaluated, and after a request is handed to the scheduler; onIdle when the
// scheduler, idle, has spilled what it could to disk and waits; onWait when every running sequence waits
// for its client. promptChunk, when not 0, replaces prefillChunk; now, when set, replaces time.Now as
// the clock that times the steps.
type schedHooks struct {
	onStep      func(batch []SeqEntry)
	onSubmit    func()
	onIdle      func()
	onWait      func()
	promptChunk int
	now         func() time.Time
}

// seqRequest is one generation in the scheduler.
type seqRequest struct {
	g        *generation
	ctx      context.Context
	prompt   []int32
	seq      SeqID
	hasSeq   bool
	fed      int   // positions of the sequence in the KV cache: prompt, then generated tokens
	next     int32 // while decoding, the picked token to evaluate next
	decoding bool
	share    prefillShare
	out      outbox
	done     chan seqDone
}

type seqDone struct {
	res Result
	err error
}

// SchedulerStats is what the scheduler runs, for /metrics and /slots.
type SchedulerStats struct {
	Parallel       int
	Running        int
	Waiting        int
	Slots          []SlotInfo // the running sequences, in admission order
	KV             KVUsage
	CachedSeqs     int   // conversations kept in the cache
	CachedBlocks   int   // blocks that only cached conversations hold (freed by evicting them all)
	CacheHitTokens int64 // prompt tokens not evaluated thanks to a cached or running sequence
	Evictions      int64 // cached conversations evicted for room
	DiskLoads      int64 // conversations read back from the disk cache
	Steps          int64 // batches evaluated
}

// SlotInfo describes a running sequence.
type SlotInfo struct {
	PromptTokens int
	CachedTokens int
	Generated    int
	Prefilling   bool // the prompt is still being evaluated
}

func newScheduler(e *Engine, b SeqBackend, parallel int) *scheduler {
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	s := &scheduler{e: e, b: b, parallel: parallel, chunk: prefillChunk, maxCtx: b.MaxContext(),
		wake: make(chan struct{}, 1), stopped: make(chan struct{}), schedHooks: e.hooks}
	if s.schedHooks.promptChunk > 0 {
		s.chunk = s.schedHooks.promptChunk
	}
	if s.now == nil {
		s.now = time.Now
	}
	if e.model != nil {
		s.costs.logits = logitsShare(e.model)
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.useDisk(e.disk)
	s.publish()
	return s
}

// useDisk spills cached conversations to d when the backend exports its KV in d's format.
func (s *scheduler) useDisk(d *kvDisk) {
	s.disk, s.exp, s.cache.spill = nil, nil, nil
	if x, ok := s.b.(KVExporter); ok && d != nil && x.KVFormat() == d.format {
		s.disk, s.exp = d, x
		s.cache.spill = func(e *cachedSeq) { s.spill(e, nil) }
	}
}

// spill writes a cached conversation to the disk cache, unless it is too short to be worth a file or
// a file already holds it; abort (nil: never) stops the write when the scheduler has work. It reports
// whether the write was aborted.
func (s *scheduler) spill(e *cachedSeq, abort func() bool) bool {
	if len(e.tokens) < minSpill || s.disk.holds(e.tokens) {
		e.spilled = true
		return false
	}
	err := s.disk.write(s.exp, e.seq, e.tokens, s.b.KV().BlockLen, abort)
	if errors.Is(err, errAborted) {
		return true
	}
	if err != nil {
		s.e.log().Warn("writing a conversation's KV cache to disk failed; it stays in memory only", "tokens", len(e.tokens), "err", err)
	}
	e.spilled = true
	return false
}

// spillIdle writes the cached conversations not on disk yet, the most recently used first, while
// nothing else is to be done: it stops as soon as a request arrives (the write is resumed, from the
// start, at the next idle moment).
func (s *scheduler) spillIdle() {
	if s.disk == nil {
		return
	}
	for i := len(s.cache.entries) - 1; i >= 0; i-- {
		if e := s.cache.entries[i]; !e.spilled && s.spill(e, s.hasWork) {
			return
		}
	}
}

// hasWork reports that a request arrived or the scheduler is closing.
func (s *scheduler) hasWork() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.incoming) > 0 || s.closed
}

var errEngineClosed = errors.New("the engine is closed")

// generate runs one generation through the scheduler and emits its deltas from the caller's goroutine.
func (s *scheduler) generate(ctx context.Context, prompt []int32, p GenParams, startInThink bool, emit func(Delta) error) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &seqRequest{ctx: ctx, prompt: prompt, done: make(chan seqDone, 1)}
	r.out.signal = make(chan struct{}, 1)
	var push func(Delta) error
	if emit != nil {
		push = r.out.push
	}
	g, err := s.e.newGeneration(ctx, prompt, p, startInThink, s.maxCtx, nil, push)
	if err != nil {
		return Result{}, err
	}
	r.g = g
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Result{}, errEngineClosed
	}
	s.incoming = append(s.incoming, r)
	s.mu.Unlock()
	s.signal()
	if s.onSubmit != nil {
		s.onSubmit()
	}

	var emitErr error
	deliver := func() {
		items := r.out.take()
		for _, d := range items {
			if emitErr == nil && emit != nil {
				if emitErr = emit(d); emitErr != nil {
					cancel() // the generation ends as cancelled at its next step
				}
			}
		}
		if r.out.emitted(len(items)) {
			s.signal() // the sequence may decode again
		}
	}
	for {
		select {
		case <-r.out.signal:
			deliver()
		case d := <-r.done:
			deliver()
			if emitErr != nil && d.err == nil {
				d.res.FinishReason = FinishCancelled
			}
			return d.res, d.err
		}
	}
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close stops the scheduler: requests not finished get errEngineClosed. It waits for run to return.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.signal()
	<-s.stopped
}

// run is the scheduler's goroutine: a step at a time until close.
func (s *scheduler) run() {
	defer close(s.stopped)
	for !s.gone.Load() && s.collect() {
		s.admit()
		if len(s.running) > 0 {
			s.step()
		}
		s.publish()
	}
	// Closed, or gone (the engine now runs one generation at a time, without the scheduler).
	err := errEngineClosed
	if s.gone.Load() {
		err = errors.New("the backend was replaced by one that runs one generation at a time; retry the request")
	}
	for _, r := range slices.Concat(s.running, s.waiting) {
		s.end(r, r.g.res, err)
	}
	if s.disk != nil && !s.gone.Load() {
		// The cached conversations outlive the process on disk.
		for _, e := range slices.Backward(s.cache.entries) {
			if !e.spilled {
				s.spill(e, nil)
			}
		}
	}
	s.mu.Lock()
	s.closed = true
	for _, r := range s.incoming {
		r.done <- seqDone{err: err}
	}
	s.incoming = nil
	s.mu.Unlock()
}

// collect takes the arrived requests and ends the cancelled ones, waiting while there is nothing to
// do. It returns false when the scheduler is closed.
func (s *scheduler) collect() bool {
	for {
		s.mu.Lock()
		in, closed := s.incoming, s.closed
		s.incoming = nil
		s.mu.Unlock()
		s.waiting = append(s.waiting, in...)
		if closed {
			return false
		}
		s.waiting = slices.DeleteFunc(s.waiting, func(r *seqRequest) bool {
			if r.ctx.Err() == nil {
				return false
			}
			r.done <- seqDone{res: r.g.cancelled()}
			return true
		})
		for _, r := range slices.Clone(s.running) {
			if r.ctx.Err() != nil {
				s.end(r, r.g.cancelled(), nil)
			}
		}
		if len(s.running)+len(s.waiting) > 0 {
			return true
		}
		s.publish()
		s.spillIdle()
		if s.onIdle != nil {
			s.onIdle()
		}
		<-s.wake
	}
}

// admit starts waiting requests while fewer than parallel run, in arrival order.
func (s *scheduler) admit() {
	for len(s.running) < s.parallel && len(s.waiting) > 0 {
		r := s.waiting[0]
		start := time.Now()
		keep, src, ent := s.match(r.prompt)
		if s.prefillShares(r.prompt, keep) {
			return // the sequence in prefill will share more: wait for it
		}
		s.waiting = s.waiting[1:]
		var err error
		switch {
		case ent != nil && keep == len(ent.tokens):
			r.seq = ent.seq // the cached conversation continues: take it over
			s.cache.remove(ent)
		case keep > 0:
			r.seq, err = s.b.Fork(src, keep)
		default:
			r.seq = s.b.NewSeq()
		}
		if err != nil {
			r.done <- seqDone{res: r.g.res, err: err}
			continue
		}
		r.hasSeq, r.fed = true, keep
		r.share = prefillShare{chunks: (len(r.prompt) - keep + s.chunk - 1) / s.chunk}
		s.addHits(keep)
		r.g.begin(keep, start)
		s.running = append(s.running, r)
	}
}

// match finds the longest prefix of prompt held by a cached conversation, a running sequence or a file
// of the disk cache (read into the conversation cache), short of the prompt's last token (whose logits
// must be computed): its length, the sequence, and the cache entry when it is a cached one.
func (s *scheduler) match(prompt []int32) (keep int, src SeqID, ent *cachedSeq) {
	keep, src, ent = s.matchMemory(prompt)
	if f, n := s.diskMatch(prompt); f != nil && n >= keep+minShare {
		if e := s.loadSpilled(f); e != nil {
			keep, src, ent = n, e.seq, e
		} else {
			keep, src, ent = s.matchMemory(prompt) // making room may have evicted the entry found
		}
	}
	if ent != nil {
		s.cache.touch(ent)
	}
	return keep, src, ent
}

// matchMemory is match among the cached conversations and the running sequences.
func (s *scheduler) matchMemory(prompt []int32) (keep int, src SeqID, ent *cachedSeq) {
	for _, c := range s.cache.entries {
		if n := min(commonPrefix(c.tokens, prompt), len(prompt)-1); n > keep {
			keep, src, ent = n, c.seq, c
		}
	}
	for _, r := range s.running {
		if n := min(commonPrefix(r.g.history[:r.fed], prompt), len(prompt)-1); n > keep {
			keep, src, ent = n, r.seq, nil
		}
	}
	return keep, src, ent
}

// diskMatch is the disk cache's file sharing the longest prefix with prompt, and its length.
func (s *scheduler) diskMatch(prompt []int32) (*diskSeq, int) {
	if s.disk == nil {
		return nil, 0
	}
	return s.disk.best(prompt)
}

// loadSpilled reads a conversation from the disk cache into the conversation cache, evicting the
// least recently used cached ones for room. It returns nil when the file could not be used (it is
// then removed, with a log line) or the pool has no room even with the cache empty.
func (s *scheduler) loadSpilled(f *diskSeq) *cachedSeq {
	for {
		seq, err := s.disk.load(s.b, s.exp, f)
		switch {
		case err == nil:
			s.count(func(st *SchedulerStats) { st.DiskLoads++ })
			return s.cache.add(s.b, seq, f.tokens, true)
		case errors.Is(err, ErrKVFull) && s.cache.evictOldest(s.b):
			s.count(func(st *SchedulerStats) { st.Evictions++ })
		default:
			return nil
		}
	}
}

// prefillShares reports that a running sequence in prefill will hold at least minShare more tokens of
// prompt than the keep positions available now (n > 1 choices, or requests with one system prompt
// arriving together): the request then waits for it rather than evaluating the same tokens again.
func (s *scheduler) prefillShares(prompt []int32, keep int) bool {
	for _, r := range s.running {
		if !r.decoding && min(commonPrefix(r.prompt, prompt), len(prompt)-1) >= keep+minShare {
			return true
		}
	}
	return false
}

// plan builds a step's batch (see scheduler) and returns it with the request of each entry, and whether
// decode rows sit it out for its prompt chunks.
func (s *scheduler) plan() (batch []SeqEntry, who []*seqRequest, satOut bool) {
	for _, r := range s.running {
		if r.decoding && r.out.pending() < aheadMax {
			batch = append(batch, SeqEntry{Seq: r.seq, Tokens: []int32{r.next}, Want: []int{0}})
			who = append(who, r)
		}
	}
	decoders := len(batch)
	budget := s.chunk
	for _, r := range s.running {
		if r.decoding || budget == 0 {
			continue
		}
		n := min(budget, len(r.prompt)-r.fed)
		e := SeqEntry{Seq: r.seq, Tokens: r.prompt[r.fed : r.fed+n]}
		if r.fed+n == len(r.prompt) {
			e.Want = []int{n - 1}
		}
		budget -= n
		batch = append(batch, e)
		who = append(who, r)
	}
	if decoders > 0 && len(batch) > decoders && !s.ride(who[decoders:], decoders) {
		return batch[decoders:], who[decoders:], true
	}
	if len(batch) == 1 && who[0].decoding && who[0].out.pending() > 0 {
		// A lone sequence waits for its client to take its tokens, on every device, as on the
		// one-sequence path: no other row needs the step, and on a CPU-type device the client's work
		// would run beside the step's threads and slow them (one stream through the server on
		// lavapipe took 10–20% longer).
		return nil, nil, false
	}
	return batch, who, false
}

// ride reports whether rows decode rows go with the chunks of prefill's prompts (see ride.go).
func (s *scheduler) ride(prefill []*seqRequest, rows int) bool {
	if s.skipped+1 >= rideEvery {
		return true
	}
	cost := s.costs.ride(rows)
	for _, r := range prefill {
		if !r.share.allows(cost) {
			return false
		}
	}
	return true
}

// account records a step evaluated in d, before its prompts that ended start decoding: its cost, and
// each prompt's share of the decode rows (satOut: they sat the step out). The share is charged at the
// estimate that includes this step, the better one, not at the one plan decided with (0 while a cost
// was unknown).
func (s *scheduler) account(batch []SeqEntry, who []*seqRequest, satOut bool, d time.Duration) {
	decode, prompt := 0, 0
	for k, r := range who {
		if r.decoding {
			decode++
		} else {
			prompt += len(batch[k].Tokens)
		}
	}
	s.costs.observe(decode, prompt, d, s.chunk)
	if satOut {
		s.skipped++
	} else {
		s.skipped = 0
	}
	if prompt == 0 {
		return
	}
	cost := s.costs.ride(decode)
	for _, r := range who {
		if !r.decoding {
			r.share.done++
			if decode > 0 {
				r.share.paid += cost
			}
		}
	}
}

// step evaluates one batch and hands its logits to the generations.
func (s *scheduler) step() {
	batch, who, satOut := s.plan()
	if len(batch) == 0 {
		if s.onWait != nil {
			s.onWait()
		}
		<-s.wake // every running sequence waits for its client to take its tokens
		return
	}
	if s.onStep != nil {
		s.onStep(batch)
	}
	ctx := s.base
	if len(who) == 1 {
		ctx = who[0].ctx // alone, a request's cancellation can stop the pass between layers
	}
	start := s.now()
	out, err := s.b.ForwardSeqs(ctx, batch)
	if !errors.Is(err, ErrKVFull) { // a full pool refuses the batch before evaluating any of it
		s.count(func(st *SchedulerStats) { st.Steps++ })
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrKVFull):
		if s.cache.evictOldest(s.b) {
			s.count(func(st *SchedulerStats) { st.Evictions++ })
			return // plan again with the room made
		}
		r := s.running[len(s.running)-1]
		s.end(r, r.g.res, fmt.Errorf("%w with %d sequences running: %v; retry later, or raise --kv-memory or lower --parallel",
			ErrKVFull, len(s.running), err))
		return
	case len(who) == 1 && who[0].ctx.Err() != nil:
		s.end(who[0], who[0].g.cancelled(), nil)
		return
	default:
		s.fail(err)
		return
	}
	s.account(batch, who, satOut, s.now().Sub(start))
	for k, r := range who {
		r.fed += len(batch[k].Tokens)
		if len(batch[k].Want) > 0 && !r.decoding {
			r.g.prefilled()
			r.decoding = true
		}
	}
	picks := pickAll(who, batch, out)
	for k, r := range who {
		if len(batch[k].Want) == 0 {
			continue // a prompt chunk: no token yet
		}
		if err := picks[k].err; err != nil {
			s.end(r, r.g.res, err)
			continue
		}
		if r.g.push(picks[k].id, r.fed) {
			s.end(r, r.g.finish(), nil)
			continue
		}
		r.next = picks[k].id
	}
}

// picked is a sequence's token after a step, or why it has none.
type picked struct {
	id  int32
	err error
}

// pickAll picks the next token of each sequence of a step that asked for one (Want), from its row of
// logits, the rows at once. A pick changes only its own generation's state (sampler, penalties, guide,
// log probabilities); what generations share (the tokenizer, the vocabulary, a grammar, a logit bias) it
// only reads. With the default sampling a row of a 128k vocabulary takes about a millisecond of CPU
// (BenchmarkSample/defaults): one row after another, a step of four would keep the device waiting four
// times that (BenchmarkSchedulerPicks).
func pickAll(who []*seqRequest, batch []SeqEntry, out [][][]float32) []picked {
	picks := make([]picked, len(who))
	pick := func(k int) {
		r := who[k]
		picks[k].id, picks[k].err = r.g.step.pick(out[k][0], r.g.history)
	}
	var rows []int
	for k := range who {
		if len(batch[k].Want) > 0 {
			rows = append(rows, k)
		}
	}
	if len(rows) < 2 {
		for _, k := range rows {
			pick(k) // no goroutine for a lone row
		}
		return picks
	}
	var wg sync.WaitGroup
	for _, k := range rows {
		wg.Go(func() { pick(k) })
	}
	wg.Wait()
	return picks
}

// fail ends every request with a backend error. After a lost backend the engine replaces it; the
// scheduler goes on with the new one if it holds sequences, and otherwise leaves the engine to run one
// generation at a time (gone).
func (s *scheduler) fail(err error) {
	lost := errors.Is(err, ErrBackendLost)
	if lost {
		s.e.mu.Lock()
		err = s.e.recoverFrom(err)
		b := s.e.backend
		s.e.mu.Unlock()
		s.cache = convCache{} // the sequences lived in the lost backend
		// Its successor's steps take their own time.
		s.costs, s.skipped = stepCosts{logits: s.costs.logits}, 0
		for _, r := range s.running {
			r.hasSeq = false
		}
		if sb, ok := b.(SeqBackend); ok {
			s.b, s.maxCtx = sb, sb.MaxContext()
			d := s.disk // it stays if the new backend reads its format
			if x, ok := sb.(KVExporter); ok && (d == nil || x.KVFormat() != d.format) {
				switch {
				case s.e.disk != nil && x.KVFormat() == s.e.disk.format:
					d = s.e.disk // the first backend's format again: the engine still holds its directory
				case s.e.openDisk != nil:
					d = s.e.openDisk(sb) // another backend (the CPU after the GPU): its format's directory
				}
			}
			if s.disk != d && s.disk != s.e.disk {
				s.disk.close() // a successor's directory, itself replaced (e.disk closes with the engine)
			}
			s.useDisk(d)
		} else {
			s.gone.Store(true)
		}
	}
	for _, r := range slices.Clone(s.running) {
		s.end(r, r.g.res, err)
	}
	if s.gone.Load() {
		for _, r := range s.waiting {
			r.done <- seqDone{res: r.g.res, err: err}
		}
		s.waiting = nil
	}
}

// end finishes a running request: its sequence goes to the conversation cache when it finished or was
// cancelled, and is freed when it failed. A cancelled sequence leaves the batch at once, but its
// evaluated positions (the prompt, or the part of it evaluated, and the answer so far) stay cached like
// a finished conversation's: a client that stopped an answer usually sends the conversation again,
// with the stopped answer saved (the UI's stop) or without it (a retry), and both start after what is
// cached. Its blocks are as free as any cached conversation's: evicted before a running sequence is
// refused.
func (s *scheduler) end(r *seqRequest, res Result, err error) {
	s.running = slices.DeleteFunc(s.running, func(x *seqRequest) bool { return x == r })
	s.waiting = slices.DeleteFunc(s.waiting, func(x *seqRequest) bool { return x == r })
	if r.hasSeq {
		if err == nil && r.fed > 0 {
			s.cache.add(s.b, r.seq, r.g.history[:r.fed], false)
		} else {
			s.b.FreeSeq(r.seq)
		}
		r.hasSeq = false
	}
	s.publish() // the stats show the end before the caller returns
	r.done <- seqDone{res: res, err: err}
}

func (s *scheduler) addHits(n int) {
	if n > 0 {
		s.count(func(st *SchedulerStats) { st.CacheHitTokens += int64(n) })
	}
}

// count updates the counters of the published stats (the scheduler's goroutine is their only writer).
func (s *scheduler) count(f func(*SchedulerStats)) {
	st := *s.stats.Load()
	f(&st)
	s.stats.Store(&st)
}

// publish records what runs for Stats.
func (s *scheduler) publish() {
	var st SchedulerStats
	if old := s.stats.Load(); old != nil {
		st.CacheHitTokens, st.Evictions, st.Steps, st.DiskLoads = old.CacheHitTokens, old.Evictions, old.Steps, old.DiskLoads
	}
	st.Parallel, st.Running, st.Waiting = s.parallel, len(s.running), len(s.waiting)
	for _, r := range s.running {
		st.Slots = append(st.Slots, SlotInfo{PromptTokens: len(r.prompt), CachedTokens: r.g.res.Timings.CachedTokens,
			Generated: len(r.g.res.Tokens), Prefilling: !r.decoding})
	}
	if !s.gone.Load() {
		st.KV = s.b.KV()
		st.CachedSeqs = len(s.cache.entries)
		st.CachedBlocks = s.b.BlocksOnlyIn(s.cache.seqs())
	}
	s.stats.Store(&st)
}

// aheadMax is how many of its tokens a generation may have made that its client has not taken (emitted)
// before its sequence sits out the decode steps (see scheduler). A running generation pushes one delta
// a token, so the outbox's pending deltas count them.
const aheadMax = 4

// outbox holds a request's deltas between the scheduler, which never waits for a client, and the
// request's goroutine, which emits them.
type outbox struct {
	mu     sync.Mutex
	items  []Delta
	held   int // deltas pushed and not yet emitted
	signal chan struct{}
}

func (o *outbox) push(d Delta) error {
	o.mu.Lock()
	o.items = append(o.items, d)
	o.held++
	o.mu.Unlock()
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return nil
}

func (o *outbox) take() []Delta {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.items
	o.items = nil
	return d
}

// emitted records that n deltas taken were emitted, and reports whether the sequence may decode again
// where it could not: its client took every token, or came back within aheadMax of them.
func (o *outbox) emitted(n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	was := o.held
	o.held -= n
	return n > 0 && (o.held == 0 || was >= aheadMax)
}

// pending is the number of deltas not emitted yet.
func (o *outbox) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held
}
