package quant

import "math"

// F16ToF32 converts an IEEE 754 binary16 value to float32. The conversion is exact: subnormals, infinities
// and NaN payloads all survive.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	rest := uint32(h&0x7fff) << 13
	if rest >= 0x1f<<23 { // exponent all ones: infinity or NaN; keep the payload
		return math.Float32frombits(sign | 0x7f800000 | rest)
	}
	// Reading the half's exponent and mantissa as a float32 and scaling by 2^112 rebiases the exponent
	// (127-15) and turns half subnormals into float32 normals in one exact multiplication.
	return math.Float32frombits(sign | math.Float32bits(math.Float32frombits(rest)*0x1p112))
}

// F32ToF16 converts a float32 to IEEE 754 binary16, rounding to nearest with ties to even. Values too large
// for a half become ±Inf, values too small become ±0 or a half subnormal, and NaN stays a (quiet) NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff

	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13) // quiet bit set so a payload of zero still reads as NaN
	}
	e := exp - 127 + 15 // the half's biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// The result is a half subnormal (or zero): the value in units of 2^-24 is full >> shift.
		shift := uint(14 - e)
		if shift > 24 { // below half the smallest subnormal: rounds to zero (float32 subnormals land here too)
			return sign
		}
		full := mant | 0x800000
		q := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && q&1 == 1 {
			q++ // may carry into the smallest normal, which is the right answer
		}
		return sign | uint16(q)
	}
	h := sign | uint16(e)<<10 | uint16(mant>>13)
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry out of the mantissa bumps the exponent, up to Inf, as rounding should
	}
	return h
}

// BF16ToF32 converts a bfloat16 (the high 16 bits of a float32) to float32. It is exact.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f32ToBF16 converts a float32 to bfloat16, rounding to nearest with ties to even, as ggml does. NaN stays a
// quiet NaN rather than rounding into Inf.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
