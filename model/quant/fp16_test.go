package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"one third", 1.0 / 3, 0x3555},
		{"largest half", 65504, 0x7bff},
		{"rounds down to largest half", 65519, 0x7bff},
		{"rounds up to infinity", 65520, 0x7c00},
		{"too large", 1e10, 0x7c00},
		{"too large negative", -1e10, 0xfc00},
		{"infinity", float32(math.Inf(1)), 0x7c00},
		{"minus infinity", float32(math.Inf(-1)), 0xfc00},
		{"smallest normal", 0x1p-14, 0x0400},
		{"largest subnormal", 0x3ffp-24, 0x03ff},
		{"smallest subnormal", 0x1p-24, 0x0001},
		{"negative smallest subnormal", -0x1p-24, 0x8001},
		{"half the smallest subnormal ties to zero", 0x1p-25, 0x0000},
		{"just above half the smallest subnormal", 0x1.000002p-25, 0x0001},
		{"1.5 smallest subnormals ties to 2", 0x3p-25, 0x0002},
		{"2.5 smallest subnormals ties to 2", 0x5p-25, 0x0002},
		{"subnormal rounding carries into the smallest normal", 0x7ffp-25, 0x0400},
		{"float32 subnormal", 0x1p-140, 0x0000},
		{"tie rounds to even (down)", 1 + 0x1p-11, 0x3c00},
		{"tie rounds to even (up)", 1 + 0x3p-11, 0x3c02},
		{"above tie rounds up", math.Float32frombits(0x3f801001), 0x3c01},
		{"mantissa carry bumps exponent", 2 - 0x1p-12, 0x4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := F32ToF16(tt.in); got != tt.want {
				t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}

func TestF32ToF16NaN(t *testing.T) {
	for _, bits := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff} {
		h := F32ToF16(math.Float32frombits(bits))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("F32ToF16(NaN %#08x) = %#04x, not a NaN", bits, h)
		}
		if h>>15 != uint16(bits>>31) {
			t.Errorf("F32ToF16(NaN %#08x) = %#04x lost the sign", bits, h)
		}
		if f := F16ToF32(h); !math.IsNaN(float64(f)) {
			t.Errorf("F16ToF32(%#04x) = %g, want NaN", h, f)
		}
	}
}

// TestF16ToF32All checks every half against the value its fields denote, computed in float64.
func TestF16ToF32All(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		sign, exp, mant := h>>15, int(h>>10&0x1f), float64(h&0x3ff)
		var want float64
		switch {
		case exp == 0x1f && mant != 0:
			if got := F16ToF32(h); !math.IsNaN(float64(got)) {
				t.Fatalf("F16ToF32(%#04x) = %g, want NaN", h, got)
			}
			continue
		case exp == 0x1f:
			want = math.Inf(1)
		case exp == 0:
			want = math.Ldexp(mant, -24)
		default:
			want = math.Ldexp(1+mant/1024, exp-15)
		}
		if sign == 1 {
			want = -want
		}
		got := F16ToF32(h)
		if float64(got) != want || math.Signbit(float64(got)) != (sign == 1) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
		if back := F32ToF16(got); back != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back)
		}
	}
}

// TestF32ToF16Nearest checks on random floats across the half range that the result is the nearest half,
// and the even one on a tie.
func TestF32ToF16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26)) // |f| from ~2^-27 to 2^17
		if i%7 == 0 {                                            // an exact tie between two neighbouring halves
			k := uint16(r.IntN(0x7bff))
			f = (F16ToF32(k) + F16ToF32(k+1)) / 2
		}
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			if math.Abs(float64(f)) < 65520 {
				t.Fatalf("F32ToF16(%g) overflowed to %g", f, got)
			}
			continue
		}
		err := math.Abs(got - float64(f))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			other := math.Abs(float64(F16ToF32(nb)) - float64(f))
			if other < err || other == err && h&1 == 1 {
				t.Fatalf("F32ToF16(%g) = %#04x (%g), but %#04x (%g) is nearer or the even tie", f, h, got, nb, F16ToF32(nb))
			}
		}
	}
}

func TestBF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one", 1, 0x3f80},
		{"minus two", -2, 0xc000},
		{"exact", 0x1.fep0, 0x3fff},
		{"tie rounds to even (down)", math.Float32frombits(0x3f808000), 0x3f80},
		{"tie rounds to even (up)", math.Float32frombits(0x3f818000), 0x3f82},
		{"above tie", math.Float32frombits(0x3f808001), 0x3f81},
		{"rounds up to infinity", math.MaxFloat32, 0x7f80},
		{"infinity", float32(math.Inf(1)), 0x7f80},
		{"subnormal", math.Float32frombits(0x00010000), 0x0001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f32ToBF16(tt.in); got != tt.want {
				t.Errorf("f32ToBF16(%g) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
	if h := f32ToBF16(float32(math.NaN())); !math.IsNaN(float64(BF16ToF32(h))) {
		t.Errorf("f32ToBF16(NaN) = %#04x, not a NaN", h)
	}
	// A NaN whose payload sits only in the low 16 bits must not round into Inf.
	if h := f32ToBF16(math.Float32frombits(0x7f800001)); !math.IsNaN(float64(BF16ToF32(h))) {
		t.Errorf("f32ToBF16(NaN 0x7f800001) = %#04x, not a NaN", h)
	}
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) = %#08x", h, math.Float32bits(f))
		}
		if !math.IsNaN(float64(f)) && f32ToBF16(f) != h {
			t.Fatalf("f32ToBF16(BF16ToF32(%#04x)) = %#04x", h, f32ToBF16(f))
		}
	}
}
