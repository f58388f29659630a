package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// QuantizeRow encodes src as len(src) elements of type t into dst, which must be exactly that many bytes.
// It handles F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K and Q8_K. The block quantizers follow
// llama.cpp's reference (quantize_row_*_ref) algorithms: Q4_K and Q5_K search each sub-block's scale and
// min by weighted least squares (make_qkx2_quants), Q6_K searches each 16-element scale (make_qx_quants).
// On amd64 their output matches llama.cpp's byte for byte (TestQuantizeMatchesLlamaCpp); where the Go
// compiler fuses multiply-adds (arm64), a rare tie may round the other way. Inputs must be finite.
func QuantizeRow(t Type, src []float32, dst []byte) error {
	q := infos[t].quantize
	if q == nil {
		return fmt.Errorf("quantize %s: unsupported tensor type", t)
	}
	if err := checkRow(t, len(src), len(dst)); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	for i, v := range src {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("quantize %s: element %d is %v", t, i, v)
		}
	}
	q(src, dst)
	return nil
}

func quantizeF32(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func quantizeF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
	}
}

func quantizeBF16(src []float32, dst []byte) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], f32ToBF16(v))
	}
}

// nearestInt rounds to the nearest integer, ties to even, as ggml's nearest_int does: adding 1.5·2^23
// leaves the rounded integer in the low mantissa bits. It is exact for |f| < 2^22, which every caller
// guarantees by clamping or by construction (|f| ≤ 128 or so).
func nearestInt(f float32) int32 {
	v := f + 12582912
	return int32(math.Float32bits(v)&0x7fffff) - 0x400000
}

