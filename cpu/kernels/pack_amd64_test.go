//go:build amd64 && !purego

package kernels

import (
	"math"
	"testing"

	"smolchat/model/quant"
)

// TestGemvAVX512MatchesAVX2 checks that the AVX-512 four-token kernel, which InterleavedMatMulFunc uses in
// place of the AVX2 one where the CPU has it, writes the same bits as the AVX2 kernel (which
// TestInterleavedMatMulMatchesDot then covers only on CPUs without AVX-512).
func TestGemvAVX512MatchesAVX2(t *testing.T) {
	if accelerated == nil || !hasAVX512 {
		t.Skip("skipping: no AVX-512 on this CPU")
	}
	for ci, c := range []matMulCase{{256, 4, 4, 4}, {2048, 16, 4, 20}, {11008, 8, 4, 8}} {
		w, a := matMulInputs(t, quant.Q6_K, c, uint64(300+ci))
		il := interleaved(t, quant.Q6_K, w, c.rows, c.n)
		ab := mustRowBytes(t, quant.Q8_K, c.n)
		nb, groups := c.n/quant.QK_K, c.rows/4
		want := make([]float32, 3*c.ldo+c.rows)
		got := make([]float32, len(want))
		gemvC6KQ8Kx4AVX2(&il[0], &a[0], ab, &want[0], c.ldo, nb, groups)
		gemvC6KQ8Kx4AVX512(&il[0], &a[0], ab, &got[0], c.ldo, nb, groups)
		if want[0] == 0 && want[3*c.ldo] == 0 {
			t.Fatalf("%+v: the AVX2 kernel wrote nothing", c)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%+v: out[%d] = %.9g with AVX-512, %.9g with AVX2", c, i, got[i], want[i])
			}
		}
	}
}
