package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// gaussian returns n samples of N(0, std²).
func gaussian(r *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

// randomBlocks returns nb blocks of type t with random quants spanning every code, and scale fields set to
// sensible random values (random bytes there could be f16 Inf or NaN). Q8_K blocks get matching bsums.
func randomBlocks(r *rand.Rand, t Type, nb int) []byte {
	b := make([]byte, nb*t.TypeSize())
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f16 := func(scale float64) uint16 { return F32ToF16(float32((r.Float64()*2 - 1) * scale)) }
	for i := 0; i < nb; i++ {
		blk := b[i*t.TypeSize():][:t.TypeSize()]
		switch t {
		case Q8_0, Q4_0:
			binary.LittleEndian.PutUint16(blk, f16(0.05))
		case Q4_K, Q5_K:
			binary.LittleEndian.PutUint16(blk, f16(0.01))
			binary.LittleEndian.PutUint16(blk[2:], f16(0.01))
		case Q6_K:
			binary.LittleEndian.PutUint16(blk[208:], f16(0.001))
		case Q8_K:
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
