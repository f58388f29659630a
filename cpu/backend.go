// Package cpu runs the transformer on the CPU: the reference the GPU backend is checked against and the
// fallback on machines without a usable GPU.
//
// The forward pass (forward.go) reads top to bottom like llama2.c's: embedding, then per layer RMSNorm,
// Q/K/V, QK-norm (Qwen3), RoPE (angles from model.Config.RopeAngles), attention over the KV cache,
// output projection, RMSNorm, SwiGLU feed-forward, and at the end the final norm and the vocabulary
// projection for the rows the caller wants.
//
// Weights stay where the model file is mapped; only the small F32 norm vectors are decoded. Matrix
// products quantize the activations to the format the weight type's integer dot product expects (Q8_K
// for K-quants, Q8_0 for Q8_0/Q4_0), as llama.cpp does, and run on a persistent pool of worker threads.
// A prompt is processed as a batch: each weight row is read once for all its tokens. The KV cache holds
// half floats, like llama.cpp's. Options.Numerics can add the rounding of llama.cpp's flash attention
// (Llama), or take the roundings away to compute in float32 as the GPU backend does (Exact).
package cpu

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"smolchat/cpu/kernels"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"

	"smolchat/engine"
	"smolchat/internal/kvblock"
	"smolchat/model"
	"smolchat/model/quant"
)

// maxBatch is the most tokens one pass through the layers handles; a longer Forward runs in batches of
// this size. Each batch reads (and unpacks) every weight row once for all its tokens, so a larger batch
// costs less per token, and a batch of a few rows costs about as much as a decode step's layers. The
// engine's steps (a prompt chunk of 256 tokens and a decode row per running sequence) fit in one: with
// 256 here, a chunk and three decode rows went as 256 + 3 rows, 17 ms more than the chunk alone against
// 9 ms as one pass (the 3B-shaped file cut to 4 layers, 2 threads, medians of 16; a decode step of
// three rows 18 ms), which a prompt arriving beside running streams paid with each chunk
// (BenchmarkArrival). The activations stay small (about 36 MB for such a step of a 3B model) and grow
// only as large as the largest batch seen (allocScratch).
const maxBatch = 512

// Options configure a Backend.
type Options struct {
	// Threads is the number of threads the forward pass uses; 0 means one per CPU.
	Threads int
	// Context is the number of positions the KV cache can hold; 0 means the model's trained context.
	// Memory for the cache is allocated as positions are used, not up front.
	Context int
	// Numerics chooses where the arithmetic rounds (Fast by default).
	Numerics Numerics
	// KVMemory is the budget of the KV pool in bytes, shared by every sequence; 0 means
	// engine.DefaultKVMemory for Parallel sequences. It must hold at least Context positions. Blocks are
	// allocated as they are first used, not up front.
	KVMemory int64
	// Parallel is how many sequences the engine runs together (0 = engine.DefaultParallel), for
	// KVMemory's default.
	Parallel int
}

// Numerics is how a Backend rounds. docs/ARCHITECTURE.md ("Numerics") compares the modes.
type Numerics int

const (
	// Fast quantizes activations to 8 bits for the matrix products and rounds the attention query to
	// half, as llama.cpp's CPU backend does; scores, softmax and the weighted sum of values are float32.
	Fast Numerics = iota
	// Llama also keeps the weighted sum of values in half precision, rounded after every position, as
	// llama.cpp's CPU flash attention does, to reproduce its logits as closely as possible (the
	// conformance tests). Its attention takes about 2.6 times as long per cached position as Fast's
	// (BenchmarkAttentionDecode).
	Llama
	// Exact computes in float32 where llama.cpp rounds: the activations are not quantized (each weight
	// row is dequantized instead) and the query is not rounded. It is ten to twenty-five times slower
	// (synthetic smollm3-tiny, 2 threads: pp64 847 against 8738 tok/s, tg 21 against 546); it exists to
	// check the GPU backend, which computes that way, against this one.
	Exact
)

