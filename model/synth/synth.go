// Package synth writes random-weight GGUF models with the architecture, tensor names, shapes, metadata
// and Q4_K_M type mix of SmolLM3, Qwen3 and Llama 3, for tests and benchmarks that must not depend on
// downloading real models. The outputs are gibberish; the files load and run like the real thing.
//
// smollm3-3b has the exact shapes of SmolLM3-3B (326 tensors: 216 Q4_K, 37 Q6_K, 73 F32), and
// llama3.2-1b, llama3.2-3b and qwen3-0.6b those of their models; their quantized tensors are random
// valid blocks generated directly, because quantizing billions of f32 weights with the K-quant search
// would take minutes and speed does not depend on the values. smollm3-tiny, qwen3-tiny and llama3-tiny are 4-layer models of their architectures whose
// weights are drawn as f32 and quantized with the quant package, so their activations behave like a
// model's (the conformance tests check them against llama.cpp, internal/conformance).
//
// Output is deterministic: the same preset, seed and vocabulary give the same bytes, however many CPUs
// share the work. The file is streamed one tensor at a time.
package synth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// Options controls Write.
type Options struct {
	Seed uint64
	// Vocab is the tokenizer to store; nil means BuiltinVocab.
	Vocab *Vocab
	// Workers is how many goroutines generate weights; 0 means GOMAXPROCS.
	Workers int
	// Log receives progress at debug level and a summary at info level; nil discards it.
	Log *slog.Logger
}

// fileTypeQ4KM is general.file_type for llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M.
const fileTypeQ4KM = 15

// Description is general.description for a file of preset p: what the weights are and how they were made.
func Description(p Preset, seed uint64, v *Vocab) string {
	how := "f32 weights drawn from scaled normal distributions (norm gains uniform) and quantized to Q4_K/Q6_K by smolchat's quantizers"
	if p.Direct {
		how = "the Q4_K/Q6_K tensors were generated directly as random valid blocks (random scales and quants) rather than by quantizing f32 weights, since speed does not depend on the values"
	}
	return fmt.Sprintf("Synthetic model written by smolchat synth (preset %s, seed %d): random weights, not a trained model, "+
		"so its output is gibberish. Tensor names, shapes and Q4_K_M type mix of a %s model; %s; reserved tokens' embeddings are 1/%g the scale of the others, "+
		"as untrained rows are small in a real model. Vocabulary: %s.",
		p.Name, seed, p.Arch, how, 1/unusedEmbedScale, v.Source)
}

// Metadata is the file's key/value table, with the keys of a real SmolLM3 Q4_K_M GGUF (spec §2.2).
// There is no tokenizer.ggml.add_bos_token key, as in the real file, so llama.cpp adds no BOS.
func Metadata(p Preset, seed uint64, v *Vocab) []gguf.KV {
	a := p.Arch + "."
	kvs := []gguf.KV{
		{Key: "general.architecture", Type: gguf.TypeString, Value: p.Arch},
		{Key: "general.name", Type: gguf.TypeString, Value: p.Name + "-synthetic"},
		{Key: "general.description", Type: gguf.TypeString, Value: Description(p, seed, v)},
		{Key: a + "block_count", Type: gguf.TypeUint32, Value: uint32(p.Layers)},
		{Key: a + "context_length", Type: gguf.TypeUint32, Value: uint32(p.Context)},
		{Key: a + "embedding_length", Type: gguf.TypeUint32, Value: uint32(p.Dim)},
		{Key: a + "feed_forward_length", Type: gguf.TypeUint32, Value: uint32(p.FF)},
		{Key: a + "attention.head_count", Type: gguf.TypeUint32, Value: uint32(p.Heads)},
		{Key: a + "attention.head_count_kv", Type: gguf.TypeUint32, Value: uint32(p.KVHeads)},
		{Key: a + "rope.freq_base", Type: gguf.TypeFloat32, Value: p.RopeBase},
		{Key: a + "rope.dimension_count", Type: gguf.TypeUint32, Value: uint32(p.HeadDim())},
		{Key: a + "attention.layer_norm_rms_epsilon", Type: gguf.TypeFloat32, Value: p.RMSEps},
		{Key: a + "vocab_size", Type: gguf.TypeUint32, Value: uint32(p.Vocab)},
		{Key: "general.file_type", Type: gguf.TypeUint32, Value: uint32(fileTypeQ4KM)},
		{Key: "general.quantization_version", Type: gguf.TypeUint32, Value: uint32(2)},
		{Key: "tokenizer.ggml.model", Type: gguf.TypeString, Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Type: gguf.TypeString, Value: p.Pre},
		{Key: "tokenizer.ggml.tokens", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: v.Tokens}},
		{Key: "tokenizer.ggml.token_type", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeInt32, Values: v.Types}},
		{Key: "tokenizer.ggml.merges", Type: gguf.TypeArray, Value: gguf.Array{Type: gguf.TypeString, Values: v.Merges}},
		{Key: "tokenizer.ggml.bos_token_id", Type: gguf.TypeUint32, Value: uint32(BOSID)},
		{Key: "tokenizer.ggml.eos_token_id", Type: gguf.TypeUint32, Value: uint32(EOSID)},
		{Key: "tokenizer.ggml.padding_token_id", Type: gguf.TypeUint32, Value: uint32(PadID)},
		{Key: "tokenizer.chat_template", Type: gguf.TypeString, Value: p.Template},
	}
	if p.KeyLength > 0 {
		kvs = append(kvs,
			gguf.KV{Key: a + "attention.key_length", Type: gguf.TypeUint32, Value: uint32(p.KeyLength)},
			gguf.KV{Key: a + "attention.value_length", Type: gguf.TypeUint32, Value: uint32(p.KeyLength)})
	}
	return kvs
}

