package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// The profiler times every step of the forward pass, several times, and the median counts. Where the
// adapter has timestamp-query, all the steps run in one submit as a forward pass runs them, each in a
// compute pass of its own whose start and end the device stamps: the time of a step is what it costs in
// the pass, without a submit's fixed overhead (a pass boundary is a barrier, as between dependent
// dispatches anyway). Elsewhere, or with ProfileOptions.Isolated, each step is recorded into its own
// command buffer, submitted and waited for: that works on any adapter, and each time includes one
// submit's fixed overhead, which a forward pass pays once.

// ProfileOptions configure Profile.
type ProfileOptions struct {
	// Depth is the number of positions cached before the measured steps (llama-bench's -d): attention's
	// cost grows with it.
	Depth int
	// Prefill is the number of tokens of the measured prefill step, at most the backend's batch; 0
	// means the batch.
	Prefill int
	// Seqs is the number of sequences of the measured decode step, one token each, as that many
	// streams decoding together (continuous batching) evaluate them; 0 means 1. The decode figures are
	// then per token of that step.
	Seqs int
	// Reps is the number of timed submits per step; the median counts. 0 means 5.
	Reps int
	// Isolated times each step in a submit of its own even where timestamp queries exist.
	Isolated bool
}

// Profile is the time of each step of one decode token and of one prefill step, per token.
type Profile struct {
	Method         string       `json:"method"`
	Depth          int          `json:"depth"`
	DecodeSeqs     int          `json:"decode_sequences"`
	PrefillTokens  int          `json:"prefill_tokens"`
	Reps           int          `json:"reps"`
	DecodeSeconds  float64      `json:"decode_seconds_per_token"`  // sum over the rows
	PrefillSeconds float64      `json:"prefill_seconds_per_token"` // sum over the rows
	Rows           []ProfileRow `json:"rows"`
}

// ProfileRow is one step name and shape, summed over the layers that run it.
type ProfileRow struct {
	Step          string     `json:"step"`
	Shape         string     `json:"shape"`
	KernelDecode  string     `json:"kernel_decode"`
	KernelPrefill string     `json:"kernel_prefill"`
	Count         int        `json:"count"` // step instances (layers) in the row
	Decode        PhaseStats `json:"decode"`
	Prefill       PhaseStats `json:"prefill"`
}

// PhaseStats is a row's time per token in one phase, its rates and its share of the phase's total.
type PhaseStats struct {
	Seconds float64 `json:"seconds_per_token"`
	GBps    float64 `json:"gb_per_second"`
	GFlops  float64 `json:"gflop_per_second"`
	Share   float64 `json:"share"` // of the phase's total, 0..1
	bytes   float64
	flops   float64
}

// profileSteps are the steps the profiler times: the forward pass's, and the output projection of the
// rows whose logits a step returns (head.rows, set per phase).
func (b *backend) profileSteps(head *headOp) []step {
	return append(b.Steps(), step{Layer: -1, Name: "output projection (logits)", op: head})
}

// headOp records the output projection for rows rows: one for a prompt step, a row per sequence for a
// decode step.
type headOp struct {
	m    *matMulOp
	rows int
}

func (h *headOp) Record(e *encoder, _ int) { h.m.Record(e, h.rows) }

func (h *headOp) describe(_, pos int) opInfo { return h.m.describe(h.rows, pos) }