// ParseNumerics reads "fast" (or ""), "llama" or "exact".
func ParseNumerics(s string) (Numerics, error) {
	switch s {
	case "", "fast":
		return Fast, nil
	case "llama":
		return Llama, nil
	case "exact":
		return Exact, nil
	}
	return Fast, fmt.Errorf("cpu backend: numerics %q: want fast, llama or exact", s)
}

// String is the name ParseNumerics reads.
func (n Numerics) String() string {
	switch n {
	case Llama:
		return "llama"
	case Exact:
		return "exact"
	}
	return "fast"
}

// Backend is the CPU implementation of engine.Backend and engine.SeqBackend. Its methods may be called
// from several goroutines; calls are serialized.
type Backend struct {
	mu      sync.Mutex
	cfg     model.Config
	threads int
	maxCtx  int
	num     Numerics
	pool    *pool

	embed   model.Tensor
	outNorm []float32
	output  matrix
	layers  []layer

	kv           kvPool
	kvblock.Seqs       // the sequences of NewSeq and Fork, in kv
	own          kvSeq // the sequence of Forward, Len and Truncate
	closed       bool
	frees        []func() // release the interleaved weights (allocWeights)

	s scratch
}

// layer is one transformer block's weights in computable form.
type layer struct {
	attnNorm, ffnNorm []float32
	q, k, v, o        matrix
	gate, up, down    matrix
	qNorm, kNorm      []float32 // QK-norm gains (c.QKNorm)
	rope              bool
}

// scratch holds the activations of one batch of up to maxBatch tokens, grown as needed (allocScratch).
type scratch struct {
	x       []float32 // residual stream, batch × Dim
	xn      []float32 // normed input of a sub-layer, batch × Dim
	q, k, v []float32 // batch × QDim, batch × KVDim, batch × KVDim
	att     []float32 // attention output, batch × QDim
	gate    []float32 // batch × FF
	up      []float32 // batch × FF
	tmp     []float32 // sub-layer output before the residual add, batch × Dim
	rope    []ropeTable
	attn    []attnScratch     // per worker
	mm      []kernels.Scratch // per worker: repacked weights of the multi-row products
	spans   spans             // the rows of the current matrix product, handed out to the workers
	encX    encoded           // xn, encoded for the Q/K/V and gate/up products
	encAtt  encoded           // att, for the output projection
	encFF   encoded           // gate, for the down projection
}