// Write streams a GGUF model of preset p to w. Tensors are generated one at a time, the next while the
// previous is being written, so memory holds at most two tensors (the largest, token_embd, is 215 MB
// for the 3B preset). It stops early with ctx's error when ctx is cancelled.
func Write(ctx context.Context, w io.Writer, p Preset, opts Options) error {
	if err := p.check(); err != nil {
		return err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	v := opts.Vocab
	if v == nil {
		var err error
		if v, err = BuiltinVocab(p.Vocab); err != nil {
			return err
		}
	}
	if len(v.Tokens) != p.Vocab || len(v.Types) != p.Vocab {
		return fmt.Errorf("synth: vocabulary has %d tokens and %d types, preset %s needs %d", len(v.Tokens), len(v.Types), p.Name, p.Vocab)
	}

	// gguf.Writer buffers and reports a failed write only at Close; watching the destination stops a
	// doomed run (a full disk) at the next tensor instead of after generating the rest.
	dst := &stickyWriter{w: w}
	gw := gguf.NewWriter(dst)
	for _, kv := range Metadata(p, opts.Seed, v) {
		gw.AddKV(kv.Key, kv.Value)
	}
	plan := p.Tensors()
	for _, t := range plan {
		if err := gw.AddTensor(t.Name, t.Type, t.Dims); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	if err := gw.WriteHeader(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if dst.err != nil {
		return fmt.Errorf("synth: writing the header: %w", dst.err)
	}

	// Generate tensor i+1 while tensor i is written: generation is CPU-bound, writing mostly I/O.
	type generated struct {
		data []byte
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan generated)
	defer func() {
		cancel()
		for range ready { // wait for the generator to stop before returning
		}
	}()
	go func() {
		defer close(ready)
		for i, t := range plan {
			buf := make([]byte, t.Bytes())
			var scale []float64
			if t.role == roleEmbeddings {
				scale = embeddingScales(v)
			}
			err := fillTensor(ctx, buf, t, i, opts.Seed, p.Direct, scale, workers)
			select {
			case ready <- generated{buf, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	start := time.Now()
	var written int64
	for i, t := range plan {
		g, ok := <-ready
		if !ok {
			return ctx.Err()
		}
		if g.err != nil {
			return g.err
		}
		if err := gw.WriteTensor(t.Name, g.data); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		if dst.err != nil {
			return fmt.Errorf("synth: writing tensor %s: %w", t.Name, dst.err)
		}
		written += int64(len(g.data))
		log.Debug("synth: tensor written", "tensor", t.Name, "type", t.Type, "index", i, "bytes", len(g.data),
			"total", written, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	if err := gw.Close(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// stickyWriter remembers the first error of w and fails every write after it.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// unusedEmbedScale shrinks the embeddings of reserved tokens. In a trained model those rows never
// received gradient and stay small, so the tied head never picks them; without this a synthetic model with
// the built-in vocabulary (127k reserved ids) would emit almost nothing but invisible control tokens.
const unusedEmbedScale = 1.0 / 16

// embeddingScales is the spread factor of each token's embedding row.
func embeddingScales(v *Vocab) []float64 {
	s := make([]float64, len(v.Tokens))
	for id := range s {
		s[id] = 1
		if v.Reserved(id) {
			s[id] = unusedEmbedScale
		}
	}
	return s
}

// TypeCounts is how many of the planned tensors have each type.
func TypeCounts(plan []TensorSpec) map[quant.Type]int {
	n := map[quant.Type]int{}
	for _, t := range plan {
		n[t.Type]++
	}
	return n
}
