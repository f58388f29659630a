package synth

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"smolchat/model/quant"
)

// chunkBytes is about how much output one unit of work produces. Chunks are cut by the tensor's shape
// alone, and each chunk draws from its own generator seeded by (seed, tensor, chunk), so the bytes do not
// depend on how many goroutines share the work.
const chunkBytes = 256 << 10

// chunkRNG is the generator of one chunk. The inputs go through splitmix64 so that neighbouring chunks
// and seeds start far apart in PCG's state space.
func chunkRNG(seed uint64, tensor, chunk int) *rand.PCG {
	return rand.NewPCG(splitmix64(seed^0x5eed5eed5eed5eed), splitmix64(uint64(tensor)<<32|uint64(chunk)))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// fillTensor generates tensor number index of the plan into dst (exactly t.Bytes() long), spreading the
// chunks over workers goroutines. rowScale, when not nil, multiplies the spread of each row.
func fillTensor(ctx context.Context, dst []byte, t TensorSpec, index int, seed uint64, direct bool, rowScale []float64, workers int) error {
	rowBytes, err := t.Type.RowBytes(t.Cols())
	if err != nil {
		return fmt.Errorf("synth: tensor %s: %w", t.Name, err)
	}
	if int64(len(dst)) != int64(rowBytes)*int64(t.Rows()) {
		return fmt.Errorf("synth: tensor %s: buffer of %d bytes, want %d", t.Name, len(dst), int64(rowBytes)*int64(t.Rows()))
	}
	if rowScale != nil && len(rowScale) != t.Rows() {
		return fmt.Errorf("synth: tensor %s: %d row scales for %d rows", t.Name, len(rowScale), t.Rows())
	}
	rowsPer := max(1, chunkBytes/rowBytes)
	chunks := (t.Rows() + rowsPer - 1) / rowsPer
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := make([]float32, t.Cols())
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks || ctx.Err() != nil {
					return
				}
				r0, r1 := c*rowsPer, min((c+1)*rowsPer, t.Rows())
				rng := chunkRNG(seed, index, c)
				var scale []float64
				if rowScale != nil {
					scale = rowScale[r0:r1]
				}
				if err := fillRows(dst[r0*rowBytes:r1*rowBytes], rowBytes, src, t, rng, direct, scale); err != nil {
					errs[w] = fmt.Errorf("synth: tensor %s rows %d-%d: %w", t.Name, r0, r1-1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// fillRows generates whole rows into dst. src is scratch space for one row of f32 values; scale, when not
// nil, holds a factor for each row's spread.
func fillRows(dst []byte, rowBytes int, src []float32, t TensorSpec, pcg *rand.PCG, direct bool, scale []float64) error {
	rng := rand.New(pcg)
	for r, off := 0, 0; off < len(dst); r, off = r+1, off+rowBytes {
		row := dst[off : off+rowBytes]
		std := t.Std
		if scale != nil {
			std *= scale[r]
		}
		if gen := directBlocks[t.Type]; direct && gen != nil {
			gen(row, std, pcg)
			continue
		}
		if t.role == roleFixed {
			copy(src, t.values)
			if err := quant.QuantizeRow(t.Type, src, row); err != nil {
				return err
			}
			continue
		}
		for i := range src {
			if t.role == roleNorm {
				src[i] = float32(std * (0.5 + rng.Float64()))
			} else {
				src[i] = float32(std * rng.NormFloat64())
			}
		}
		if err := quant.QuantizeRow(t.Type, src, row); err != nil {
			return err
		}
	}
	return nil
}

// Direct generation writes random but valid K-quant blocks whose values have mean ≈0 and standard
// deviation ≈std: the quants are uniform, so a block's spread is its scale times the quants' spread.

// directBlocks are the generators of the types that have one; the others are quantized from f32 rows.
var directBlocks = map[quant.Type]func(dst []byte, std float64, pcg *rand.PCG){
	quant.Q4_K: directQ4K,
	quant.Q6_K: directQ6K,
}

// Q4_K: value = d·sc·q − dmin·m with q uniform in 0..15 (mean 7.5, std √21.25). Taking dmin = 8·d and
// m = round(15·sc/16) makes dmin·m ≈ 7.5·d·sc, which centres every sub-block on zero.
const (
	q4kScLo, q4kScHi = 32, 63 // 6-bit sub-block scales
	q4kQuantStd      = 4.6098 // √((16²−1)/12)
	q6kScLo, q6kScHi = 16, 63 // |int8 scale|, with a random sign
	q6kQuantStd      = 18.473 // √((64²−1)/12), the std of q−32 for q uniform in 0..63
	// dJitter spreads d over [0.75, 1.25)×; jitterRMS corrects for the extra variance that adds.
	dJitterLo, dJitterSpan = 0.75, 0.5
)

var jitterRMS = math.Sqrt(dJitterLo*dJitterLo + dJitterLo*dJitterSpan + dJitterSpan*dJitterSpan/3)

// uniformRMS is the RMS of an integer uniform on lo..hi.
func uniformRMS(lo, hi int) float64 {
	var s float64
	for k := lo; k <= hi; k++ {
		s += float64(k * k)
	}
	return math.Sqrt(s / float64(hi-lo+1))
}

var (
	q4kScRMS = uniformRMS(q4kScLo, q4kScHi)
	q6kScRMS = uniformRMS(q6kScLo, q6kScHi)
)

// fillRandom fills b with random bytes.
func fillRandom(b []byte, pcg *rand.PCG) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, pcg.Uint64())
		b = b[8:]
	}
	if len(b) > 0 {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], pcg.Uint64())
		copy(b, tail[:])
	}
}

