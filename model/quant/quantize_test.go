package quant_test

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// TestQuantizeMatchesLlamaCpp pins the quantizers and dequantizers to llama.cpp. The figures are FNV-1a
// hashes of the output of ggml's quantize_row_*_ref and dequantize_row_* (ggml 0.25.1, llama.cpp tag
// v0.5.0 as shipped in node-llama-cpp 3.22.1) on quanttest.DetInput(16384, 7), whose own hash is checked first. The
// Go code reproduces them bit for bit.
func TestQuantizeMatchesLlamaCpp(t *testing.T) {
	x := quanttest.DetInput(16384, 7)
	if h := quanttest.FNV64(quanttest.FloatBytes(x)); h != 0xe50892efc98240d3 {
		t.Fatalf("input hash %016x, want e50892efc98240d3: the generator drifted from the one the figures came from", h)
	}
	tests := []struct {
		typ        quant.Type
		bytes, deq uint64
	}{
		{quant.Q4_0, 0x7530c06e28092456, 0xc9b9cc30b5a6f155},
		{quant.Q8_0, 0x03fc4fd609a6aca6, 0xd84623e78e2571cc},
		{quant.Q4_K, 0xce0c0ffd5940d727, 0x99a231a78f59c53c},
		{quant.Q5_K, 0xd604ee699373ed6d, 0xa841364aa23d238f},
		{quant.Q6_K, 0x6c14d255158ef156, 0xc4af0255411d8ba0},
		{quant.Q8_K, 0xa61ff7cca93b32b1, 0x26e5b7e06c5908ea},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			nb, err := tt.typ.RowBytes(len(x))
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, nb)
			if err := quant.QuantizeRow(tt.typ, x, b); err != nil {
				t.Fatal(err)
			}
			if h := quanttest.FNV64(b); h != tt.bytes {
				t.Errorf("quantized bytes hash %016x, want %016x (llama.cpp)", h, tt.bytes)
			}
			y := make([]float32, len(x))
			if err := quant.DequantizeRow(tt.typ, b, y); err != nil {
				t.Fatal(err)
			}
			if h := quanttest.FNV64(quanttest.FloatBytes(y)); h != tt.deq {
				t.Errorf("dequantized hash %016x, want %016x (llama.cpp)", h, tt.deq)
			}
		})
	}
}

// TestQuantizeRoundTrip bounds the relative RMS error of quantize → dequantize on N(0,1) data. The bounds
// sit a few percent above what ggml's algorithms reach (measured: F16 0.00021, BF16 0.00166, Q8_0 0.00535,
// Q4_0 0.0859, Q4_K 0.0714, Q5_K 0.0362, Q6_K 0.0177, Q8_K 0.0070), so a quantizer that stops searching
// or rounds badly fails.
func TestQuantizeRoundTrip(t *testing.T) {
	x := quanttest.Gaussian(quanttest.Rand(7), 16*4096, 1)
	tests := []struct {
		typ    quant.Type
		maxRel float64
	}{
		{quant.F32, 0},
		{quant.F16, 0.00025},
		{quant.BF16, 0.0018},
		{quant.Q8_0, 0.0057},
		{quant.Q4_0, 0.09},
		{quant.Q4_K, 0.074},
		{quant.Q5_K, 0.0375},
		{quant.Q6_K, 0.0185},
		{quant.Q8_K, 0.0073},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			nb, _ := tt.typ.RowBytes(len(x))
			b := make([]byte, nb)
			if err := quant.QuantizeRow(tt.typ, x, b); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			if err := quant.DequantizeRow(tt.typ, b, y); err != nil {
				t.Fatal(err)
			}
			var se, sx float64
			for i := range x {
				d := float64(y[i] - x[i])
				se += d * d
				sx += float64(x[i]) * float64(x[i])
			}
			rel := math.Sqrt(se / sx)
			t.Logf("relative RMS error %.5f", rel)
			if rel > tt.maxRel {
				t.Errorf("relative RMS error %.5f exceeds %.5f", rel, tt.maxRel)
			}
		})
	}
}