// New prepares m for the CPU. It checks every weight's type against the dot products available and
// starts the worker threads; Close stops them.
func New(m *model.Model, opts Options) (*Backend, error) {
	c := m.Config
	threads := opts.Threads
	if threads < 0 {
		return nil, fmt.Errorf("cpu backend: threads must not be negative, got %d", threads)
	}
	if threads == 0 {
		threads = defaultThreads()
	}
	maxCtx := opts.Context
	switch {
	case maxCtx < 0:
		return nil, fmt.Errorf("cpu backend: context must not be negative, got %d", maxCtx)
	case maxCtx == 0:
		maxCtx = c.Context
	case maxCtx > c.Context:
		return nil, fmt.Errorf("cpu backend: context %d exceeds the model's trained context of %d", maxCtx, c.Context)
	}
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("cpu backend: %w", err)
	}
	if opts.Numerics < Fast || opts.Numerics > Exact {
		return nil, fmt.Errorf("cpu backend: unknown numerics %d", opts.Numerics)
	}
	b := &Backend{cfg: c, threads: threads, maxCtx: maxCtx, num: opts.Numerics, embed: m.Weights.Embed}
	if !quant.Supported(b.embed.Type) {
		return nil, fmt.Errorf("cpu backend: tensor %s has unsupported type %s", b.embed.Name, b.embed.Type)
	}
	var err error
	if b.outNorm, err = f32Vector(m.Weights.OutputNorm, c.Dim); err != nil {
		return nil, err
	}
	if b.output, err = newMatrix(m.Weights.Output); err != nil {
		return nil, fmt.Errorf("cpu backend: %w", err)
	}
	b.layers = make([]layer, c.Layers)
	for i, w := range m.Weights.Layers {
		L := &b.layers[i]
		L.rope = !c.NoRope[i]
		if L.attnNorm, err = f32Vector(w.AttnNorm, c.Dim); err != nil {
			return nil, err
		}
		if L.ffnNorm, err = f32Vector(w.FFNNorm, c.Dim); err != nil {
			return nil, err
		}
		if c.QKNorm {
			if L.qNorm, err = f32Vector(w.QNorm, c.HeadDim); err != nil {
				return nil, err
			}
			if L.kNorm, err = f32Vector(w.KNorm, c.HeadDim); err != nil {
				return nil, err
			}
		}
		for _, p := range []struct {
			dst *matrix
			t   model.Tensor
		}{{&L.q, w.Q}, {&L.k, w.K}, {&L.v, w.V}, {&L.o, w.O}, {&L.gate, w.Gate}, {&L.up, w.Up}, {&L.down, w.Down}} {
			if *p.dst, err = newMatrix(p.t); err != nil {
				return nil, fmt.Errorf("cpu backend: %w", err)
			}
		}
	}
	blockBytes := kvBlockBytes(c.Layers, c.KVDim())
	minBlocks := (maxCtx + kvBlock - 1) / kvBlock
	budget := opts.KVMemory
	if budget == 0 {
		parallel := opts.Parallel
		if parallel <= 0 {
			parallel = engine.DefaultParallel
		}
		budget = max(engine.DefaultKVMemory(int64(blockBytes/kvBlock), maxCtx, parallel, kvBlock), int64(minBlocks*blockBytes))
	}
	if budget < 0 || budget/int64(blockBytes) < int64(minBlocks) {
		return nil, fmt.Errorf("cpu backend: a KV memory budget of %d bytes does not hold the context of %d positions (%d bytes); raise --kv-memory or lower --ctx",
			budget, maxCtx, int64(minBlocks)*int64(blockBytes))
	}
	b.kv = newKVPool(c.Layers, c.KVDim(), int(min(budget/int64(blockBytes), 1<<30)))
	b.Seqs = kvblock.NewSeqs("cpu backend", &b.mu, &b.kv.Pool, blockBytes)
	b.allocScratch(1)
	b.pool = newPool(threads)
	mats := []*matrix{&b.output}
	for i := range b.layers {
		L := &b.layers[i]
		mats = append(mats, &L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down)
	}
	if opts.Numerics == Exact {
		// Exact products dequantize the mapped rows; the interleaved copy would go unused.
		for _, mt := range mats {
			mt.exact = true
		}
		return b, nil
	}
	if err := b.interleave(m, mats); err != nil {
		b.release()
		return nil, fmt.Errorf("cpu backend: %w", err)
	}
	return b, nil
}

// f32Vector decodes a 1-D weight (a norm) of n elements to float32.
func f32Vector(t model.Tensor, n int) ([]float32, error) {
	if t.Rows != 1 || t.Cols != n {
		return nil, fmt.Errorf("cpu backend: tensor %s is %d×%d, want a vector of %d", t.Name, t.Rows, t.Cols, n)
	}
	v := make([]float32, n)
	if err := quant.DequantizeRow(t.Type, t.Data, v); err != nil {
		return nil, fmt.Errorf("cpu backend: tensor %s: %w", t.Name, err)
	}
	return v, nil
}

// allocScratch makes the per-batch buffers hold batches of up to rows tokens. They grow with the largest
// batch seen, so that a backend that only generates keeps a few KB instead of a prompt batch's tens of MB.
func (b *Backend) allocScratch(rows int) {
	s := &b.s
	if s.attn == nil {
		s.attn = make([]attnScratch, b.threads)
		s.mm = make([]kernels.Scratch, b.threads)
	}
	if rows <= len(s.rope) {
		return
	}
	c := b.cfg
	s.x = make([]float32, rows*c.Dim)
	s.xn = make([]float32, rows*c.Dim)
	s.q = make([]float32, rows*c.QDim())
	s.k = make([]float32, rows*c.KVDim())
	s.v = make([]float32, rows*c.KVDim())
	s.att = make([]float32, rows*c.QDim())
	s.gate = make([]float32, rows*c.FF)
	s.up = make([]float32, rows*c.FF)
	s.tmp = make([]float32, rows*c.Dim)
	s.rope = make([]ropeTable, rows)
}