// jitteredD is a block's d: the base value times a random factor, rounded to f16.
func jitteredD(base float64, pcg *rand.PCG) uint16 {
	u := float64(pcg.Uint64()>>11) / (1 << 53)
	return quant.F32ToF16(float32(base * (dJitterLo + dJitterSpan*u) / jitterRMS))
}

// directQ4K fills dst (whole Q4_K blocks) with random blocks of the given value spread.
func directQ4K(dst []byte, std float64, pcg *rand.PCG) {
	const bs = 144
	base := std / (q4kQuantStd * q4kScRMS)
	for b := 0; b+bs <= len(dst); b += bs {
		blk := dst[b : b+bs]
		d := jitteredD(base, pcg)
		dmin := quant.F32ToF16(8 * quant.F16ToF32(d))
		binary.LittleEndian.PutUint16(blk[0:], d)
		binary.LittleEndian.PutUint16(blk[2:], dmin)
		var sc, m [8]uint8
		r := pcg.Uint64()
		for j := range 8 {
			sc[j] = uint8(q4kScLo + int(r>>(8*j)&0xff)%(q4kScHi-q4kScLo+1))
			m[j] = uint8((15*int(sc[j]) + 8) / 16)
		}
		quant.PackKScales(blk[4:16], &sc, &m)
		fillRandom(blk[16:], pcg)
	}
}

// directQ6K fills dst (whole Q6_K blocks) with random blocks of the given value spread. Value =
// d·sc·(q−32) with q uniform in 0..63 and 16 signed int8 scales of random sign, so the mean is zero.
func directQ6K(dst []byte, std float64, pcg *rand.PCG) {
	const bs = 210
	base := std / (q6kQuantStd * q6kScRMS)
	for b := 0; b+bs <= len(dst); b += bs {
		blk := dst[b : b+bs]
		fillRandom(blk[:192], pcg) // ql and qh: every 6-bit quant uniform
		for j := range 16 {
			r := pcg.Uint64()
			s := q6kScLo + int(r&0xff)%(q6kScHi-q6kScLo+1)
			if r&0x100 != 0 {
				s = -s
			}
			blk[192+j] = byte(int8(s))
		}
		binary.LittleEndian.PutUint16(blk[208:], jitteredD(base, pcg))
	}
}