// TestQuantizeScaleInvariance checks that the quantizers adapt to the magnitude of their input: tiny and
// huge rows lose no more, relatively, than unit ones (until f16 scales underflow or overflow).
func TestQuantizeScaleInvariance(t *testing.T) {
	base := quanttest.Gaussian(quanttest.Rand(11), 1024, 1)
	for _, typ := range []quant.Type{quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.Q8_K} {
		for _, scale := range []float32{1e-3, 1, 300} {
			x := make([]float32, len(base))
			for i := range x {
				x[i] = base[i] * scale
			}
			nb, _ := typ.RowBytes(len(x))
			b := make([]byte, nb)
			y := make([]float32, len(x))
			if err := quant.QuantizeRow(typ, x, b); err != nil {
				t.Fatal(err)
			}
			if err := quant.DequantizeRow(typ, b, y); err != nil {
				t.Fatal(err)
			}
			var se, sx float64
			for i := range x {
				d := float64(y[i] - x[i])
				se += d * d
				sx += float64(x[i]) * float64(x[i])
			}
			if rel := math.Sqrt(se / sx); rel > 0.1 {
				t.Errorf("%s at scale %g: relative RMS error %.4f", typ, scale, rel)
			}
		}
	}
}

func TestQuantizeZeros(t *testing.T) {
	for _, typ := range []quant.Type{quant.F16, quant.BF16, quant.Q8_0, quant.Q4_0, quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.Q8_K} {
		x := make([]float32, 512)
		nb, _ := typ.RowBytes(len(x))
		b := make([]byte, nb)
		for i := range b {
			b[i] = 0xAA // must all be overwritten
		}
		if err := quant.QuantizeRow(typ, x, b); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		for i := range y {
			y[i] = 1
		}
		if err := quant.DequantizeRow(typ, b, y); err != nil {
			t.Fatal(err)
		}
		for i, v := range y {
			if v != 0 {
				t.Fatalf("%s: element %d of an all-zero row decodes to %g", typ, i, v)
			}
		}
	}
}

// TestQuantizeQ8KBsums checks the Q8_K block sums against the quants they summarise, and the ±127 range.
func TestQuantizeQ8KBsums(t *testing.T) {
	x := quanttest.Gaussian(quanttest.Rand(5), 1024, 3)
	b := make([]byte, 4*292)
	quant.QuantizeRowQ8K(x, b)
	for blk := 0; blk < 4; blk++ {
		y := b[blk*292:]
		for j := 0; j < 16; j++ {
			var s int32
			for _, q := range y[4+16*j : 4+16*j+16] {
				if int8(q) == -128 {
					t.Fatalf("block %d holds -128", blk)
				}
				s += int32(int8(q))
			}
			if got := int32(int16(binary.LittleEndian.Uint16(y[260+2*j:]))); got != s {
				t.Errorf("block %d bsums[%d] = %d, want %d", blk, j, got, s)
			}
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	nan := make([]float32, 256)
	nan[7] = float32(math.NaN())
	inf := make([]float32, 32)
	inf[3] = float32(math.Inf(-1))
	tests := []struct {
		name    string
		typ     quant.Type
		src     []float32
		dst     int
		wantErr string
	}{
		{"unsupported type", quant.Q2_K, make([]float32, 256), 84, "unsupported"},
		{"partial block", quant.Q4_K, make([]float32, 255), 144, "not a multiple of the block size"},
		{"short destination", quant.Q6_K, make([]float32, 256), 200, "take 210 bytes, got 200"},
		{"NaN", quant.Q4_K, nan, 144, "element 7 is NaN"},
		{"Inf", quant.Q8_0, inf, 34, "element 3 is -Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := quant.QuantizeRow(tt.typ, tt.src, make([]byte, tt.dst))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("QuantizeRow = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestActivationQuantizersPanicOnBadLengths(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"Q8_K partial block", func() { quant.QuantizeRowQ8K(make([]float32, 100), make([]byte, 292)) }},
		{"Q8_K short destination", func() { quant.QuantizeRowQ8K(make([]float32, 256), make([]byte, 291)) }},
		{"Q8_0 partial block", func() { quant.QuantizeRowQ8_0(make([]float32, 33), make([]byte, 68)) }},
		{"Q8_0 long destination", func() { quant.QuantizeRowQ8_0(make([]float32, 32), make([]byte, 35)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "quant: QuantizeRow") {
					t.Errorf("recovered %v, want a quant panic naming the function", r)
				}
			}()
			tt.f()
		})
	}
}