// Name is "cpu".
func (b *Backend) Name() string { return "cpu" }

// Device names the CPU's vector extensions and the thread count, e.g. "CPU (2 threads, AVX2)".
func (b *Backend) Device() string {
	var feats []string
	switch runtime.GOARCH {
	case "amd64":
		switch {
		case cpu.X86.HasAVX512F:
			feats = append(feats, "AVX-512")
		case cpu.X86.HasAVX2:
			feats = append(feats, "AVX2")
		case cpu.X86.HasAVX:
			feats = append(feats, "AVX")
		}
	case "arm64":
		if cpu.ARM64.HasASIMDDP {
			feats = append(feats, "NEON dotprod")
		} else if cpu.ARM64.HasASIMD {
			feats = append(feats, "NEON")
		}
	}
	d := fmt.Sprintf("CPU (%d threads", b.threads)
	if b.threads == 1 {
		d = "CPU (1 thread"
	}
	if len(feats) > 0 {
		d += ", " + strings.Join(feats, ", ")
	}
	if b.num != Fast {
		d += ", " + b.num.String() + " numerics"
	}
	return d + ")"
}

// Len is the number of cached positions of Forward's sequence.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.own.N
}

// Truncate keeps the first n cached positions of Forward's sequence (none for n < 0). The blocks past
// them go back to the pool.
func (b *Backend) Truncate(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.kv.Truncate(&b.own, n)
	}
}

// MaxContext is the number of positions the cache can hold.
func (b *Backend) MaxContext() int { return b.maxCtx }

// Close stops the worker threads and drops the cache. The model stays open: it belongs to the caller.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.release()
	b.kv = kvPool{}
	kvblock.Drop(&b.Seqs)
	b.own = kvSeq{}
	b.s = scratch{}
	return nil
}

// release stops the workers and frees the interleaved weights, dropping every reference to them first.
func (b *Backend) release() {
	b.pool.close()
	b.layers, b.output = nil, matrix{}
	for _, free := range b.frees {
		free()
	}
	b.frees = nil
}

