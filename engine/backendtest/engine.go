package backendtest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/internal/testutil"
)

// EngineTokens is n pseudo-random tokens of e's vocabulary, from seed, less its end-of-generation
// tokens.
func EngineTokens(e *engine.Engine, n int, seed uint64) []int32 {
	tok := e.Tokenizer()
	return slices.DeleteFunc(SeqTokens(tok.VocabSize(), n, seed), tok.IsEOG)
}

// BatchPrompts are the prompts of the batched-against-solo tests: five of 3 to 150 tokens, and one that
// shares its first 100 tokens with the third (a fork of a sequence still running).
func BatchPrompts(e *engine.Engine) [][]int32 {
	var prompts [][]int32
	for i, n := range []int{40, 3, 150, 70, 12} {
		prompts = append(prompts, EngineTokens(e, n, uint64(10+i)))
	}
	return append(prompts, append(slices.Clone(prompts[2][:100]), prompts[1]...))
}

// GenerateTogether starts a generation of every prompt at once on e (continuous batching on a
// SeqBackend) and returns each one's tokens.
func GenerateTogether(t testing.TB, e *engine.Engine, prompts [][]int32, p engine.GenParams) [][]int32 {
	t.Helper()
	type out struct {
		tokens []int32
		err    error
	}
	results := make([]chan out, len(prompts))
	for i, prompt := range prompts {
		results[i] = make(chan out, 1)
		go func() {
			r, err := e.Generate(context.Background(), prompt, p, false, nil)
			results[i] <- out{r.Tokens, err}
		}()
	}
	tokens := make([][]int32, len(prompts))
	for i := range prompts {
		r := <-results[i]
		if r.err != nil {
			t.Fatal(r.err)
		}
		tokens[i] = r.tokens
	}
	return tokens
}

// Streams is the aggregate generation speed of 1 and 4 greedy streams of 128 tokens after 32-token
// prompts, generated together by e (loaded with --parallel 4): continuous batching reads each weight
// once per step for every stream. Each stream takes its tokens as they come, as a server's streaming
// client does. Besides tokens per second of wall time, prompts included (tok/s), it reports the tokens
// per second while every stream decodes (decode-tok/s: from the last stream's first token to the first
// stream's last, prompts left out, as llama-batched-bench's S_TG), the process's CPU time per generated
// token (cpu-ms/tok, prompts included), which other load on a shared machine disturbs less, and the
// scheduler's steps a run (steps/op: 128 to 131 when every step carries a row of every running stream,
// more than 128 when the prompts arrive in different steps). -count repeats each sub-benchmark in a
// row, all the 1s before the 4s, and every run leaves its conversations in the cache: for interleaved
// samples, run each count in a process of its own, alternating.
func Streams(b *testing.B, e *engine.Engine) {
	const tokens = 128
	// The end-of-generation tokens are banned, so that every stream runs its 128 tokens (random weights
	// end some streams early otherwise, and the steps would decode fewer sequences than the benchmark
	// says).
	params := endless(e, tokens)
	round := uint64(0)
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprint(streams), func(b *testing.B) {
			generated, decoded := 0, 0
			var decodeTime time.Duration
			cpu0 := testutil.ProcessCPU()
			st0, _ := e.SchedulerStats()
			for b.Loop() {
				var wg sync.WaitGroup
				counts := make([]int, streams)
				stamps := make([][]time.Time, streams)
				for s := range streams {
					round++
					prompt := EngineTokens(e, 32, round) // no cache hits
					wg.Go(func() {
						r, err := e.Generate(context.Background(), prompt, params, false, func(d engine.Delta) error {
							if d.Token >= 0 {
								stamps[s] = append(stamps[s], time.Now())
							}
							return nil
						})
						if err != nil {
							b.Error(err)
						}
						counts[s] = len(r.Tokens)
					})
				}
				wg.Wait()
				n, d := decodeSpan(stamps)
				decoded, decodeTime = decoded+n, decodeTime+d
				for _, n := range counts {
					if n != tokens {
						b.Fatalf("a stream generated %d tokens, want %d", n, tokens)
					}
					generated += n
				}
			}
			b.ReportMetric(float64(generated)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(decoded)/decodeTime.Seconds(), "decode-tok/s")
			b.ReportMetric((testutil.ProcessCPU()-cpu0)*1000/float64(generated), "cpu-ms/tok")
			st, _ := e.SchedulerStats()
			b.ReportMetric(float64(st.Steps-st0.Steps)/float64(b.N), "steps/op")
		})
	}
}

