// Package engine turns prompt tokens into generated tokens: it owns the generation loop (prefill, decode,
// stop conditions, cancellation, timings), sampling, the continuous batching of several generations
// (scheduler.go) and KV-cache prefix reuse (the conversation cache), and drives a Backend that runs the
// transformer itself. Backends (the CPU one in package cpu, the WebGPU one in package gpu)
// depend on this package, never the other way round.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Backend runs the transformer forward pass and owns the KV cache of one sequence.
//
// The cache holds Len() positions. Forward appends len(tokens) positions after them, so tokens[i] sits at
// position Len()+i, and returns the vocabulary-sized logits of the rows named in want (indices into
// tokens, ascending). Truncate drops cached positions so that a new prompt sharing a prefix with the
// cached sequence only computes its suffix.
type Backend interface {
	// Name is "cpu" or "gpu".
	Name() string
	// Device describes the hardware: the GPU adapter's name, or the CPU and thread count.
	Device() string
	// Forward evaluates tokens at positions Len()..Len()+len(tokens)-1 and returns logits for the rows
	// in want. A cancelled ctx stops the work at the backend's next check (the CPU checks between
	// layers, the GPU between submits of up to its batch of tokens) and returns ctx.Err(); the cache
	// then holds the positions before the call, as after any error.
	Forward(ctx context.Context, tokens []int32, want []int) ([][]float32, error)
	// Len is the number of cached positions.
	Len() int
	// Truncate keeps the first n cached positions: all of them when n ≥ Len(), none when n < 0.
	Truncate(n int)
	// MaxContext is the number of positions the cache can hold.
	MaxContext() int
	// Close releases the backend's memory (GPU buffers, worker goroutines).
	Close() error
}

// Argmaxer is implemented by backends that can pick the greedy token on the device, so a decode step
// reads back one id instead of a vocabulary of logits.
type Argmaxer interface {
	// ForwardArgmax evaluates tokens like Forward and returns the argmax of the last row's logits.
	ForwardArgmax(ctx context.Context, tokens []int32) (int32, error)
}

// SeqBackend is a Backend that holds many sequences at once, each with its own KV cache, so that the
// engine can evaluate one token of every running generation in one batched pass (each weight read once
// for all of them) and keep finished conversations' caches for later requests.
//
// The KV memory is one pool of fixed-size blocks (KVUsage.BlockLen positions) under a budget: a sequence
// is a table of blocks, so sequences of any length share the pool, and sequences made by Fork share the
// blocks of their common prefix until one of them writes into a shared block (copy on write).
//
// The Backend methods (Forward, Len, Truncate) work on a sequence of their own, kept apart from those
// that NewSeq and Fork make.
type SeqBackend interface {
	Backend
	// NewSeq makes an empty sequence.
	NewSeq() SeqID
	// Fork makes a sequence holding the first n positions of src (all of them when n ≥ its length),
	// sharing their blocks.
	Fork(src SeqID, n int) (SeqID, error)
	// SeqLen is the number of cached positions of a sequence (0 for an unknown id).
	SeqLen(id SeqID) int
	// TruncateSeq keeps the first n positions of a sequence (none when n < 0), releasing the blocks
	// past them.
	TruncateSeq(id SeqID, n int)
	// FreeSeq releases a sequence and its blocks; unknown ids are ignored.
	FreeSeq(id SeqID)
	// ForwardSeqs evaluates a batch: each entry's tokens are appended to its sequence's cache (a
	// sequence at most once per batch) and the logits of its Want rows are returned, by entry then
	// row. The tokens of all entries go through the layers together. A sequence's logits do not depend
	// on the other entries of the batch. When the pool has too few free blocks for the batch, nothing
	// is evaluated and the error wraps ErrKVFull; on any error every sequence keeps the positions it had.
	ForwardSeqs(ctx context.Context, batch []SeqEntry) ([][][]float32, error)
	// KV reports the pool's blocks.
	KV() KVUsage
	// BlocksOnlyIn counts the blocks that no sequence but those of ids holds: the blocks freeing them
	// would return to the pool.
	BlocksOnlyIn(ids []SeqID) int
}

