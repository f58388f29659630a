package gpu

import (
	"context"
	"testing"

	"smolchat/internal/conformance"
)

// TestArchConformance compares the GPU's teacher-forced logits with llama.cpp's on the families'
// synthetic models (internal/conformance): Qwen3 (QK-norm and NEOX RoPE in head_rope.wgsl), Llama 3
// (rope_freqs in the host's angles) and SmolLM3 with YaRN. The GPU computes in float32 as the CPU's
// exact numerics do, so it is held to the same limits; the prompt is fed in one Forward (through the
// mat-mat, or on a CPU-type adapter the few-token mat-vec, and the mat-mat with f16 tiles), token by
// token for the short cases too.
func TestArchConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("synthesizes the models")
	}
	for _, c := range conformance.Cases {
		if c.Rope.Scaling == "" && len(c.Tokens) > 64 {
			continue // the CPU's baseline for the YaRN case: 100 s on lavapipe, and no GPU feature of its own
		}
		t.Run(c.Name, func(t *testing.T) {
			m := conformance.Open(t, c)
			b := openTestBackend(t, m, options{Context: c.Context()})
			logits, err := b.Forward(context.Background(), c.Tokens, conformance.Want(c))
			if err != nil {
				t.Fatal(err)
			}
			conformance.Check(t, conformance.Errors(logits, c), c.Limits, false, "gpu, one forward")

			// Prefill with f16-pair tiles (weights and activations rounded to halves, as llama.cpp's
			// Vulkan mat-mat does) is held to the same limits; the mat-mat even on a CPU-type adapter,
			// whose prefill the first backend ran through the mat-vec (prefillMatVec). This backend and
			// the integer one below keep their K-quant weights in textures (weights.wgsl's WTEX): the
			// embedding, mat-mat and mat-vec kernels' texture path end to end.
			bh := openTestBackend(t, m, options{Context: c.Context(), deviceOptions: deviceOptions{F16Tiles: true, WeightTextures: true, MatMat: true}})
			logits, err = bh.Forward(context.Background(), c.Tokens, conformance.Want(c))
			if err != nil {
				t.Fatal(err)
			}
			conformance.Check(t, conformance.Errors(logits, c), c.Limits, false, "gpu f16 tiles from textures, one forward")
			bh.Close()
			if len(c.Tokens) > 64 {
				return
			}
			b.Truncate(0)
			conformance.Check(t, conformance.Errors(tokenByToken(t, b, c.Tokens), c), c.Limits, false, "gpu, token by token")

			// The integer path of the mat-vecs (8-bit activations, as the CPU's fast numerics) is held
			// to the same limits as the CPU's fast mode.
			opts := options{Context: c.Context()}
			opts.Int8, opts.WeightTextures = true, true
			bi := openTestBackend(t, m, opts)
			if !bi.d.dot4 {
				t.Log("the device has no packed integer dot products: no integer path to compare")
				return
			}
			conformance.Check(t, conformance.Errors(tokenByToken(t, bi, c.Tokens), c), c.Limits, false, "gpu int8 from textures, token by token")
		})
	}
}

// tokenByToken feeds tokens to b one Forward each (the mat-vec path) and returns every position's logits.
func tokenByToken(t *testing.T, b *backend, tokens []int32) [][]float32 {
	t.Helper()
	var rows [][]float32
	for _, tok := range tokens {
		l, err := b.Forward(context.Background(), []int32{tok}, []int{0})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, l[0])
	}
	return rows
}
