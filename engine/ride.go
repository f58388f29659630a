package engine

import (
	"time"

	"smolchat/model"
)

// Whether the running streams' decode rows ride along with a prompt chunk.
//
// A step that evaluates a prompt chunk can carry the decode rows of the sequences that generate: they
// get a token per chunk instead of waiting for the whole prefill. What those rows cost the prompt
// depends on the device. Where a chunk is compute-bound, as on a CPU, a decode row in it costs about as
// much as a prompt row, and its logits read the whole output projection, which a chunk does not (it
// wants its last row's at most): 3 decode rows beside a 256-token chunk of the 3B model cost about half
// the streams' own decode step on a 2-core CPU (which reads the weights once for the arithmetic of about
// 7 prompt rows). A prompt of n chunks carrying them in every chunk paid about n/2 steps more than
// alone: 2.3–3.6 steps for a 768-token prompt on the 3B model cut to 4 layers (BENCHMARKS, session 16),
// against issue #15's goal of its first token within its prefill time and 2 decode steps. Where a
// chunk's rows are cheap beside a decode step (a GPU's tiled products should be; not measured yet),
// only their logits cost much.
//
// So the scheduler measures the two costs (stepCosts) and lets the rows ride while the prompt's share
// of their cost stays within rideBudget decode steps over its whole prefill, spread evenly over its
// chunks: chunk i of n may bring its share to rideBudget·i/n. On the 3B model and a 2-core CPU (0.55–0.58
// of a step a ride, as estimated; BENCHMARKS, session 17) a 512-token prompt rides both its chunks and a
// 3,000-token one 2 of its 12; with cheap rows (0.15) every chunk of a prompt of up to 10 does. However
// long the prompt, the streams ride at least every rideEvery chunks.

// rideBudget is the decode steps a prompt may pay in all for the decode rows riding with its chunks. With
// the half step it waits on average for the one in flight when it arrives, its first token comes within
// its prefill time and 2 decode steps (issue #15; BenchmarkArrival times arrivals spread over the step).
const rideBudget = 1.5

// rideEvery bounds the chunks in a row that go without the decode rows: the streams get a token at least
// every rideEvery chunks (2,048 prompt tokens, the batch llama.cpp's server evaluates per step before it
// decodes its running slots again), whichever prompts those chunks are of. So from 24 chunks on (6,144
// tokens; from 17 when the streams had already sat out 7 chunks of an earlier prompt) a prompt of the
// 3B model on a 2-core CPU pays more than rideBudget: the streams do not stall for minutes.
const rideEvery = 8

// stepCosts are running averages of what the scheduler's steps take on its backend: a step of decode
// rows only, and a row of a step with a prompt chunk; logits is logitsShare of the model.
type stepCosts struct {
	decode, row   time.Duration
	decodes, rows int // samples of each
	logits        float64
}

// observe adds a step of decode decode rows and prompt prompt rows evaluated in d; chunk is the
// scheduler's prompt tokens a step.
func (c *stepCosts) observe(decode, prompt int, d time.Duration, chunk int) {
	switch {
	case d <= 0:
		// a clock that does not move (tests)
	case prompt == 0:
		c.decode = average(c.decode, d, &c.decodes)
	case 2*prompt >= chunk:
		// Only long chunks: where a step is bound by reading the weights (a GPU, a short chunk), its
		// time over a few rows is not what a row adds to a chunk.
		c.row = average(c.row, d/time.Duration(decode+prompt), &c.rows)
	}
}

// average adds sample d to the running average avg of n samples. The second sample replaces the
// first, which may have paid for a cold start (the weights' pages read in, kernels compiled); then
// each new one weighs a quarter: a few steps follow a change of load, one odd step moves it little.
func average(avg, d time.Duration, n *int) time.Duration {
	*n++
	if *n <= 2 {
		return d
	}
	return avg + (d-avg)/4
}

// ride is what rows decode rows add to a step with a prompt chunk, in decode steps: their arithmetic, a
// prompt row's each, and their logits, which read the whole output projection, as a decode step does,
// where a chunk wants at most its last row's. 0 while either cost is unknown.
func (c *stepCosts) ride(rows int) float64 {
	if c.decode == 0 || c.row == 0 || rows == 0 {
		return 0
	}
	return float64(rows)*float64(c.row)/float64(c.decode) + c.logits
}

// logitsShare is the output projection's share of the weights a decode step reads: 0.11 for
// SmolLM3-3B at Q4_K_M (its 128,256-token vocabulary in Q6_K), 0.53 for it cut to 4 layers.
func logitsShare(m *model.Model) float64 {
	var all uint64
	for _, t := range m.File.Tensors {
		all += t.Size
	}
	if !m.Config.TiedOutput {
		all -= uint64(len(m.Weights.Embed.Data)) // the embeddings are looked up, not read whole
	}
	if all == 0 {
		return 0
	}
	return float64(len(m.Weights.Output.Data)) / float64(all)
}

// prefillShare is a prompt's account of the decode rows that rode with its chunks.
type prefillShare struct {
	chunks int     // the chunks its prefill takes
	done   int     // chunks evaluated
	paid   float64 // decode steps paid for rides
}

// allows reports whether the prompt's next chunk may carry decode rows that cost it cost steps.
func (p *prefillShare) allows(cost float64) bool {
	return p.paid+cost <= rideBudget*float64(p.done+1)/float64(max(p.chunks, p.done+1))
}