// Profile fills the cache with opts.Depth positions of token 0 and times each step
// of a decode token and of a prefill step at that depth. It leaves the cache at Len() == opts.Depth, its
// contents those of the filler; the steps' own writes land beyond it.
func (b *backend) Profile(ctx context.Context, opts ProfileOptions) (*Profile, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	reps := opts.Reps
	if reps == 0 {
		reps = 5
	}
	prefill := opts.Prefill
	if prefill == 0 {
		prefill = b.batch
	}
	seqs := max(opts.Seqs, 1)
	switch {
	case reps < 0 || opts.Depth < 0 || prefill < 0 || opts.Seqs < 0:
		return nil, fmt.Errorf("gpu profile: depth %d, prefill %d, sequences %d and reps %d must not be negative", opts.Depth, prefill, opts.Seqs, reps)
	case seqs > b.maxSeqs || seqs > b.batch:
		return nil, fmt.Errorf("gpu profile: a decode step of %d sequences exceeds the %d a step holds: load with a larger --parallel", seqs, min(b.maxSeqs, b.batch))
	case prefill > b.batch:
		return nil, fmt.Errorf("gpu profile: a prefill step of %d tokens exceeds the batch of %d: profile at most %d", prefill, b.batch, b.batch)
	case opts.Depth+prefill > b.maxCtx:
		return nil, fmt.Errorf("gpu profile: depth %d + %d prefill tokens exceed the context of %d: load with a larger context", opts.Depth, prefill, b.maxCtx)
	}
	b.kv.Truncate(&b.own, 0)
	if opts.Depth > 0 {
		if err := b.forwardOwn(ctx, make([]int32, opts.Depth), nil, nil); err != nil {
			return nil, err
		}
	}
	// The steps' own rows land past the filler, in blocks Forward's sequence takes for them (its length
	// stays opts.Depth; nothing else shares its blocks, so no copy on write).
	// A decode step's sequences all read the filler's blocks (and write their row to the same place).
	if need := b.kv.GrowCost(&b.own, prefill); need > b.kv.Available() {
		return nil, b.kv.ErrFull("gpu backend", need)
	} else if err := b.reserveKV(need); err != nil {
		return nil, err
	}
	b.kv.Grow(&b.own, prefill, func(int32, int32) {})
	method, timeSteps := "isolated submits (each step submitted alone and waited for; median)", b.timeSteps
	if b.d.timestamps && !opts.Isolated {
		method, timeSteps = "timestamp queries (every step in one submit, a compute pass each; median)", b.timeStepsStamped
	}
	p := &Profile{Method: method, Depth: opts.Depth, DecodeSeqs: seqs, PrefillTokens: prefill, Reps: reps}
	head := &headOp{m: b.lmHead}
	steps := b.profileSteps(head)
	rows := map[string]*ProfileRow{}
	var order []string
	for _, phase := range []struct {
		T      int
		decode bool
	}{{seqs, true}, {prefill, false}} {
		if phase.T == 0 {
			continue
		}
		// Every step reads the step's inputs at the profiled depth.
		spans := []seqSpan{{blocks: b.own.Blocks, n: phase.T, pos0: opts.Depth}}
		head.rows = 1
		if phase.decode {
			spans, head.rows = nil, seqs
			for i := range seqs {
				spans = append(spans, seqSpan{blocks: b.own.Blocks, row0: i, n: 1, pos0: opts.Depth})
			}
		}
		if err := b.writeInputs(make([]int32, phase.T), spans); err != nil {
			return nil, err
		}
		if err := b.d.SetStep(phase.T, opts.Depth); err != nil {
			return nil, err
		}
		times, err := timeSteps(ctx, steps, phase.T, reps)
		if err != nil {
			return nil, err
		}
		for i, s := range steps {
			info := s.op.describe(phase.T, opts.Depth)
			key := s.Name + "\x00" + info.Shape
			r, ok := rows[key]
			if !ok {
				r = &ProfileRow{Step: s.Name, Shape: info.Shape}
				rows[key] = r
				order = append(order, key)
			}
			ph := &r.Prefill
			perTok := times[i] / float64(phase.T)
			if phase.decode {
				ph = &r.Decode
				r.Count++
				r.KernelDecode = info.Kernel
				p.DecodeSeconds += perTok
			} else {
				r.KernelPrefill = info.Kernel
				p.PrefillSeconds += perTok
			}
			ph.Seconds += perTok
			ph.bytes += info.Bytes / float64(phase.T)
			ph.flops += info.Flops / float64(phase.T)
		}
	}
	for _, k := range order {
		r := rows[k]
		r.Decode.finish(p.DecodeSeconds)
		r.Prefill.finish(p.PrefillSeconds)
		p.Rows = append(p.Rows, *r)
	}
	return p, nil
}

