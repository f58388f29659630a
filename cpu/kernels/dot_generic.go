package kernels

import (
	"encoding/binary"
	"math"
	"math/bits"

	"smolchat/model/quant"
)

// The portable kernels. Each super-block's integer sums are exact (int32), and only the per-block scale
// factors are float, so these and the assembly kernels differ only in the order of the float additions.
// The loops index fixed-length reslices (x[i*size:][:size]) so the compiler drops the bounds checks.
//
// Go has no portable SIMD, so the K-quant kernels multiply within 64-bit words (SWAR): dot8 gets eight
// products from two 64-bit multiplications instead of eight scalar ones.

const (
	lanesEven = 0x00ff00ff00ff00ff // the even bytes of a word, as four 16-bit lanes
	lanesSign = 0x0080008000800080 // the sign bits of those bytes
	nibbles   = 0x0f0f0f0f0f0f0f0f
	lowBits   = 0x0101010101010101
	twoBits   = 0x0303030303030303
)

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// dot8 returns Σ_k q[k]·a[k] over the eight bytes of q (unsigned, each < 32) and a (signed), packed
// little-endian. Spread into 16-bit lanes, the even bytes of q are the coefficients of a polynomial in
// x = 2^16, and so are the odd bytes of a in reverse order; the x³ coefficient of their product is the
// sum of the four matching products. The odd bytes of q times the even bytes of reversed a add the
// other four. Negative a lanes borrow from their neighbours, which is still the right polynomial modulo
// 2^64; rounding (adding 2^47) before the shift undoes the borrow that the lower coefficients pass up.
// The x³ coefficient stays within int16 (8·31·128 < 2^15) and the lower ones within ±2^47.
func dot8(q, a uint64) int32 {
	r := bits.ReverseBytes64(a)
	re, ro := r&lanesEven, r>>8&lanesEven
	re -= (re & lanesSign) << 1 // sign-extend each lane: b - 256 when b ≥ 128
	ro -= (ro & lanesSign) << 1
	p := (q&lanesEven)*ro + (q>>8&lanesEven)*re
	return int32(int64(p+1<<47) >> 48)
}

// dot8Wide is dot8 for q up to 63 (Q6_K), extracting the two halves separately so that neither x³
// coefficient can overflow (4·63·128 < 2^15).
func dot8Wide(q, a uint64) int32 {
	r := bits.ReverseBytes64(a)
	re, ro := r&lanesEven, r>>8&lanesEven
	re -= (re & lanesSign) << 1
	ro -= (ro & lanesSign) << 1
	return int32(int64((q&lanesEven)*ro+1<<47)>>48) + int32(int64((q>>8&lanesEven)*re+1<<47)>>48)
}

func f16At(b []byte) float32 { return quant.F16ToF32(binary.LittleEndian.Uint16(b)) }

func f32At(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

func i16At(b []byte) int32 { return int32(int16(binary.LittleEndian.Uint16(b))) }

// minsDotBsums is Σ_s m[s]·(bsums[2s]+bsums[2s+1]): the Q8_K block sums over each 32-element sub-block,
// weighted by the sub-block mins. It carries the "- dmin·m" half of Q4_K/Q5_K without touching the quants.
func minsDotBsums(m *[8]uint8, bs []byte) int32 {
	bs = bs[:32]
	var s int32
	for j := 0; j < 8; j++ {
		s += int32(m[j]) * (i16At(bs[4*j:]) + i16At(bs[4*j+2:]))
	}
	return s
}

func dotQ4KQ8KGeneric(w, a []byte, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		x := w[i*quant.Q4KBytes:][:quant.Q4KBytes]
		y := a[i*quant.Q8KBytes:][:quant.Q8KBytes]
		dy := f32At(y)
		d, dmin := f16At(x)*dy, f16At(x[2:])*dy
		sc, m := quant.UnpackKScales(x[4:16])
		qs, q8 := x[16:144], y[4:260]
		var sumi int32
		for g := 0; g < 4; g++ {
			// 32 bytes: low nibbles are sub-block 2g (activations lo), high nibbles sub-block 2g+1 (hi).
			q := qs[32*g:][:32]
			lo, hi := q8[64*g:][:32], q8[64*g+32:][:32]
			q0, q1, q2, q3 := le64(q[0:8]), le64(q[8:16]), le64(q[16:24]), le64(q[24:32])
			s0 := dot8(q0&nibbles, le64(lo[0:8])) + dot8(q1&nibbles, le64(lo[8:16])) +
				dot8(q2&nibbles, le64(lo[16:24])) + dot8(q3&nibbles, le64(lo[24:32]))
			s1 := dot8(q0>>4&nibbles, le64(hi[0:8])) + dot8(q1>>4&nibbles, le64(hi[8:16])) +
				dot8(q2>>4&nibbles, le64(hi[16:24])) + dot8(q3>>4&nibbles, le64(hi[24:32]))
			sumi += int32(sc[2*g])*s0 + int32(sc[2*g+1])*s1
		}
		sum += d*float32(sumi) - dmin*float32(minsDotBsums(&m, y[260:292]))
	}
	return sum
}

