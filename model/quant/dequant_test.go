package quant

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// kScaleBytes packs, by hand, scales sc = [1 2 3 4 49 15 20 32] and mins m = [5 6 7 8 34 3 53 30]:
//
//	bytes 0-3  = sc[0..3] | top two bits of sc[4..7] in bits 6-7: 0xC1 (1, 3<<6), 0x02, 0x43 (3, 1<<6), 0x84 (4, 2<<6)
//	bytes 4-7  = m[0..3]  | top two bits of m[4..7]  in bits 6-7: 0x85 (5, 2<<6), 0x06, 0xC7 (7, 3<<6), 0x48 (8, 1<<6)
//	bytes 8-11 = low nibbles of sc[4..7] | low nibbles of m[4..7] << 4: 0x21, 0x3F, 0x54, 0xE0
//
// so sc[4] = 1 | 3<<4 = 49 and m[4] = 2 | 2<<4 = 34 (from byte 4, not byte 0, whose top bits are 3), and
// m[6] = 5 | 3<<4 = 53 (byte 6; byte 2 would give 21).
var kScaleBytes = []byte{0xC1, 0x02, 0x43, 0x84, 0x85, 0x06, 0xC7, 0x48, 0x21, 0x3F, 0x54, 0xE0}

func TestKScales(t *testing.T) {
	sc, m := UnpackKScales(kScaleBytes)
	if want := [8]uint8{1, 2, 3, 4, 49, 15, 20, 32}; sc != want {
		t.Errorf("scales = %v, want %v", sc, want)
	}
	if want := [8]uint8{5, 6, 7, 8, 34, 3, 53, 30}; m != want {
		t.Errorf("mins = %v, want %v", m, want)
	}
	var p [12]byte
	PackKScales(p[:], &sc, &m)
	if string(p[:]) != string(kScaleBytes) {
		t.Errorf("PackKScales = % x, want % x", p, kScaleBytes)
	}
}

// le16 puts a little-endian uint16 at b.
func le16(b []byte, v uint16) { binary.LittleEndian.PutUint16(b, v) }

// handQ4K is a Q4_K block with d = 0.5, dmin = 0.25, the scales above and qs[i] = (37i+11) mod 256.
func handQ4K() []byte {
	b := make([]byte, 144)
	le16(b[0:], 0x3800) // 0.5
	le16(b[2:], 0x3400) // 0.25
	copy(b[4:], kScaleBytes)
	for i := 0; i < 128; i++ {
		b[16+i] = byte(37*i + 11)
	}
	return b
}

// handQ5K is handQ4K's layout with qh[i] = (91i+5) mod 256 inserted before qs.
func handQ5K() []byte {
	b := make([]byte, 176)
	le16(b[0:], 0x3800)
	le16(b[2:], 0x3400)
	copy(b[4:], kScaleBytes)
	for i := 0; i < 32; i++ {
		b[16+i] = byte(91*i + 5)
	}
	for i := 0; i < 128; i++ {
		b[48+i] = byte(37*i + 11)
	}
	return b
}

// handQ6K is a Q6_K block with ql[i] = (29i+3), qh[i] = (53i+17) (mod 256), scales 7, -14, 21, ..., -112
// and d = 0.125.
func handQ6K() []byte {
	b := make([]byte, 210)
	for i := 0; i < 128; i++ {
		b[i] = byte(29*i + 3)
	}
	for i := 0; i < 64; i++ {
		b[128+i] = byte(53*i + 17)
	}
	for g := 0; g < 16; g++ {
		s := 7 * (g + 1)
		if g%2 == 1 {
			s = -s
		}
		b[192+g] = byte(int8(s))
	}
	le16(b[208:], 0x3000) // 0.125
	return b
}

