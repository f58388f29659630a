package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// kernelSets are the implementations the tests run their kernels on: the portable kernels and, where
// this CPU has them, the assembly ones.
func kernelSets() []*impl {
	if accelerated == nil {
		return []*impl{generic}
	}
	return []*impl{generic, accelerated}
}

// refDot is Σ w·a in float64 over the dequantized rows, and Σ |w·a| as the scale of its rounding error.
func refDot(t testing.TB, wt quant.Type, w []byte, at quant.Type, a []byte, n int) (dot, mag float64) {
	t.Helper()
	wf, af := make([]float32, n), make([]float32, n)
	if err := quant.DequantizeRow(wt, w, wf); err != nil {
		t.Fatal(err)
	}
	if err := quant.DequantizeRow(at, a, af); err != nil {
		t.Fatal(err)
	}
	for i := range wf {
		p := float64(wf[i]) * float64(af[i])
		dot += p
		mag += math.Abs(p)
	}
	return dot, mag
}

// TestDotMatchesDequantized checks every weight type's dot product against Σ dequant(w)·dequant(a) on
// quantized random data, for each kernel set.
func TestDotMatchesDequantized(t *testing.T) {
	r := quanttest.Rand(21)
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q5_K, quant.Q6_K, quant.Q8_0, quant.Q4_0, quant.F32, quant.F16, quant.BF16} {
		for _, n := range []int{256, 2048, 11008} {
			x := quanttest.Gaussian(r, n, 1)
			act := quanttest.Gaussian(r, n, 2)
			w := make([]byte, mustRowBytes(t, typ, n))
			a := make([]byte, mustRowBytes(t, VecDotType(typ), n))
			if err := quant.QuantizeRow(typ, x, w); err != nil {
				t.Fatal(err)
			}
			if err := quant.QuantizeRow(VecDotType(typ), act, a); err != nil {
				t.Fatal(err)
			}
			want, mag := refDot(t, typ, w, VecDotType(typ), a, n)
			for _, k := range kernelSets() {
				got := k.dot(typ, w, a, n)
				if d := math.Abs(float64(got) - want); d > 1e-6*mag+1e-6 {
					t.Errorf("%s n=%d (%s): Dot = %.7g, want %.7g (Σ|w·a| = %.4g)", typ, n, k.name, got, want, mag)
				}
			}
		}
	}
}