// decodeSpan takes the times at which each stream got its tokens and returns how many tokens came, and
// in what time, while every stream decoded: after the last stream's first token, up to the first
// stream's last. Each stream's tokens count up to its first one at or after that end, the token of the
// same step (the streams' stamps of one step differ by the moments their goroutines ran).
func decodeSpan(stamps [][]time.Time) (int, time.Duration) {
	var from, to time.Time
	for i, st := range stamps {
		if len(st) == 0 {
			return 0, 0
		}
		if i == 0 || st[0].After(from) {
			from = st[0]
		}
		if i == 0 || st[len(st)-1].Before(to) {
			to = st[len(st)-1]
		}
	}
	if !to.After(from) {
		return 0, 0 // a stream ended before another began
	}
	n := 0
	for _, st := range stamps {
		for _, t := range st {
			if t.After(from) {
				n++
			}
			if !t.Before(to) {
				break
			}
		}
	}
	return n, to.Sub(from)
}

// endless is greedy decoding of up to n tokens with the end-of-generation tokens banned, so that a stream
// runs its n tokens (random weights end some streams early otherwise).
func endless(e *engine.Engine, n int) engine.GenParams {
	p := engine.GenParams{SamplerParams: engine.SamplerParams{Temperature: 0, LogitBias: map[int32]float32{}}, MaxTokens: n}
	for id := range int32(e.Tokenizer().VocabSize()) {
		if e.Tokenizer().IsEOG(id) {
			p.LogitBias[id] = -1e9
		}
	}
	return p
}

// Arrival measures issue #15's goal for a request that arrives while others generate: its first token
// within its own prefill time plus 2 decode steps. Each iteration times, from the call to the first
// token's delta, a prompt of promptLen tokens on the idle engine (solo-ms), then starts 3 greedy
// streams (32-token prompts), times their decode steps once all three decode (step-ms: a stream's
// tokens apart), and submits another prompt of the same length (ttft-ms) before cancelling the streams.
// A request arriving just after a step began waits for all of it, one arriving at its end for none of
// it: the iterations submit at phases spread evenly over the step (a golden-ratio sequence after a
// stream's token, which comes as the next step begins), as requests arriving at random times would.
// Both prompts are fresh random tokens, so the conversation cache serves neither (the benchmark checks
// it): same length, same cost. steps is (ttft − solo) / step of each iteration, which the goal wants
// ≤ 2, and cpu-steps the same of the process's CPU time; stream-gap-ms is the longest the first stream
// went without a token from the arrival to its first token, what the streams pay. Each figure is the
// median over the iterations (the solo and arrival runs of one iteration are neighbours in time, so the
// per-iteration steps suffer least from other load on the machine); the min- figures are the fastest
// of each, and min-steps their (ttft − solo) / step. It runs prompts of 512 and 1,536 tokens (2 and 6
// chunks) as sub-benchmarks, each on an engine from load, which must run --parallel 4 or more with the
// context it is asked for.
func Arrival(b *testing.B, load func(b *testing.B, context int) *engine.Engine) {
	for _, n := range []int{512, 1536} {
		b.Run(fmt.Sprintf("prompt=%d", n), func(b *testing.B) { arrival(b, load(b, n+512), n) })
	}
}