// KVExporter is implemented by SeqBackends that can write a sequence's keys and values out and read
// them back, so that the conversation cache can keep conversations on disk (kvdisk.go). Backends without
// it keep them in memory only.
//
// The exported bytes of positions from..to-1 are the backend's own layout; what the engine relies on is
// that the exports of consecutive ranges whose bounds are multiples of KVUsage.BlockLen, written one
// after the other, are the export of their union, and that ImportSeq reads that back.
type KVExporter interface {
	// KVFormat names the layout and numerics of the exported keys and values (element type, layers,
	// widths, block length, rounding): a sequence exported under one format is only imported by a
	// backend reporting the same.
	KVFormat() string
	// ExportSeq writes the keys and values of positions from..to-1 of sequence id to w; from is a
	// multiple of KVUsage.BlockLen and to is at most the sequence's length.
	ExportSeq(id SeqID, from, to int, w io.Writer) error
	// ImportSeq makes a sequence of n positions from r, which holds the export of positions 0..n-1 of a
	// sequence in this format. When the pool has too few free blocks it reads nothing and the error
	// wraps ErrKVFull; after any error no sequence is made.
	ImportSeq(r io.Reader, n int) (SeqID, error)
}

// SeqID names a sequence of a SeqBackend.
type SeqID int32

// SeqEntry is one sequence's part of a batch.
type SeqEntry struct {
	Seq    SeqID
	Tokens []int32 // evaluated at the positions after the sequence's cached ones
	Want   []int   // rows of Tokens whose logits are returned, strictly ascending
}

// KVUsage describes a SeqBackend's pool of KV blocks.
type KVUsage struct {
	BlockLen   int // positions per block
	BlockBytes int // memory per block
	Blocks     int // the budget in blocks
	Used       int // blocks held by at least one sequence
}

// ErrKVFull is returned when a batch needs more KV blocks than the memory budget has free. The engine
// then evicts cached conversations; when none is left, it refuses the request with this error.
var ErrKVFull = errors.New("the KV memory budget is full")

// ErrContextFull is returned when a prompt or a generation would not fit in the context window.
var ErrContextFull = errors.New("context window is full")

// TopKer is implemented by backends that can select the k largest logits on the device (k ≤ MaxDeviceTopK),
// so that sampling with a top-k filter reads back k candidates instead of the vocabulary.
type TopKer interface {
	// ForwardTopK evaluates tokens like Forward and returns the ids and logits of the last row's k
	// largest logits.
	ForwardTopK(ctx context.Context, tokens []int32, k int) ([]int32, []float32, error)
}

// MaxDeviceTopK is the largest k a TopKer must support.
const MaxDeviceTopK = 64

// ErrBackendLost marks an error after which a backend cannot be used again, such as a lost GPU device.
// The engine fails the request, then re-creates the backend (or falls back to the CPU) for the next one.
var ErrBackendLost = errors.New("backend lost")

// CheckForward validates Forward's arguments for a backend with cached positions and a vocabulary of
// vocab tokens: ids in range, room in the context, and want strictly ascending rows of tokens.
func CheckForward(tokens []int32, want []int, vocab, cached, maxCtx int) error {
	for i, t := range tokens {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("token %d at index %d is outside the vocabulary of %d", t, i, vocab)
		}
	}
	if cached+len(tokens) > maxCtx {
		return fmt.Errorf("%d cached + %d new positions exceed the context of %d: %w", cached, len(tokens), maxCtx, ErrContextFull)
	}
	for i, w := range want {
		if w < 0 || w >= len(tokens) {
			return fmt.Errorf("wanted row %d is outside the %d tokens", w, len(tokens))
		}
		if i > 0 && w <= want[i-1] {
			return fmt.Errorf("wanted rows must be strictly ascending, got %d after %d", w, want[i-1])
		}
	}
	return nil
}