// TestDotAssemblyMatchesGeneric compares the assembly kernels with the portable ones on random blocks
// that use every code and extreme activation bytes: -128 too for Q8_K (which QuantizeRowQ8K never
// writes, but the K-quant kernels handle), while Q8_0 activations stay within ±127 as documented.
func TestDotAssemblyMatchesGeneric(t *testing.T) {
	if accelerated == nil {
		t.Skip("skipping: no assembly kernels on this CPU or build")
	}
	r := quanttest.Rand(99)
	kernels := []struct {
		typ       quant.Type
		act       quant.Type
		asm, pure func(w, a []byte, nb int) float32
	}{
		{quant.Q4_K, quant.Q8_K, accelerated.q4K, generic.q4K},
		{quant.Q5_K, quant.Q8_K, accelerated.q5K, generic.q5K},
		{quant.Q6_K, quant.Q8_K, accelerated.q6K, generic.q6K},
		{quant.Q8_0, quant.Q8_0, accelerated.q8_0, generic.q8_0},
		{quant.Q4_0, quant.Q8_0, accelerated.q4_0, generic.q4_0},
	}
	for _, k := range kernels {
		for _, nb := range []int{1, 2, 3, 8, 43} {
			for trial := 0; trial < 20; trial++ {
				w := quanttest.RandomBlocks(r, k.typ, nb)
				a := quanttest.RandomBlocks(r, k.act, nb)
				if trial == 0 { // saturate: every activation byte at -128 or 127
					for i := range a {
						if i%k.act.TypeSize() >= 4 {
							a[i] = byte(0x80 - i%2)
						}
					}
					a = fixBsums(k.act, a)
				}
				if k.act == quant.Q8_0 {
					for i := range a {
						if i%quant.Q8_0Bytes >= 2 && a[i] == 0x80 {
							a[i] = 0x81
						}
					}
				}
				n := nb * k.typ.BlockSize()
				_, mag := refDot(t, k.typ, w, k.act, a, n)
				got, want := k.asm(w, a, nb), k.pure(w, a, nb)
				if d := math.Abs(float64(got) - float64(want)); d > 1e-6*mag+1e-30 {
					t.Fatalf("%s nb=%d trial %d: assembly %.9g, generic %.9g (Σ|w·a| = %.4g)", k.typ, nb, trial, got, want, mag)
				}
			}
		}
	}
	x, y := quanttest.Gaussian(r, 1037, 1), quanttest.Gaussian(r, 1037, 1)
	h, bh := make([]byte, 2*len(x)), make([]byte, 2*len(x))
	if err := quant.QuantizeRow(quant.F16, x, h); err != nil {
		t.Fatal(err)
	}
	if err := quant.QuantizeRow(quant.BF16, x, bh); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7, 8, 15, 16, 17, 31, 32, 33, 1037} {
		var mag float64
		for i := 0; i < n; i++ {
			mag += math.Abs(float64(x[i]) * float64(y[i]))
		}
		for _, c := range []struct {
			name      string
			asm, pure float32
		}{
			{"F32", accelerated.f32(x[:n], y[:n]), generic.f32(x[:n], y[:n])},
			{"F16", accelerated.f16(h[:2*n], y[:n]), generic.f16(h[:2*n], y[:n])},
			{"BF16", accelerated.bf16(bh[:2*n], y[:n]), generic.bf16(bh[:2*n], y[:n])},
			{"F32 bytes", accelerated.f32Bytes(quanttest.FloatBytes(x[:n]), quanttest.FloatBytes(y[:n]), n), generic.f32(x[:n], y[:n])},
			{"F16 bytes", accelerated.f16Bytes(h[:2*n], quanttest.FloatBytes(y[:n]), n), generic.f16(h[:2*n], y[:n])},
			{"BF16 bytes", accelerated.bf16Bytes(bh[:2*n], quanttest.FloatBytes(y[:n]), n), generic.bf16(bh[:2*n], y[:n])},
		} {
			if math.Abs(float64(c.asm-c.pure)) > 1e-6*mag {
				t.Errorf("%s n=%d: assembly %.9g, generic %.9g", c.name, n, c.asm, c.pure)
			}
		}
	}
}

// fixBsums recomputes the block sums of Q8_K blocks after their quants were edited; Q8_0 has none.
func fixBsums(t quant.Type, a []byte) []byte {
	if t != quant.Q8_K {
		return a
	}
	for b := 0; b < len(a)/quant.Q8KBytes; b++ {
		blk := a[b*quant.Q8KBytes:]
		for j := 0; j < 16; j++ {
			var s int16
			for _, q := range blk[4+16*j : 4+16*j+16] {
				s += int16(int8(q))
			}
			blk[260+2*j] = byte(s)
			blk[261+2*j] = byte(uint16(s) >> 8)
		}
	}
	return a
}