func arrival(b *testing.B, e *engine.Engine, promptLen int) {
	const streams, stepsTimed = 3, 4
	// firstToken generates prompt's first token and returns the time from the call to its delta, the
	// process's CPU time meanwhile (seconds), and the scheduler's steps.
	firstToken := func(prompt []int32) (time.Duration, float64, float64) {
		st0, _ := e.SchedulerStats()
		r, first, cpu := oneToken(b, e, prompt)
		switch {
		case first == 0:
			b.Fatal("no token's delta")
		case r.Timings.CachedTokens > 0:
			b.Fatalf("the cache served %d of the prompt's %d tokens: the figure would not be a prefill", r.Timings.CachedTokens, len(prompt))
		}
		st, _ := e.SchedulerStats()
		return first, cpu, float64(st.Steps - st0.Steps)
	}
	seed := uint64(1000)
	var solo, ttft, step, steps, cpuSteps, gap []float64
	var soloSteps, ttftSteps float64
	for b.Loop() {
		seed += 10
		d, soloCPU, n := firstToken(EngineTokens(e, promptLen, seed))
		solo, soloSteps = append(solo, ms(d)), soloSteps+n

		// The streams: each says when it decodes; the first one's token times give the step.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		decoding := make([]chan struct{}, streams)
		clock := tokenClock{ended: make(chan struct{})}
		for s := range streams {
			decoding[s] = make(chan struct{})
			prompt := EngineTokens(e, 32, seed+1+uint64(s))
			wg.Go(func() {
				n := 0
				r, err := e.Generate(ctx, prompt, endless(e, 1024-32-1), false, func(engine.Delta) error {
					if s == 0 {
						clock.tick()
					}
					if n++; n == 1 {
						close(decoding[s])
					}
					return nil
				})
				if err != nil {
					b.Error(err)
				} else if r.FinishReason != engine.FinishCancelled {
					b.Errorf("a stream ended (%s after %d tokens) before the request that arrived got its first token", r.FinishReason, len(r.Tokens))
				}
				if n == 0 {
					close(decoding[s]) // nothing will come: do not wait for it
				}
				if s == 0 {
					close(clock.ended)
				}
			})
		}
		for _, c := range decoding {
			<-c
		}
		d, stepCPU, ok := clock.step(stepsTimed) // all three decode
		if !ok || b.Failed() {
			cancel()
			wg.Wait()
			b.FailNow()
		}
		step = append(step, ms(d))
		phase := math.Mod(float64(len(step))*0.6180339887, 1)
		time.Sleep(time.Duration(phase * float64(d)))

		arrived := time.Now()
		d, ttftCPU, n := firstToken(EngineTokens(e, promptLen, seed+9))
		ttft, ttftSteps = append(ttft, ms(d)), ttftSteps+n
		gap = append(gap, ms(clock.longestGap(arrived, arrived.Add(d))))
		cancel()
		wg.Wait()
		i := len(ttft) - 1
		steps = append(steps, (ttft[i]-solo[i])/step[i])
		if stepCPU > 0 {
			cpuSteps = append(cpuSteps, (ttftCPU-soloCPU)/stepCPU)
		}
	}
	b.ReportMetric(median(solo), "solo-ms")
	b.ReportMetric(median(ttft), "ttft-ms")
	b.ReportMetric(median(step), "step-ms")
	b.ReportMetric(median(steps), "steps")
	b.ReportMetric(median(gap), "stream-gap-ms")
	// steps in CPU time, where the process's threads keep the cores busy (the CPU backend, lavapipe):
	// other load on a shared machine lengthens the wall clock more than the work.
	if len(cpuSteps) > 0 {
		b.ReportMetric(median(cpuSteps), "cpu-steps")
	}
	// The scheduler's steps (batches) until the first token, alone and beside the streams (whose step
	// in flight at the arrival counts): each step reads all the weights once, so their difference is
	// what the wall-clock figures measure, free of the load on the machine.
	b.ReportMetric(soloSteps/float64(b.N), "solo-batches")
	b.ReportMetric(ttftSteps/float64(b.N), "ttft-batches")
	// The fastest of each, the least disturbed by other load.
	b.ReportMetric(slices.Min(solo), "min-solo-ms")
	b.ReportMetric(slices.Min(ttft), "min-ttft-ms")
	b.ReportMetric(slices.Min(step), "min-step-ms")
	b.ReportMetric((slices.Min(ttft)-slices.Min(solo))/slices.Min(step), "min-steps")
}

func median(x []float64) float64 {
	x = slices.Sorted(slices.Values(x))
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}

// tokenClock records when a stream's tokens come, and the process's CPU time then.
type tokenClock struct {
	mu      sync.Mutex
	times   []time.Time
	cpu     []float64
	want    int // reached is closed when times has want entries (0: nobody waits)
	reached chan struct{}
	ended   chan struct{} // closed when the stream ends
}

func (c *tokenClock) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.times, c.cpu = append(c.times, time.Now()), append(c.cpu, testutil.ProcessCPU())
	if c.want > 0 && len(c.times) == c.want {
		close(c.reached)
	}
}

// longestGap is the longest the stream went without a token from from to to.
func (c *tokenClock) longestGap(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, t := range c.times {
		if t.Before(from) || t.After(to) {
			continue
		}
		gap, last = max(gap, t.Sub(last)), t
	}
	return max(gap, to.Sub(last))
}

// step waits for n more tokens after at least one and returns the mean time between them and the CPU
// time the process used meanwhile per token (seconds), or false when the stream ended first.
func (c *tokenClock) step(n int) (time.Duration, float64, bool) {
	c.mu.Lock()
	from := len(c.times) - 1
	if from < 0 {
		c.mu.Unlock()
		return 0, 0, false // it ended before its first token
	}
	c.want, c.reached = from+1+n, make(chan struct{})
	reached := c.reached
	c.mu.Unlock()
	select {
	case <-reached:
	case <-c.ended:
		return 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.times[from+n].Sub(c.times[from]) / time.Duration(n), (c.cpu[from+n] - c.cpu[from]) / float64(n), true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
