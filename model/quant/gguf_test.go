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