// QuantizeRowQ8_0 quantizes activations (or weights) to Q8_0: per 32 elements, d = max|x|/127 as f16 and
// qs = round(x/d), rounding halves away from zero. len(x) must be a multiple of 32 and len(dst) must be len(x)/32*34; it panics otherwise,
// as that is a bug in the caller.
func QuantizeRowQ8_0(x []float32, dst []byte) {
	nb := len(x) / 32
	if len(x)%32 != 0 || len(dst) != nb*Q8_0Bytes {
		panic(fmt.Sprintf("quant: QuantizeRowQ8_0 of %d elements into %d bytes", len(x), len(dst)))
	}
	for b := 0; b < nb; b++ {
		xs := x[32*b:][:32]
		y := dst[Q8_0Bytes*b:][:Q8_0Bytes]
		var amax float32
		for _, v := range xs {
			amax = max(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, F32ToF16(d))
		qs := y[2:34]
		for i, v := range xs {
			qs[i] = byte(int8(math.Round(float64(float32(v * id))))) // roundf, as ggml's reference
		}
	}
}

// QuantizeRowQ8K quantizes activations to Q8_K, the partner format of the K-quant dot products: per 256
// elements a float32 d, qs = round(x/d) in [-127, 127] with d = -max/127 where max is the element of
// largest magnitude (ggml's sign convention), and bsums, the sum of each run of 16 qs. len(x) must be a
// multiple of 256 and len(dst) must be len(x)/256*292; it panics otherwise, as that is a bug in the caller.
// This is the reference, matching llama.cpp's quantize_row_q8_K_ref; cpu/kernels has an AVX2 twin that
// writes the same bytes.
func QuantizeRowQ8K(x []float32, dst []byte) {
	nb := len(x) / QK_K
	if len(x)%QK_K != 0 || len(dst) != nb*Q8KBytes {
		panic(fmt.Sprintf("quant: QuantizeRowQ8K of %d elements into %d bytes", len(x), len(dst)))
	}
	for b := 0; b < nb; b++ {
		xs := x[QK_K*b:][:QK_K]
		y := dst[Q8KBytes*b:][:Q8KBytes]
		qs := y[4:260]
		bsums := y[260:292]
		var amax, vmax float32
		for _, v := range xs {
			if a := abs32(v); a > amax {
				amax, vmax = a, v
			}
		}
		if amax == 0 {
			clear(y)
			continue
		}
		iscale := -127 / vmax
		for i, v := range xs {
			qs[i] = byte(int8(min(127, nearestInt(float32(iscale*v)))))
		}
		for j := 0; j < 16; j++ {
			var s int16
			for _, q := range qs[16*j : 16*j+16] {
				s += int16(int8(q))
			}
			binary.LittleEndian.PutUint16(bsums[2*j:], uint16(s))
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(1/iscale))
	}
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// quantizeQ4_0 maps the element of largest magnitude to -8 (ggml's choice, which spends the asymmetric
// code on the extreme) and everything else to round(x/d)+8 in [0, 15].
func quantizeQ4_0(x []float32, y []byte) {
	var amax, vmax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	d := vmax / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(y, F32ToF16(d))
	qs := y[2:18]
	for j := range qs {
		// ggml truncates x/d + 8.5 towards zero, which is round-half-up for the non-negative values
		// that can occur here (x/d ≥ -8).
		x0 := min(15, int32(int8(float32(x[j]*id)+8.5)))
		x1 := min(15, int32(int8(float32(x[16+j]*id)+8.5)))
		qs[j] = byte(x0) | byte(x1)<<4
	}
}

// makeQKX2Quants finds a scale and min for one sub-block of an asymmetric K-quant (Q4_K: nmax 15, Q5_K:
// nmax 31) so that x[i] ≈ scale·L[i] - min, minimising Σ w[i]·err[i]². It starts from the min/max fit,
// then tries nstep+1 slightly different scales, refitting scale and min by weighted least squares for
// each candidate's rounding (ggml's make_qkx2_quants). The returned min is ≥ 0 (x ≈ scale·L - min).
func makeQKX2Quants(nmax int32, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int) (scale, theMin float32) {
	n := len(x)
	weights, L, Laux = weights[:n], L[:n], Laux[:n]
	xmin, xmax := x[0], x[0]
	var sumW, sumX float32
	for i, v := range x {
		xmin = min(xmin, v)
		xmax = max(xmax, v)
		sumW += weights[i]
		sumX += weights[i] * v
	}
	xmin = min(xmin, 0)
	if xmax == xmin {
		clear(L)
		return 0, -xmin
	}
	iscale := float32(nmax) / (xmax - xmin)
	scale = 1 / iscale
	var bestErr float32
	for i, v := range x {
		l := max(0, min(nmax, nearestInt(float32(iscale*(v-xmin)))))
		L[i] = uint8(l)
		diff := scale*float32(l) + xmin - v
		bestErr += weights[i] * diff * diff
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + rdelta*float32(is) + float32(nmax)) / (xmax - xmin)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := max(0, min(nmax, nearestInt(float32(iscale*(v-xmin)))))
			Laux[i] = uint8(l)
			w, fl := weights[i], float32(l)
			sumL += w * fl
			sumL2 += w * fl * fl
			sumXL += w * fl * v
		}
		det := sumW*sumL2 - sumL*sumL
		if det <= 0 {
			continue
		}
		thisScale := (sumW*sumXL - sumX*sumL) / det
		thisMin := (sumL2*sumX - sumL*sumXL) / det
		if thisMin > 0 { // a positive offset cannot be stored (the min is subtracted); fit the scale alone
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var curErr float32
		for i, v := range x {
			diff := thisScale*float32(Laux[i]) + thisMin - v
			curErr += weights[i] * diff * diff
		}
		if curErr < bestErr {
			copy(L, Laux)
			bestErr, scale, xmin = curErr, thisScale, thisMin
		}
	}
	return scale, -xmin
}

// PackKScales stores eight 6-bit scales and mins in the 12-byte layout of a Q4_K/Q5_K super-block that
// UnpackKScales reads (ggml-common.h; spec §6.2).
func PackKScales(p []byte, ls, lm *[8]uint8) {
	p = p[:12]
	clear(p)
	for j := 0; j < 8; j++ {
		if j < 4 {
			p[j] = ls[j]
			p[j+4] = lm[j]
		} else {
			p[j+4] = ls[j]&0xf | lm[j]&0xf<<4
			p[j-4] |= ls[j] >> 4 << 6
			p[j] |= lm[j] >> 4 << 6
		}
	}
}

// quantizeKAsym is the shared body of the Q4_K and Q5_K quantizers: per 32-element sub-block a scale and a
// min from makeQKX2Quants, both quantized to 6 bits against the super-block's f16 d and dmin, then every
// element re-rounded against the stored (quantized) scale and min. L receives the 256 codes in [0, nmax].
func quantizeKAsym(x []float32, hdr []byte, L *[QK_K]uint8, nmax int32, rmin, rdelta float32, nstep int) {
	var weights [32]float32
	var Laux [32]uint8
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j:][:32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += v * v
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQKX2Quants(nmax, xs, weights[:], L[32*j:32*j+32], Laux[:], rmin, rdelta, nstep)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	var ls, lm [8]uint8
	for j := 0; j < 8; j++ {
		ls[j] = uint8(min(63, nearestInt(float32(invScale*scales[j]))))
		lm[j] = uint8(min(63, nearestInt(float32(invMin*mins[j]))))
	}
	dh, dminh := F32ToF16(maxScale/63), F32ToF16(maxMin/63)
	binary.LittleEndian.PutUint16(hdr[0:], dh)
	binary.LittleEndian.PutUint16(hdr[2:], dminh)
	PackKScales(hdr[4:16], &ls, &lm)

	d, dmin := F16ToF32(dh), F16ToF32(dminh)
	for j := 0; j < 8; j++ {
		dj := d * float32(ls[j])
		if dj == 0 {
			continue // keep makeQKX2Quants' codes; they all decode to the same value anyway
		}
		mj := dmin * float32(lm[j])
		for i, v := range x[32*j : 32*j+32] {
			L[32*j+i] = uint8(max(0, min(nmax, nearestInt(float32((v+mj)/dj)))))
		}
	}
}

func quantizeQ4K(x []float32, y []byte) {
	var L [QK_K]uint8
	quantizeKAsym(x, y[:16], &L, 15, -1, 0.1, 20)
	qs := y[16:144]
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			qs[32*g+l] = L[64*g+l] | L[64*g+32+l]<<4
		}
	}
}

