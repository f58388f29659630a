// Package quanttest makes the test inputs of model/quant and cpu/kernels: seeded random rows and blocks,
// the deterministic input that C and Go compute alike, and a hash to pin large outputs. Tests only.
package quanttest

import (
	"encoding/binary"
	"math"
	"math/rand/v2"

	"smolchat/model/quant"
)

// Rand is a generator seeded with seed, the same sequence on every run.
func Rand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// Gaussian returns n samples of N(0, std²).
func Gaussian(r *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

// RandomBlocks returns nb blocks of type t with random quants spanning every code, and scale fields set to
// sensible random values (random bytes there could be f16 Inf or NaN). Q8_K blocks get matching bsums.
func RandomBlocks(r *rand.Rand, t quant.Type, nb int) []byte {
	b := make([]byte, nb*t.TypeSize())
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f16 := func(scale float64) uint16 { return quant.F32ToF16(float32((r.Float64()*2 - 1) * scale)) }
	for i := 0; i < nb; i++ {
		blk := b[i*t.TypeSize():][:t.TypeSize()]
		switch t {
		case quant.Q8_0, quant.Q4_0:
			binary.LittleEndian.PutUint16(blk, f16(0.05))
		case quant.Q4_K, quant.Q5_K:
			binary.LittleEndian.PutUint16(blk, f16(0.01))
			binary.LittleEndian.PutUint16(blk[2:], f16(0.01))
		case quant.Q6_K:
			binary.LittleEndian.PutUint16(blk[208:], f16(0.001))
		case quant.Q8_K:
			binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(r.Float64()*0.05)))
			for j := 0; j < 16; j++ {
				var s int16
				for _, q := range blk[4+16*j : 4+16*j+16] {
					s += int16(int8(q))
				}
				binary.LittleEndian.PutUint16(blk[260+2*j:], uint16(s))
			}
		}
	}
	return b
}

// DetInput is a test input that C and Go compute bit for bit alike (only exact float operations): uniform
// values in [-1, 1) from a 32-bit LCG, scaled per 256-block by 1/4 … 4, every 97th element ×8 (outliers),
// every 7th super-block all zeros and every 11th 32-block the constant 0.75 (the degenerate paths of the
// scale searches).
func DetInput(n int, seed uint32) []float32 {
	x := make([]float32, n)
	s := seed
	blockScale := [5]float32{0.25, 0.5, 1, 2, 4}
	for i := range x {
		s = s*1664525 + 1013904223
		v := float32(int32(s)>>8) * 0x1p-23
		v *= blockScale[(i/256)%5]
		if i%97 == 0 {
			v *= 8
		}
		if (i/256)%7 == 6 {
			v = 0
		}
		if (i/32)%11 == 5 {
			v = 0.75
		}
		x[i] = v
	}
	return x
}

// FNV64 is FNV-1a, to pin down large outputs in a few characters.
func FNV64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// FloatBytes is x as little-endian float32 bytes.
func FloatBytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
