package quant_test

import (
	"encoding/binary"
	"math"
	"testing"

	"smolchat/internal/testutil"
	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// These tests read tensors that llama.cpp itself quantized (smollm3-tiny-synthetic-Q4_K_M.gguf in the
// shared test data: random weights written as F32 and quantized by llama_model_quantize, Q4_K_M mix).
// The expected figures come from llama.cpp's own code on the same bytes: ggml's dequantize_row_q4_K /
// dequantize_row_q6_K and the AVX2 ggml_vec_dot_q4_K_q8_K / ggml_vec_dot_q6_K_q8_K with the activation
// quantized by its quantize_row_q8_K (ggml 0.25.1, llama.cpp tag v0.5.0, from node-llama-cpp 3.22.1).

func openSynthetic(t *testing.T) *gguf.File {
	t.Helper()
	f, err := gguf.Open(testutil.SharedFile(t, "smollm3-tiny-synthetic-Q4_K_M.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fnv64 is FNV-1a.
func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func tensorInfo(t *testing.T, f *gguf.File, name string, typ quant.Type) *gguf.TensorInfo {
	t.Helper()
	ti := f.Tensor(name)
	if ti == nil {
		t.Fatalf("tensor %s missing", name)
	}
	if ti.Type != typ {
		t.Fatalf("%s is %s, want %s", name, ti.Type, typ)
	}
	return ti
}

// eachRow dequantizes a tensor row by row (token_embd alone is 65M elements) and hands each row to fn.
func eachRow(t *testing.T, f *gguf.File, ti *gguf.TensorInfo, fn func(row []float32)) {
	t.Helper()
	n := int(ti.Dims[0])
	rb, err := ti.Type.RowBytes(n)
	if err != nil {
		t.Fatal(err)
	}
	data := f.Data(ti)
	row := make([]float32, n)
	for r := 0; r < int(ti.Rows()); r++ {
		if err := quant.DequantizeRow(ti.Type, data[r*rb:(r+1)*rb], row); err != nil {
			t.Fatalf("%s row %d: %v", ti.Name, r, err)
		}
		fn(row)
	}
}

// TestDequantizeLlamaCppTensors checks whole dequantized tensors bit for bit against llama.cpp (an FNV-1a
// hash of the float32 bytes, and the sum in float64), plus the statistics the weights were drawn with.
func TestDequantizeLlamaCppTensors(t *testing.T) {
	f := openSynthetic(t)
	tests := []struct {
		name    string
		typ     quant.Type
		hash    uint64
		sum     float64
		wantStd float64 // the standard deviation the generator drew from, 0 where it is not simple
		first   []float32
	}{
		{"token_embd.weight", quant.Q6_K, 0x333bbad9047cb924, 608.79323935508728, 1,
			[]float32{-1.94374847, 2.7389183, 1.50198746}},
		{"blk.0.attn_q.weight", quant.Q4_K, 0xdac230f76f0191d0, -67.703044414520264, 2 / math.Sqrt(512),
			[]float32{-0.0143413544, -0.0390949249, 0.0104122162}},
		{"blk.0.ffn_down.weight", quant.Q6_K, 0x3460393241757f04, 44.635804831981659, 0,
			[]float32{-0.0731116533, -0.0332325697, 0.0731116533}},
		{"blk.1.ffn_down.weight", quant.Q4_K, 0x62ff52f9e492d47f, 56.840259313583374, 0,
			[]float32{-0.0342128277, 0.102160454, 0.0826785564}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := tensorInfo(t, f, tt.name, tt.typ)
			h := uint64(14695981039346656037) // FNV-1a, fed the float32 bytes in order
			var sum, sumSq float64
			var first []float32
			eachRow(t, f, ti, func(row []float32) {
				if first == nil {
					first = append(first, row[:len(tt.first)]...)
				}
				var b [4]byte
				for _, v := range row {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("non-finite element %g", v)
					}
					binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
					for _, c := range b {
						h ^= uint64(c)
						h *= 1099511628211
					}
					sum += float64(v)
					sumSq += float64(v) * float64(v)
				}
			})
			if h != tt.hash {
				t.Errorf("hash of the dequantized tensor %016x, want %016x (llama.cpp)", h, tt.hash)
			}
			if sum != tt.sum {
				t.Errorf("sum %.17g, want %.17g (llama.cpp)", sum, tt.sum)
			}
			for i, want := range tt.first {
				if first[i] != want {
					t.Errorf("element %d = %.9g, want %.9g (llama.cpp)", i, first[i], want)
				}
			}
			count := float64(ti.Elements)
			mean := sum / count
			std := math.Sqrt(sumSq/count - mean*mean)
			t.Logf("%d elements, mean %.3g, std %.4g", ti.Elements, mean, std)
			// Quantization noise moves the std by well under 1%; the sample is large.
			if tt.wantStd != 0 && (math.Abs(std-tt.wantStd) > 0.03*tt.wantStd || math.Abs(mean) > 0.01*tt.wantStd) {
				t.Errorf("mean %.3g, std %.4g; the generator drew std %.4g around 0", mean, std, tt.wantStd)
			}
		})
	}
}

// TestNormWeights checks the F32 norms: drawn from U(0.5, 1.5).
func TestNormWeights(t *testing.T) {
	f := openSynthetic(t)
	var n int
	var sum float64
	for _, ti := range f.Tensors {
		if ti.Type != quant.F32 {
			continue
		}
		eachRow(t, f, ti, func(row []float32) {
			for i, v := range row {
				if !(v >= 0.5 && v <= 1.5) {
					t.Fatalf("%s element %d = %g, outside [0.5, 1.5]", ti.Name, i, v)
				}
				sum += float64(v)
			}
			n += len(row)
		})
	}
	if n != 17*512 {
		t.Errorf("%d F32 norm elements, want 17 tensors of 512", n)
	}
	if mean := sum / float64(n); math.Abs(mean-1) > 0.01 {
		t.Errorf("norm mean %.4f, want ≈ 1", mean)
	}
}

// TestDotLlamaCppTensors runs the first rows of real weight matrices against a deterministic activation
// and compares with ggml_vec_dot_*_q8_K. The Q8_K activation must match bit for bit; the dots agree to
// float rounding (the AVX2 kernels follow ggml's summation order and matched these figures exactly when
// they were taken; the portable ones sum in another order).
func TestDotLlamaCppTensors(t *testing.T) {
	f := openSynthetic(t)
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
	defer quant.ForceGeneric(false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := f.Tensor(tt.name)
			if ti == nil || ti.Dims[0] != uint64(tt.n) {
				t.Fatalf("tensor %s missing or not %d wide", tt.name, tt.n)
			}
			act := make([]byte, tt.n/256*292)
			quant.QuantizeRowQ8K(quant.DetInput(tt.n, tt.seed), act)
			if h := fnv64(act); h != tt.actHash {
				t.Fatalf("Q8_K activation hash %016x, want %016x (llama.cpp)", h, tt.actHash)
			}
			rb, err := ti.Type.RowBytes(tt.n)
			if err != nil {
				t.Fatal(err)
			}
			w := f.Data(ti)
			for _, generic := range []bool{true, false} {
				quant.ForceGeneric(generic)
				out := make([]float32, len(tt.want))
				if err := quant.MatVec(ti.Type, w[:len(out)*rb], act, tt.n, out); err != nil {
					t.Fatal(err)
				}
				for r, want := range tt.want {
					if d := math.Abs(float64(out[r] - want)); d > 2e-5*max(1, math.Abs(float64(want))) {
						t.Errorf("row %d (%s kernels) = %.9g, want %.9g (llama.cpp)", r, quant.Kernels(), out[r], want)
					}
				}
			}
		})
	}
}