func quantizeQ5K(x []float32, y []byte) {
	var L [QK_K]uint8
	quantizeKAsym(x, y[:16], &L, 31, -0.5, 0.1, 15)
	qh := y[16:48]
	qs := y[48:176]
	clear(qh)
	for g := 0; g < 4; g++ {
		for l := 0; l < 32; l++ {
			l1, l2 := L[64*g+l], L[64*g+32+l]
			qh[l] |= l1>>4<<(2*g) | l2>>4<<(2*g+1)
			qs[32*g+l] = l1&0xf | l2&0xf<<4
		}
	}
}

// groupMaxEps is ggml's GROUP_MAX_EPS: below it a group counts as all zeros.
const groupMaxEps = 1e-15

// makeQXQuants finds the scale of one symmetric group (Q6_K: 16 elements, nmax 32) so that
// x[i] ≈ scale·l[i] with l in [-nmax, nmax-1], minimising Σ x[i]²·err[i]² (ggml's make_qx_quants with
// rmse_type 1): it tries the scale that maps the extreme element to -nmax and 18 neighbours, refitting each
// by least squares. The sign convention (the extreme maps to -nmax) uses the extra negative code. L
// receives the codes l+nmax of the chosen fit.
func makeQXQuants(nmax int32, x []float32, L []uint8) float32 {
	L = L[:len(x)]
	var amax, vmax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	if amax < groupMaxEps {
		clear(L)
		return 0
	}
	code := func(iscale, v float32) int32 { return max(-nmax, min(nmax-1, nearestInt(float32(iscale*v)))) }
	fit := func(iscale float32) (sumLX, sumL2 float32) {
		for _, v := range x {
			w, fl := v*v, float32(code(iscale, v))
			sumLX += w * v * fl
			sumL2 += w * fl * fl
		}
		return sumLX, sumL2
	}
	setL := func(iscale float32) {
		for i, v := range x {
			L[i] = uint8(code(iscale, v) + nmax)
		}
	}
	iscale := -float32(nmax) / vmax
	sumLX, sumL2 := fit(iscale)
	setL(iscale)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -(float32(nmax) + 0.1*float32(is)) / vmax
		lx, l2 := fit(iscale)
		if l2 > 0 && lx*lx > best*l2 {
			setL(iscale)
			scale = lx / l2
			best = scale * lx
		}
	}
	return scale
}

func quantizeQ6K(x []float32, y []byte) {
	var scales [16]float32
	var L [QK_K]uint8
	var maxScale, maxAbsScale float32
	for g := 0; g < 16; g++ {
		s := makeQXQuants(32, x[16*g:16*g+16], L[16*g:16*g+16])
		scales[g] = s
		if a := abs32(s); a > maxAbsScale {
			maxAbsScale, maxScale = a, s
		}
	}
	y = y[:Q6KBytes]
	if maxAbsScale < groupMaxEps {
		clear(y)
		return
	}
	iscale := -128 / maxScale
	dh := F32ToF16(1 / iscale)
	binary.LittleEndian.PutUint16(y[208:], dh)
	sc := y[192:208]
	for g := range sc {
		sc[g] = byte(int8(min(127, nearestInt(float32(iscale*scales[g])))))
	}
	d := F16ToF32(dh)
	for g := 0; g < 16; g++ {
		dg := d * float32(int8(sc[g]))
		if dg == 0 {
			continue // keep makeQXQuants' codes; with a zero scale they all decode to 0
		}
		for i, v := range x[16*g : 16*g+16] {
			L[16*g+i] = uint8(max(-32, min(31, nearestInt(float32(v/dg)))) + 32)
		}
	}
	ql, qh := y[0:128], y[128:192]
	for n := 0; n < 2; n++ {
		Ln := L[128*n:]
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := Ln[l], Ln[l+32], Ln[l+64], Ln[l+96]
			ql[64*n+l] = q1&0xf | q3&0xf<<4
			ql[64*n+l+32] = q2&0xf | q4&0xf<<4
			qh[32*n+l] = q1>>4 | q2>>4<<2 | q3>>4<<4 | q4>>4<<6
		}
	}
}
