package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The bytes of one block of the types this project computes with, and the offsets of their fields
// (ggml-common.h). They are constants, rather than only TypeSize, for the kernels (cpu/kernels): a
// reslice to a constant length drops the bounds checks of the loop over a block.
const (
	Q8_0Bytes = 34  // d f16 @0, qs[32] int8 @2
	Q4_0Bytes = 18  // d f16 @0, qs[16] @2 (element j in the low nibble of qs[j], j+16 in the high one)
	Q4KBytes  = 144 // d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16
	Q5KBytes  = 176 // d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48
	Q6KBytes  = 210 // ql[128] @0, qh[64] @128, scales[16] int8 @192, d f16 @208
	Q8KBytes  = 292 // d f32 @0, qs[256] int8 @4, bsums[16] int16 @260
)

// Supported reports whether t is a weight type this project loads: one that has a dequantizer and is
// not only an activation format. These are the weight types of llama.cpp's common GGUF files: F32, F16,
// BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K. Each backend has kernels for its own list of them (the CPU for
// all, tested in cpu/kernels).
func Supported(t Type) bool { i := infos[t]; return i.dequantize != nil && !i.activation }

// DequantizeRow expands the blocks in src to len(dst) float32 values. src must hold exactly len(dst)
// elements of type t. Besides the Supported types it accepts Q8_K, the activation format of the K-quant dot
// products.
func DequantizeRow(t Type, src []byte, dst []float32) error {
	dq := infos[t].dequantize
	if dq == nil {
		return fmt.Errorf("dequantize %s: unsupported tensor type", t)
	}
	if err := checkRow(t, len(dst), len(src)); err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	dq(src, dst)
	return nil
}

func dequantF32(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func dequantF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func dequantBF16(src []byte, dst []float32) {
	for i := range dst {
		dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// checkRow verifies that nbytes is exactly the encoding of n elements of type t.
func checkRow(t Type, n, nbytes int) error {
	want, err := t.RowBytes(n)
	if err != nil {
		return err
	}
	if nbytes != want {
		return fmt.Errorf("%d %s elements take %d bytes, got %d", n, t, want, nbytes)
	}
	return nil
}

func f16At(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

func f32At(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func dequantQ8_0(x []byte, y []float32) {
	d := f16At(x)
	qs := x[2:34]
	y = y[:len(qs)]
	for i, q := range qs {
		y[i] = d * float32(int8(q))
	}
}

func dequantQ4_0(x []byte, y []float32) {
	d := f16At(x)
	qs := x[2:18]
	lo, hi := y[:16], y[16:32]
	for i, q := range qs {
		lo[i] = d * float32(int32(q&0xf)-8)
		hi[i] = d * float32(int32(q>>4)-8)
	}
}

// UnpackKScales unpacks the twelve packed bytes of a Q4_K/Q5_K super-block into its eight 6-bit sub-block scales
// and mins (ggml's get_scale_min_k4). Sub-blocks 0-3 keep theirs in the low 6 bits of bytes 0-3 (scale) and
// 4-7 (min). Sub-blocks 4-7 keep the low 4 bits in byte s+4 (scale low nibble, min high nibble) and the top
// 2 bits in bits 6-7 of byte s-4 (scale) and byte s (min).
func UnpackKScales(p []byte) (sc, m [8]uint8) {
	p = p[:12]
	for s := 0; s < 4; s++ {
		sc[s] = p[s] & 63
		m[s] = p[s+4] & 63
	}
	for s := 4; s < 8; s++ {
		sc[s] = p[s+4]&0xf | p[s-4]>>6<<4
		m[s] = p[s+4]>>4 | p[s]>>6<<4
	}
	return sc, m
}

func dequantQ4K(x []byte, y []float32) {
	d, dmin := f16At(x), f16At(x[2:])
	sc, m := UnpackKScales(x[4:16])
	qs := x[16:144]
	for g := 0; g < 4; g++ {
		q := qs[32*g:][:32]
		d1, m1 := d*float32(sc[2*g]), dmin*float32(m[2*g])
		d2, m2 := d*float32(sc[2*g+1]), dmin*float32(m[2*g+1])
		lo, hi := y[64*g:][:32], y[64*g+32:][:32]
		for l, b := range q {
			lo[l] = d1*float32(b&0xf) - m1
			hi[l] = d2*float32(b>>4) - m2
		}
	}
}

func dequantQ5K(x []byte, y []float32) {
	d, dmin := f16At(x), f16At(x[2:])
	sc, m := UnpackKScales(x[4:16])
	qh := x[16:48]
	qs := x[48:176]
	for g := 0; g < 4; g++ {
		q := qs[32*g:][:32]
		d1, m1 := d*float32(sc[2*g]), dmin*float32(m[2*g])
		d2, m2 := d*float32(sc[2*g+1]), dmin*float32(m[2*g+1])
		lo, hi := y[64*g:][:32], y[64*g+32:][:32]
		h := qh[:32]
		for l, b := range q {
			lo[l] = d1*float32(b&0xf|(h[l]>>(2*g)&1)<<4) - m1
			hi[l] = d2*float32(b>>4|(h[l]>>(2*g+1)&1)<<4) - m2
		}
	}
}

func dequantQ6K(x []byte, y []float32) {
	d := f16At(x[208:])
	for n := 0; n < 2; n++ {
		ql := x[64*n:][:64]
		qh := x[128+32*n:][:32]
		sc := x[192+8*n:][:8]
		out := y[128*n:][:128]
		for l := 0; l < 32; l++ {
			is := l / 16
			h := qh[l]
			q1 := int32(ql[l]&0xf|(h&3)<<4) - 32
			q2 := int32(ql[l+32]&0xf|(h>>2&3)<<4) - 32
			q3 := int32(ql[l]>>4|(h>>4&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|(h>>6)<<4) - 32
			out[l] = d * float32(int8(sc[is])) * float32(q1)
			out[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			out[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			out[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

func dequantQ8K(x []byte, y []float32) {
	d := f32At(x)
	qs := x[4:260]
	y = y[:len(qs)]
	for i, q := range qs {
		y[i] = d * float32(int8(q))
	}
}