func mustRowBytes(t testing.TB, typ quant.Type, n int) int {
	t.Helper()
	b, err := typ.RowBytes(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDotFloats(t *testing.T) {
	r := quanttest.Rand(4)
	for _, n := range []int{0, 1, 3, 64, 1001} {
		x, y := quanttest.Gaussian(r, n, 1), quanttest.Gaussian(r, n, 1)
		wf16, wbf16 := make([]byte, 2*n), make([]byte, 2*n)
		if err := quant.QuantizeRow(quant.F16, x, wf16); err != nil {
			t.Fatal(err)
		}
		if err := quant.QuantizeRow(quant.BF16, x, wbf16); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			typ  quant.Type
			w    []byte
			f    func(k *impl) float32
		}{
			{"DotF32", quant.F32, quanttest.FloatBytes(x), func(k *impl) float32 { return k.dotF32(x, y) }},
			{"dotF16F32", quant.F16, wf16, func(k *impl) float32 { return k.dotF16F32(wf16, y) }},
			{"dotBF16F32", quant.BF16, wbf16, func(k *impl) float32 { return k.dotBF16F32(wbf16, y) }},
		} {
			want, mag := refDot(t, tt.typ, tt.w, quant.F32, quanttest.FloatBytes(y), n)
			for _, k := range kernelSets() {
				if got := tt.f(k); math.Abs(float64(got)-want) > 1e-6*mag {
					t.Errorf("%s n=%d (%s) = %.7g, want %.7g", tt.name, n, k.name, got, want)
				}
				if got := k.dot(tt.typ, tt.w, quanttest.FloatBytes(y), n); math.Abs(float64(got)-want) > 1e-6*mag {
					t.Errorf("Dot(%s) n=%d (%s) = %.7g, want %.7g", tt.typ, n, k.name, got, want)
				}
			}
		}
	}
}

func TestMatVec(t *testing.T) {
	r := quanttest.Rand(8)
	const rows, n = 5, 512
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K, quant.Q8_0, quant.F32} {
		rb := mustRowBytes(t, typ, n)
		x := quanttest.Gaussian(r, rows*n, 1)
		w := make([]byte, rows*rb)
		if err := quant.QuantizeRow(typ, x, w); err != nil {
			t.Fatal(err)
		}
		a := make([]byte, mustRowBytes(t, VecDotType(typ), n))
		if err := quant.QuantizeRow(VecDotType(typ), quanttest.Gaussian(r, n, 1), a); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, rows)
		if err := active.matVec(typ, w, a, n, out); err != nil {
			t.Fatal(err)
		}
		for i := range out {
			if want := active.dot(typ, w[i*rb:(i+1)*rb], a, n); out[i] != want {
				t.Errorf("%s row %d = %g, want %g", typ, i, out[i], want)
			}
		}
	}

	a := make([]byte, 292)
	tests := []struct {
		name    string
		typ     quant.Type
		w       int
		a       []byte
		n, rows int
		wantErr string
	}{
		{"unsupported", quant.Q2_K, 84, a, 256, 1, "no dot product for Q2_K"},
		{"partial block", quant.Q4_K, 144, a, 200, 1, "not a multiple"},
		{"weight size", quant.Q4_K, 144, a, 256, 2, "2 rows of 256 Q4_K elements take 288 bytes, got 144"},
		{"activation size", quant.Q4_K, 144, a[:200], 256, 1, "activation"},
		{"activation in the wrong format", quant.Q8_0, 34 * 8, a, 256, 1, "activation: 256 Q8_0 elements take 272 bytes, got 292"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := active.matVec(tt.typ, make([]byte, tt.w), tt.a, tt.n, make([]float32, tt.rows))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("MatVec = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDotPanicsOnBadLengths(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"Q4_K short weights", func() { active.dotQ4KQ8K(make([]byte, 143), make([]byte, 292), 256) }},
		{"Q6_K short activation", func() { active.dotQ6KQ8K(make([]byte, 210), make([]byte, 291), 256) }},
		{"Q5_K partial block", func() { active.dotQ5KQ8K(make([]byte, 176), make([]byte, 292), 255) }},
		{"Q8_0 long weights", func() { active.dotQ8_0Q8_0(make([]byte, 35), make([]byte, 34), 32) }},
		{"Q4_0 negative n", func() { active.dotQ4_0Q8_0(nil, nil, -32) }},
		{"F32 lengths", func() { DotF32(make([]float32, 3), make([]float32, 4)) }},
		{"F16 lengths", func() { active.dotF16F32(make([]byte, 3), make([]float32, 2)) }},
		{"BF16 lengths", func() { active.dotBF16F32(make([]byte, 6), make([]float32, 2)) }},
		{"Dot unsupported", func() { active.dot(quant.Q2_K, make([]byte, 84), make([]byte, 292), 256) }},
		{"Dot F32 bytes", func() { active.dot(quant.F32, make([]byte, 8), make([]byte, 4), 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "kernels: ") {
					t.Errorf("recovered %v, want a kernels panic", r)
				}
			}()
			tt.f()
		})
	}
}