func dotQ5KQ8KGeneric(w, a []byte, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		x := w[i*quant.Q5KBytes:][:quant.Q5KBytes]
		y := a[i*quant.Q8KBytes:][:quant.Q8KBytes]
		dy := f32At(y)
		d, dmin := f16At(x)*dy, f16At(x[2:])*dy
		sc, m := quant.UnpackKScales(x[4:16])
		qh, qs, q8 := x[16:48], x[48:176], y[4:260]
		h0, h1, h2, h3 := le64(qh[0:8]), le64(qh[8:16]), le64(qh[16:24]), le64(qh[24:32])
		var sumi int32
		for g := 0; g < 4; g++ {
			// As Q4_K, with the fifth bit of element l of sub-block s in bit s of qh[l].
			q := qs[32*g:][:32]
			lo, hi := q8[64*g:][:32], q8[64*g+32:][:32]
			q0, q1, q2, q3 := le64(q[0:8]), le64(q[8:16]), le64(q[16:24]), le64(q[24:32])
			sl, sh := uint(2*g), uint(2*g+1)
			s0 := dot8(q0&nibbles|(h0>>sl&lowBits)<<4, le64(lo[0:8])) +
				dot8(q1&nibbles|(h1>>sl&lowBits)<<4, le64(lo[8:16])) +
				dot8(q2&nibbles|(h2>>sl&lowBits)<<4, le64(lo[16:24])) +
				dot8(q3&nibbles|(h3>>sl&lowBits)<<4, le64(lo[24:32]))
			s1 := dot8(q0>>4&nibbles|(h0>>sh&lowBits)<<4, le64(hi[0:8])) +
				dot8(q1>>4&nibbles|(h1>>sh&lowBits)<<4, le64(hi[8:16])) +
				dot8(q2>>4&nibbles|(h2>>sh&lowBits)<<4, le64(hi[16:24])) +
				dot8(q3>>4&nibbles|(h3>>sh&lowBits)<<4, le64(hi[24:32]))
			sumi += int32(sc[2*g])*s0 + int32(sc[2*g+1])*s1
		}
		sum += d*float32(sumi) - dmin*float32(minsDotBsums(&m, y[260:292]))
	}
	return sum
}

// dotQ6KQ8KGeneric works on the unsigned 6-bit codes q and removes the offset afterwards:
// Σ (q-32)·a = Σ q·a - 32·bsum, with the Q8_K block sums of each 16-element scale group.
func dotQ6KQ8KGeneric(w, a []byte, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		x := w[i*quant.Q6KBytes:][:quant.Q6KBytes]
		y := a[i*quant.Q8KBytes:][:quant.Q8KBytes]
		d := f16At(x[208:]) * f32At(y)
		sc := x[192:208]
		bs := y[260:292]
		var sumi int32
		for n := 0; n < 2; n++ {
			ql := x[64*n:][:64]
			qh := x[128+32*n:][:32]
			q8 := y[4+128*n:][:128]
			for half := 0; half < 2; half++ {
				// Elements l = 16·half … 16·half+15 of each quarter: scale groups 8n+half+{0,2,4,6}.
				o := 16 * half
				var s1, s2, s3, s4 int32
				for c := o; c < o+16; c += 8 {
					l1, l2, h := le64(ql[c:][:8]), le64(ql[32+c:][:8]), le64(qh[c:][:8])
					s1 += dot8Wide(l1&nibbles|(h&twoBits)<<4, le64(q8[c:][:8]))
					s2 += dot8Wide(l2&nibbles|(h>>2&twoBits)<<4, le64(q8[32+c:][:8]))
					s3 += dot8Wide(l1>>4&nibbles|(h>>4&twoBits)<<4, le64(q8[64+c:][:8]))
					s4 += dot8Wide(l2>>4&nibbles|(h>>6&twoBits)<<4, le64(q8[96+c:][:8]))
				}
				g := 8*n + half
				sumi += int32(int8(sc[g]))*(s1-32*i16At(bs[2*g:])) +
					int32(int8(sc[g+2]))*(s2-32*i16At(bs[2*g+4:])) +
					int32(int8(sc[g+4]))*(s3-32*i16At(bs[2*g+8:])) +
					int32(int8(sc[g+6]))*(s4-32*i16At(bs[2*g+12:]))
			}
		}
		sum += d * float32(sumi)
	}
	return sum
}

func dotQ8_0Q8_0Generic(w, a []byte, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		x := w[i*quant.Q8_0Bytes:][:quant.Q8_0Bytes]
		y := a[i*quant.Q8_0Bytes:][:quant.Q8_0Bytes]
		qx, qy := x[2:34], y[2:34]
		var s0, s1 int32
		for l := 0; l < 32; l += 2 {
			s0 += int32(int8(qx[l])) * int32(int8(qy[l]))
			s1 += int32(int8(qx[l+1])) * int32(int8(qy[l+1]))
		}
		sum += float32(s0+s1) * (f16At(x) * f16At(y))
	}
	return sum
}

func dotQ4_0Q8_0Generic(w, a []byte, nb int) float32 {
	var sum float32
	for i := 0; i < nb; i++ {
		x := w[i*quant.Q4_0Bytes:][:quant.Q4_0Bytes]
		y := a[i*quant.Q8_0Bytes:][:quant.Q8_0Bytes]
		qx := x[2:18]
		lo, hi := y[2:18], y[18:34]
		var s int32
		for l, b := range qx {
			s += (int32(b&0xf)-8)*int32(int8(lo[l])) + (int32(b>>4)-8)*int32(int8(hi[l]))
		}
		sum += float32(s) * (f16At(x) * f16At(y))
	}
	return sum
}