func (s *PhaseStats) finish(total float64) {
	if s.Seconds <= 0 {
		return
	}
	s.GBps = s.bytes / s.Seconds / 1e9
	s.GFlops = s.flops / s.Seconds / 1e9
	if total > 0 {
		s.Share = s.Seconds / total
	}
}

// timeSteps returns the median seconds of each step run alone for T tokens, the step's inputs written.
func (b *backend) timeSteps(ctx context.Context, steps []step, T, reps int) ([]float64, error) {
	out := make([]float64, len(steps))
	runs := make([]float64, reps)
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// One untimed run first: drivers may finish building a pipeline on its first use.
		for r := -1; r < reps; r++ {
			sec, err := b.timeOne(s, T)
			if err != nil {
				return nil, fmt.Errorf("gpu profile: %s: %w", s.Name, err)
			}
			if r >= 0 {
				runs[r] = sec
			}
		}
		out[i] = medianOf(runs)
	}
	return out, nil
}

// timeStepsStamped is timeSteps with timestamp queries: each repetition records every step, one
// compute pass each, into one submit.
func (b *backend) timeStepsStamped(ctx context.Context, steps []step, T, reps int) ([]float64, error) {
	d := b.d
	n := uint32(2 * len(steps))
	var qs *wgpu.QuerySet
	if err := d.wrap("creating timestamp queries", func() error {
		var err error
		qs, err = d.dev.TryCreateQuerySet(&wgpu.QuerySetDescriptor{Label: "profile", Type: wgpu.QueryTypeTimestamp, Count: n})
		return err
	}); err != nil {
		return nil, err
	}
	defer qs.Release()
	resolved, err := d.newBuffer("profile timestamps", uint64(8*n), wgpu.BufferUsageQueryResolve|wgpu.BufferUsageCopySrc)
	if err != nil {
		return nil, err
	}
	defer d.free(resolved)
	period := float64(d.queue.GetTimestampPeriod()) // nanoseconds per tick
	runs := make([][]float64, len(steps))
	raw := make([]byte, 8*n)
	// One untimed repetition first: drivers may finish building a pipeline on its first use.
	for r := -1; r < reps; r++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := d.NewEncoder("profile")
		if err != nil {
			return nil, err
		}
		for i, s := range steps {
			before := e.Dispatches()
			e.timePass(qs, uint32(2*i))
			s.op.Record(e, T)
			if e.Dispatches() == before {
				return nil, fmt.Errorf("gpu profile: %s records no work for %d tokens", s.Name, T)
			}
			e.endPass()
		}
		e.resolveQueries(qs, n, resolved)
		e.ReadBack(resolved, 0, raw)
		if err := e.Submit(); err != nil {
			return nil, fmt.Errorf("gpu profile: %w", err)
		}
		if r < 0 {
			continue
		}
		for i := range steps {
			begin, end := binary.LittleEndian.Uint64(raw[16*i:]), binary.LittleEndian.Uint64(raw[16*i+8:])
			runs[i] = append(runs[i], float64(end-begin)*period*1e-9)
			if end < begin {
				runs[i][len(runs[i])-1] = 0 // a wrapped or reordered counter: no information
			}
		}
	}
	out := make([]float64, len(steps))
	for i, rs := range runs {
		out[i] = medianOf(rs)
	}
	return out, nil
}

// medianOf is the median of x (sorted in place).
func medianOf(x []float64) float64 {
	slices.Sort(x)
	if len(x)%2 == 1 {
		return x[len(x)/2]
	}
	return (x[len(x)/2-1] + x[len(x)/2]) / 2
}

// timeOne records s alone, submits it and waits for the device.
func (b *backend) timeOne(s step, T int) (float64, error) {
	e, err := b.d.NewEncoder("profile " + s.Name)
	if err != nil {
		return 0, err
	}
	s.op.Record(e, T)
	start := time.Now()
	if err := e.Submit(); err != nil {
		return 0, err
	}
	if err := b.d.Wait(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// Batch is the most tokens one submit evaluates, and so the longest prefill step Profile times.
func (b *backend) Batch() int { return b.batch }