func TestVecDotType(t *testing.T) {
	want := map[quant.Type]quant.Type{quant.Q4_K: quant.Q8_K, quant.Q5_K: quant.Q8_K, quant.Q6_K: quant.Q8_K, quant.Q8_0: quant.Q8_0, quant.Q4_0: quant.Q8_0, quant.F32: quant.F32, quant.F16: quant.F32, quant.BF16: quant.F32}
	for w, a := range want {
		if got := VecDotType(w); got != a {
			t.Errorf("VecDotType(%s) = %s, want %s", w, got, a)
		}
	}
}

// Benchmarks: one weight row against one activation row, at the model's two row lengths (2048 for the
// attention and up/gate projections, 11008 for the down projection). The MB/s column is weight bytes read.
func BenchmarkDot(b *testing.B) {
	r := quanttest.Rand(1)
	for _, typ := range []quant.Type{quant.Q4_K, quant.Q6_K, quant.Q5_K, quant.Q8_0, quant.Q4_0, quant.F32, quant.F16} {
		for _, n := range []int{2048, 11008} {
			if n%typ.BlockSize() != 0 {
				continue
			}
			w := make([]byte, mustRowBytes(b, typ, n))
			a := make([]byte, mustRowBytes(b, VecDotType(typ), n))
			if err := quant.QuantizeRow(typ, quanttest.Gaussian(r, n, 1), w); err != nil {
				b.Fatal(err)
			}
			if err := quant.QuantizeRow(VecDotType(typ), quanttest.Gaussian(r, n, 1), a); err != nil {
				b.Fatal(err)
			}
			for _, k := range kernelSets() {
				dot := k.dotFunc(typ)
				b.Run(fmt.Sprintf("%s/n=%d/%s", typ, n, k.name), func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					var sink float32
					for b.Loop() {
						sink += dot(w, a, n)
					}
					_ = sink
				})
			}
		}
	}
}

func BenchmarkQuantizeRowQ8K(b *testing.B) {
	x := quanttest.Gaussian(quanttest.Rand(2), 11008, 1)
	dst := make([]byte, 11008/256*292)
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		active.quantizeRowQ8K(x, dst)
	}
}

// TestDot8 checks the SWAR products exactly against scalar sums, at the extremes of their ranges.
func TestDot8(t *testing.T) {
	r := quanttest.Rand(13)
	scalar := func(q, a uint64) int32 {
		var s int32
		for k := 0; k < 64; k += 8 {
			s += int32(uint8(q>>k)) * int32(int8(a>>k))
		}
		return s
	}
	fill := func(b byte) uint64 { return uint64(b) * lowBits }
	for _, tt := range []struct {
		name string
		f    func(q, a uint64) int32
		qmax uint64
	}{{"dot8", dot8, 31}, {"dot8Wide", dot8Wide, 63}} {
		cases := [][2]uint64{
			{fill(byte(tt.qmax)), fill(0x80)}, {fill(byte(tt.qmax)), fill(0x7f)}, {0, fill(0x80)},
			{fill(byte(tt.qmax)), 0x807f807f807f807f}, {fill(1), fill(0xff)},
		}
		for i := 0; i < 100000; i++ {
			var q uint64
			for k := 0; k < 64; k += 8 {
				q |= r.Uint64N(tt.qmax+1) << k
			}
			a := r.Uint64()
			if i%3 == 0 { // only the extreme activations -128, 127, -1 and 0, and q at 0 or its maximum
				a, q = 0, 0
				for k := 0; k < 64; k += 8 {
					a |= uint64([]byte{0x80, 0x7f, 0xff, 0x00}[r.IntN(4)]) << k
					q |= tt.qmax * r.Uint64N(2) << k
				}
			}
			cases = append(cases, [2]uint64{q, a})
		}
		for _, c := range cases {
			if got, want := tt.f(c[0], c[1]), scalar(c[0], c[1]); got != want {
				t.Fatalf("%s(%#016x, %#016x) = %d, want %d", tt.name, c[0], c[1], got, want)
			}
		}
	}
}