// Forward evaluates tokens at positions Len()..Len()+len(tokens)-1, appending them to the cache, and
// returns the logits of the rows in want (ascending indices into tokens). On error, including a cancelled
// ctx, the cache keeps the positions it had before the call.
func (b *Backend) Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("cpu backend: forward after close")
	}
	if err := engine.CheckForward(tokens, want, b.cfg.Vocab, b.own.N, b.maxCtx); err != nil {
		return nil, fmt.Errorf("cpu backend: %w", err)
	}
	out, err := b.forward(ctx, []*kvSeq{&b.own}, []engine.SeqEntry{{Tokens: tokens, Want: want}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ForwardSeqs evaluates a batch of sequences' tokens in one pass through the layers.
func (b *Backend) ForwardSeqs(ctx context.Context, batch []engine.SeqEntry) ([][][]float32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("cpu backend: forward after close")
	}
	seqs, err := kvblock.Lookup(&b.Seqs, batch, b.cfg.Vocab, b.maxCtx)
	if err != nil {
		return nil, err
	}
	return b.forward(ctx, seqs, batch)
}

// kvSlot is where a batch row's keys and values go: a position of a sequence.
type kvSlot struct {
	seq *kvSeq
	pos int
}

// forward evaluates the checked batch, entry i on seqs[i]: it takes the blocks the batch needs (or
// fails with ErrKVFull before any work), stacks every entry's tokens into rows, and runs them through
// the layers maxBatch rows at a time. On error every sequence is cut back to its length before the call.
func (b *Backend) forward(ctx context.Context, seqs []*kvSeq, batch []engine.SeqEntry) ([][][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	need, rows, wanted := 0, 0, 0
	for i, e := range batch {
		need += b.kv.GrowCost(seqs[i], len(e.Tokens))
		rows += len(e.Tokens)
		wanted += len(e.Want)
	}
	if need > b.kv.Available() {
		return nil, b.kv.ErrFull("cpu backend", need)
	}
	tokens := make([]int32, 0, rows)
	at := make([]kvSlot, 0, rows)
	want := make([]int, 0, wanted) // rows of tokens
	start := make([]int, len(seqs))
	for i, e := range batch {
		s := seqs[i]
		start[i] = s.N
		b.kv.grow(s, len(e.Tokens))
		for _, w := range e.Want {
			want = append(want, len(tokens)+w)
		}
		for j, t := range e.Tokens {
			tokens = append(tokens, t)
			at = append(at, kvSlot{s, s.N + j})
		}
	}
	vocab := b.cfg.Vocab
	store := make([]float32, wanted*vocab)
	wi := 0 // next entry of want
	for off := 0; off < len(tokens); off += maxBatch {
		end := min(off+maxBatch, len(tokens))
		var local []int
		first := wi
		for wi < len(want) && want[wi] < end {
			local = append(local, want[wi]-off)
			wi++
		}
		if err := b.forwardBatch(ctx, tokens[off:end], at[off:end], local, store[first*vocab:wi*vocab]); err != nil {
			for i, s := range seqs {
				b.kv.Truncate(s, start[i])
			}
			return nil, err
		}
	}
	out := make([][][]float32, len(batch))
	k := 0
	for i, e := range batch {
		seqs[i].N += len(e.Tokens)
		out[i] = make([][]float32, len(e.Want))
		for j := range e.Want {
			out[i][j] = store[k*vocab : (k+1)*vocab : (k+1)*vocab]
			k++
		}
	}
	return out, nil
}

// KVFormat names the layout ExportSeq writes: it changes with the model's shape and with the numerics,
// which round the keys and values differently.
func (b *Backend) KVFormat() string {
	return fmt.Sprintf("cpu f16 keys and values: %d layers of %d, runs of %d positions, %s numerics",
		b.cfg.Layers, b.cfg.KVDim(), kvBlock, b.num)
}

// ExportSeq writes the keys and values of positions from..to-1 of sequence id: a run per block (the
// block's positions in the range), each run layer by layer, the key rows then the value rows, kvDim
// little-endian halves a row: the cache's own bytes, so an import computes bit for bit as before.
func (b *Backend) ExportSeq(id engine.SeqID, from, to int, w io.Writer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := kvblock.Get(&b.Seqs, id)
	if !ok {
		return fmt.Errorf("cpu backend: export of unknown sequence %d", id)
	}
	if from < 0 || from%kvBlock != 0 || to > s.N || from > to {
		return fmt.Errorf("cpu backend: export of positions %d..%d of a sequence of %d (the start must be a multiple of %d)", from, to, s.N, kvBlock)
	}
	return b.kv.runs(s.Blocks, from, to, func(p []byte) error {
		_, err := w.Write(p)
		return err
	})
}

// ImportSeq makes a sequence of n positions from what ExportSeq wrote for positions 0..n-1.
func (b *Backend) ImportSeq(r io.Reader, n int) (engine.SeqID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, fmt.Errorf("cpu backend: import after close")
	}
	if n < 0 || n > b.maxCtx {
		return 0, fmt.Errorf("cpu backend: import of %d positions into a context of %d", n, b.maxCtx)
	}
	s := &kvSeq{}
	if need := b.kv.GrowCost(s, n); need > b.kv.Available() {
		return 0, b.kv.ErrFull("cpu backend", need)
	}
	b.kv.grow(s, n)
	if err := b.kv.runs(s.Blocks, 0, n, func(p []byte) error {
		_, err := io.ReadFull(r, p)
		return err
	}); err != nil {
		b.kv.Truncate(s, 0)
		return 0, fmt.Errorf("cpu backend: import of %d positions: %w", n, err)
	}
	s.N = n
	return kvblock.Add(&b.Seqs, s), nil
}
