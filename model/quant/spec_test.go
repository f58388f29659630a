package quant_test

import (
	"encoding/binary"
	"testing"

	"smolchat/internal/quanttest"
	"smolchat/model/quant"
)

// specQ4K and specQ6K decode one element straight from the format description in the spec, one element
// at a time, as an independent check of the block-at-a-time decoders on every element.
func specQ4K(b []byte, e int) float32 {
	d, dmin := quant.F16ToF32(binary.LittleEndian.Uint16(b)), quant.F16ToF32(binary.LittleEndian.Uint16(b[2:]))
	S := b[4:16]
	s := e / 32
	var sc, m byte
	if s < 4 {
		sc, m = S[s]&63, S[s+4]&63
	} else {
		sc, m = (S[s+4]&0x0F)|((S[s-4]>>6)<<4), (S[s+4]>>4)|((S[s]>>6)<<4)
	}
	g, l := e/64, e%32
	q := b[16+32*g+l]
	if e%64 < 32 {
		q &= 0xF
	} else {
		q >>= 4
	}
	return d*float32(sc)*float32(q) - dmin*float32(m)
}

func specQ6K(b []byte, e int) float32 {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := quant.F16ToF32(binary.LittleEndian.Uint16(b[208:]))
	n, r := e/128, e%128
	k, l := r/32, r%32
	L, H := ql[64*n:], qh[32*n:]
	var q int
	switch k {
	case 0:
		q = int(L[l]&0xF) | int(H[l]>>0&3)<<4
	case 1:
		q = int(L[l+32]&0xF) | int(H[l]>>2&3)<<4
	case 2:
		q = int(L[l]>>4) | int(H[l]>>4&3)<<4
	case 3:
		q = int(L[l+32]>>4) | int(H[l]>>6&3)<<4
	}
	return d * float32(int8(sc[e/16])) * float32(q-32)
}

func TestDequantizeMatchesSpecEverywhere(t *testing.T) {
	r := quanttest.Rand(3)
	for trial := 0; trial < 50; trial++ {
		for _, tt := range []struct {
			typ  quant.Type
			spec func([]byte, int) float32
		}{{quant.Q4_K, specQ4K}, {quant.Q6_K, specQ6K}} {
			b := quanttest.RandomBlocks(r, tt.typ, 1)
			got := make([]float32, 256)
			if err := quant.DequantizeRow(tt.typ, b, got); err != nil {
				t.Fatal(err)
			}
			for e := range got {
				if want := tt.spec(b, e); got[e] != want {
					t.Fatalf("%s trial %d element %d = %g, want %g", tt.typ, trial, e, got[e], want)
				}
			}
		}
	}
}
