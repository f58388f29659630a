//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"testing"

	"smolchat/model/quant"
)

// TestGemvAVX512MatchesAVX2 checks that each AVX-512 small-batch kernel, which InterleavedMatMulFunc uses
// in place of the AVX2 one where the CPU has it, writes the same bits as the AVX2 kernel (which
// TestInterleavedMatMulMatchesDot then covers only on CPUs without AVX-512).
func TestGemvAVX512MatchesAVX2(t *testing.T) {
	if accelerated == nil || !hasAVX512 {
		t.Skip("skipping: no AVX-512 on this CPU")
	}
	type kernel func(w, a *byte, lda int, out *float32, ldo, nb, groups int)
	for _, k := range []struct {
		typ          quant.Type
		tokens       int
		avx2, avx512 kernel
	}{
		{quant.Q6_K, 4, gemvC6KQ8Kx4AVX2, gemvC6KQ8Kx4AVX512},
		{quant.Q4_K, 4, gemvC4KQ8Kx4AVX2, gemvC4KQ8Kx4AVX512},
		{quant.Q4_K, 3, gemvC4KQ8Kx3AVX2, gemvC4KQ8Kx3AVX512},
		{quant.Q4_K, 2, gemvC4KQ8Kx2AVX2, gemvC4KQ8Kx2AVX512},
	} {
		t.Run(fmt.Sprintf("%s/%d", k.typ, k.tokens), func(t *testing.T) {
			for ci, c := range []matMulCase{{256, 4, 4, 4}, {2048, 16, 4, 20}, {11008, 8, 4, 8}} {
				w, a := matMulInputs(t, k.typ, c, uint64(300+ci))
				il := interleaved(t, k.typ, w, c.rows, c.n)
				ab := mustRowBytes(t, quant.Q8_K, c.n)
				nb, groups := c.n/quant.QK_K, c.rows/4
				want := make([]float32, 3*c.ldo+c.rows)
				got := make([]float32, len(want))
				for i := range want {
					want[i] = float32(math.NaN()) // columns past the kernel's tokens stay untouched
					got[i] = want[i]
				}
				k.avx2(&il[0], &a[0], ab, &want[0], c.ldo, nb, groups)
				k.avx512(&il[0], &a[0], ab, &got[0], c.ldo, nb, groups)
				if want[0] == 0 && want[(k.tokens-1)*c.ldo] == 0 {
					t.Fatalf("%+v: the AVX2 kernel wrote nothing", c)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Errorf("%+v: out[%d] = %.9g with AVX-512, %.9g with AVX2", c, i, got[i], want[i])
					}
				}
			}
		})
	}
}