// TestDequantizeKnownAnswers checks single elements of hand-built blocks against values worked out from
// the format description (element → sub-block, nibble or 6-bit code, scale and min). For example Q4_K
// element 128 is sub-block 4, low nibble of qs[64] = 75 & 15 = 11: 0.5·49·11 − 0.25·34 = 261, and
// Q6_K element 170 is half 1, quarter 1, l = 10: ql[64+32+10] = 5, qh[32+10] = 0xC3, so
// q = (5 & 15) | ((0xC3 >> 2 & 3) << 4) = 5, in scale group 170/16 = 10 (77): 0.125·77·(5 − 32) = −259.875.
func TestDequantizeKnownAnswers(t *testing.T) {
	q8_0 := make([]byte, 34)
	le16(q8_0, 0xb800) // -0.5
	for i := 0; i < 32; i++ {
		q8_0[2+i] = byte(int8(i*8 - 128))
	}
	q4_0 := make([]byte, 18)
	le16(q4_0, 0x4000) // 2
	for i := 0; i < 16; i++ {
		q4_0[2+i] = byte(i | (15-i)<<4)
	}
	q8k := make([]byte, 292)
	binary.LittleEndian.PutUint32(q8k, math.Float32bits(0.25))
	for i := 0; i < 256; i++ {
		q8k[4+i] = byte(int8(i - 128))
	}

	tests := []struct {
		typ  Type
		src  []byte
		n    int
		want map[int]float32 // element → value
	}{
		{Q8_0, q8_0, 32, map[int]float32{0: 64, 1: 60, 31: -60}},                 // -0.5 · (8i-128)
		{Q4_0, q4_0, 32, map[int]float32{0: -16, 5: -6, 16: 14, 21: 4, 31: -16}}, // 2·(q-8): lo i, hi 15-i
		{Q8_K, q8k, 256, map[int]float32{0: -32, 128: 0, 255: 31.75}},
		{Q4_K, handQ4K(), 256, map[int]float32{
			0: 4.25, 31: 1.75, 32: -1.5, 63: 6.5, 71: 19.25, 103: 18, 128: 261, 161: 51.75, 222: -3.25, 255: 88.5}},
		{Q5_K, handQ5K(), 256, map[int]float32{
			0: 12.25, 31: 1.75, 32: -1.5, 63: 22.5, 71: 19.25, 103: 18, 128: 261, 161: 171.75, 222: -3.25, 255: 88.5}},
		{Q6_K, handQ6K(), 256, map[int]float32{
			0: -11.375, 17: 0, 37: 10.5, 50: -45.5, 73: 0, 95: -126, 96: -134.75, 127: 98,
			128: -102.375, 145: 0, 170: -259.875, 200: -159.25, 230: 328.125, 255: 364}},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			got := make([]float32, tt.n)
			if err := DequantizeRow(tt.typ, tt.src, got); err != nil {
				t.Fatal(err)
			}
			for e, want := range tt.want {
				if got[e] != want {
					t.Errorf("element %d = %g, want %g", e, got[e], want)
				}
			}
		})
	}
}

func TestDequantizeFloats(t *testing.T) {
	want := []float32{1, -2.5, 0.333251953125, 65504}
	f32 := make([]byte, 16)
	f16 := make([]byte, 8)
	bf16 := make([]byte, 8)
	for i, v := range want {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(v))
		le16(f16[2*i:], F32ToF16(v))
		le16(bf16[2*i:], f32ToBF16(v))
	}
	for _, tt := range []struct {
		typ Type
		src []byte
		tol float32
	}{{F32, f32, 0}, {F16, f16, 0}, {BF16, bf16, 1.0 / 128}} {
		got := make([]float32, len(want))
		if err := DequantizeRow(tt.typ, tt.src, got); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if d := got[i] - want[i]; d > tt.tol*abs32(want[i]) || -d > tt.tol*abs32(want[i]) {
				t.Errorf("%s element %d = %g, want %g", tt.typ, i, got[i], want[i])
			}
		}
	}
}

func TestDequantizeErrors(t *testing.T) {
	tests := []struct {
		name    string
		typ     Type
		src     int
		dst     int
		wantErr string
	}{
		{"unsupported type", Q2_K, 84, 256, "unsupported"},
		{"unknown type", Type(99), 4, 1, "unsupported"},
		{"partial block", Q4_K, 144, 200, "not a multiple of the block size"},
		{"short source", Q6_K, 209, 256, "take 210 bytes, got 209"},
		{"long source", Q8_0, 35, 32, "take 34 bytes, got 35"},
		{"f32 length", F32, 7, 2, "take 8 bytes, got 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DequantizeRow(tt.typ, make([]byte, tt.src), make([]float32, tt.dst))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DequantizeRow = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSupported(t *testing.T) {
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K} {
		if !Supported(typ) {
			t.Errorf("%s: not Supported", typ)
		}
	}
	// Q8_K has a dequantizer, but is an activation format only.
	for _, typ := range []Type{Q4_1, Q5_0, Q5_1, Q8_1, Q2_K, Q3_K, Q8_K, Type(99)} {
		if Supported(typ) {
			t.Errorf("%s: Supported", typ)
		}
	}
}
