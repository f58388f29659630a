package kernels

import (
	"math"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// TestEveryWeightTypeHasKernels checks the CPU's table against quant's: every weight type a file may use
// has a dot product, whose activation format has an encoder, and no other type has one.
func TestEveryWeightTypeHasKernels(t *testing.T) {
	for typ := range quant.Type(64) {
		if quant.Supported(typ) != (DotFunc(typ) != nil) {
			t.Errorf("%s: quant.Supported = %v, DotFunc nil = %v", typ, quant.Supported(typ), DotFunc(typ) == nil)
		}
		if DotFunc(typ) != nil && activations[VecDotType(typ)] == nil {
			t.Errorf("%s: no encoder for its activation format %s", typ, VecDotType(typ))
		}
	}
}

func TestQuantizeActivation(t *testing.T) {
	x := quanttest.Gaussian(quanttest.Rand(9), 512, 1)
	for _, typ := range []quant.Type{quant.F32, quant.Q8_0, quant.Q8_K} {
		n, _ := typ.RowBytes(len(x))
		got, want := make([]byte, n), make([]byte, n)
		if err := QuantizeActivation(typ, x, got); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if err := quant.QuantizeRow(typ, x, want); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: QuantizeActivation differs from quant.QuantizeRow", typ)
		}
	}
	if err := QuantizeActivation(quant.Q4_K, x, make([]byte, 288)); err == nil {
		t.Error("QuantizeActivation(Q4_K) succeeded; Q4_K is not an activation format")
	}
}

// TestQuantizeQ8KAssemblyMatchesGeneric checks that the vector Q8_K quantizer writes the same bytes as
// quant's reference: random rows at several scales, an all-zero block, a block whose largest magnitude appears with
// both signs (the first one sets the sign of d), a single non-zero element, and values on rounding ties.
func TestQuantizeQ8KAssemblyMatchesGeneric(t *testing.T) {
	if accelerated == nil || accelerated.q8K == nil {
		t.Skip("skipping: no assembly quantizer on this CPU or build")
	}
	r := quanttest.Rand(17)
	var rows [][]float32
	for _, std := range []float64{1e-6, 0.3, 1, 40, 1e20} {
		rows = append(rows, quanttest.Gaussian(r, 2048, std))
	}
	special := make([]float32, 6*256)
	for i := 256; i < 512; i++ { // block 1: ±3 both present, -3 first
		special[i] = float32(i%5) - 2
	}
	special[300], special[302], special[400] = -3, 3, 3 // the first two in one eight-element run
	special[512+77] = 0.25                              // block 2: one element
	for i := 768; i < 1024; i++ {                       // block 3: multiples of 1/2 after scaling by 127/max: ties
		special[i] = float32(i%255-127) / 2
	}
	special[1023] = 127.0 / 2
	for i := 1024; i < 1280; i++ { // block 4: the maximum at the very end
		special[i] = float32(i%3) * 0.1
	}
	special[1279] = -9
	rows = append(rows, special) // block 0 and 5 stay zero
	for ri, x := range rows {
		want, got := make([]byte, len(x)/256*292), make([]byte, len(x)/256*292)
		quant.QuantizeRowQ8K(x, want)
		accelerated.q8K(x, got, len(x)/256)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d: byte %d (block %d, offset %d) = %#02x, want %#02x", ri, i, i/292, i%292, got[i], want[i])
				break
			}
		}
	}
}

// These read tensors that llama.cpp itself quantized (smollm3-tiny-synthetic-Q4_K_M.gguf in the shared
// test data). The expected figures come from the AVX2 ggml_vec_dot_q4_K_q8_K / ggml_vec_dot_q6_K_q8_K
// with the activation quantized by its quantize_row_q8_K (ggml 0.25.1, llama.cpp tag v0.5.0, from
// node-llama-cpp 3.22.1).

// TestDotLlamaCppTensors runs the first rows of real weight matrices against a deterministic activation
// and compares with ggml_vec_dot_*_q8_K. The Q8_K activation must match bit for bit; the dots agree to
// float rounding (the AVX2 kernels follow ggml's summation order and matched these figures exactly when
// they were taken; the portable ones sum in another order).
func TestDotLlamaCppTensors(t *testing.T) {
	f, err := gguf.Open(testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name    string
		n       int
		seed    uint32
		actHash uint64
		want    []float32
	}{
		{"token_embd.weight", 512, 14, 0x5e702f59b8ff60cd, []float32{14.3050804, -0.364528656, -3.92511749, -2.78321266}},
		{"blk.0.attn_q.weight", 512, 11, 0xfb87e5a77610d0a6, []float32{-0.224448919, 0.675630569, 0.377046585, 0.222152233}},
		{"blk.0.ffn_down.weight", 1536, 12, 0x8dcbf758e24487db, []float32{-0.358062267, 3.80103064, 6.02925634, 0.332345009}},
		{"blk.1.ffn_down.weight", 1536, 13, 0x633d9bd0e39498ca, []float32{-9.98037243, -5.28845501, -6.57180119, 1.56291771}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := f.Tensor(tt.name)
			if ti == nil || ti.Dims[0] != uint64(tt.n) {
				t.Fatalf("tensor %s missing or not %d wide", tt.name, tt.n)
			}
			act := make([]byte, tt.n/256*292)
			active.quantizeRowQ8K(quanttest.DetInput(tt.n, tt.seed), act)
			if h := quanttest.FNV64(act); h != tt.actHash {
				t.Fatalf("Q8_K activation hash %016x, want %016x (llama.cpp)", h, tt.actHash)
			}
			rb, err := ti.Type.RowBytes(tt.n)
			if err != nil {
				t.Fatal(err)
			}
			w := f.Data(ti)
			for _, k := range kernelSets() {
				out := make([]float32, len(tt.want))
				if err := k.matVec(ti.Type, w[:len(out)*rb], act, tt.n, out); err != nil {
					t.Fatal(err)
				}
				for r, want := range tt.want {
					if d := math.Abs(float64(out[r] - want)); d > 2e-5*max(1, math.Abs(float64(want))) {
						t.Errorf("row %d (%s kernels) = %.9g, want %.9g (llama.cpp)", r, k.name, out[r], want)
					}
				}
			}
		})
	}
}
