package gpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDecodeF32 checks that read-back floats keep their bits, NaN payloads, infinities and subnormals
// included, whichever way the machine decodes them (a copy where it is little-endian).
func TestDecodeF32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	want := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffbfffff, 1, 0x807fffff}
	for range 1000 {
		want = append(want, r.Uint32())
	}
	b := make([]byte, 4*len(want))
	for i, w := range want {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	got := make([]float32, len(want))
	decodeF32(got, b)
	for i, w := range want {
		if g := math.Float32bits(got[i]); g != w {
			t.Fatalf("float %d: bits %#08x, want %#08x", i, g, w)
		}
	}
}
