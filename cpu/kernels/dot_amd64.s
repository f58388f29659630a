//go:build amd64 && !purego

#include "textflag.h"

// Shuffle masks for Q4_K: mask s selects the 16-bit scale word s (bytes 2s, 2s+1) into every word of a
// 256-bit register whose two lanes both hold the eight scale words.
DATA shufK4<>+0x00(SB)/8, $0x0100010001000100
DATA shufK4<>+0x08(SB)/8, $0x0100010001000100
DATA shufK4<>+0x10(SB)/8, $0x0100010001000100
DATA shufK4<>+0x18(SB)/8, $0x0100010001000100
DATA shufK4<>+0x20(SB)/8, $0x0302030203020302
DATA shufK4<>+0x28(SB)/8, $0x0302030203020302
DATA shufK4<>+0x30(SB)/8, $0x0302030203020302
DATA shufK4<>+0x38(SB)/8, $0x0302030203020302
DATA shufK4<>+0x40(SB)/8, $0x0504050405040504
DATA shufK4<>+0x48(SB)/8, $0x0504050405040504
DATA shufK4<>+0x50(SB)/8, $0x0504050405040504
DATA shufK4<>+0x58(SB)/8, $0x0504050405040504
DATA shufK4<>+0x60(SB)/8, $0x0706070607060706
DATA shufK4<>+0x68(SB)/8, $0x0706070607060706
DATA shufK4<>+0x70(SB)/8, $0x0706070607060706
DATA shufK4<>+0x78(SB)/8, $0x0706070607060706
DATA shufK4<>+0x80(SB)/8, $0x0908090809080908
DATA shufK4<>+0x88(SB)/8, $0x0908090809080908
DATA shufK4<>+0x90(SB)/8, $0x0908090809080908
DATA shufK4<>+0x98(SB)/8, $0x0908090809080908
DATA shufK4<>+0xa0(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+0xa8(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+0xb0(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+0xb8(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA shufK4<>+0xc0(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+0xc8(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+0xd0(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+0xd8(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA shufK4<>+0xe0(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+0xe8(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+0xf0(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA shufK4<>+0xf8(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL shufK4<>(SB), RODATA|NOPTR, $256

// Shuffle masks for Q6_K: the 32 quants of one VPMADDUBSW span two 16-element scale groups g and g+1, so
// mask (half n, quarter k) puts int8 scale 8n+2k in bytes 0-7 and scale 8n+2k+1 in bytes 8-15, ready to be
// sign-extended to the sixteen words of the product.
DATA shufQ6<>+0x00(SB)/8, $0x0000000000000000
DATA shufQ6<>+0x08(SB)/8, $0x0101010101010101
DATA shufQ6<>+0x10(SB)/8, $0x0202020202020202
DATA shufQ6<>+0x18(SB)/8, $0x0303030303030303
DATA shufQ6<>+0x20(SB)/8, $0x0404040404040404
DATA shufQ6<>+0x28(SB)/8, $0x0505050505050505
DATA shufQ6<>+0x30(SB)/8, $0x0606060606060606
DATA shufQ6<>+0x38(SB)/8, $0x0707070707070707
DATA shufQ6<>+0x40(SB)/8, $0x0808080808080808
DATA shufQ6<>+0x48(SB)/8, $0x0909090909090909
DATA shufQ6<>+0x50(SB)/8, $0x0a0a0a0a0a0a0a0a
DATA shufQ6<>+0x58(SB)/8, $0x0b0b0b0b0b0b0b0b
DATA shufQ6<>+0x60(SB)/8, $0x0c0c0c0c0c0c0c0c
DATA shufQ6<>+0x68(SB)/8, $0x0d0d0d0d0d0d0d0d
DATA shufQ6<>+0x70(SB)/8, $0x0e0e0e0e0e0e0e0e
DATA shufQ6<>+0x78(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL shufQ6<>(SB), RODATA|NOPTR, $128

// hsum8 leaves the sum of the eight floats of Y9 in X0 (clobbers X1).
#define HSUM_Y9_X0 \
	VEXTRACTF128 $1, Y9, X0; \
	VADDPS       X9, X0, X0; \
	VMOVHLPS     X0, X0, X1; \
	VADDPS       X1, X0, X0; \
	VMOVSHDUP    X0, X1; \
	VADDSS       X1, X0, X0

// K_BLOCK_SUM_MINS ends a Q4_K/Q5_K block the way every K-quant kernel does (see matmul.go): the int32
// lanes of Y10 (scaled quant sums) and X5 (mins times block sums) are each summed exactly, then
// acc = fma(d·da, sumi, acc) and acc = fma(-dmin·da, summ, acc) on the low float of X9, with X12 =
// [d·da, dmin·da]. Clobbers X0-X2 and X10.
#define K_BLOCK_SUM_MINS \
	VEXTRACTI128 $1, Y10, X0; \
	VPADDD       X0, X10, X10; \
	VPHADDD      X5, X10, X10; \
	VPHADDD      X10, X10, X10; \
	VCVTDQ2PS    X10, X10; \
	VFMADD231SS  X12, X10, X9; \
	VMOVSHDUP    X10, X10; \
	VMOVSHDUP    X12, X2; \
	VFNMADD231SS X2, X10, X9

// K_BLOCK_SUM ends a Q6_K block: the int32 lanes of Y10 summed exactly, then acc = fma(d·da, sumi, acc)
// on the low float of X9, with d·da in X12. Clobbers X0 and X10.
#define K_BLOCK_SUM \
	VEXTRACTI128 $1, Y10, X0; \
	VPADDD       X0, X10, X10; \
	VPHADDD      X10, X10, X10; \
	VPHADDD      X10, X10, X10; \
	VCVTDQ2PS    X10, X10; \
	VFMADD231SS  X12, X10, X9

// Q4K_GROUP accumulates into Y10 the 64 products of quant bytes qs(SI) (low nibbles: sub-block 2g, high
// nibbles: sub-block 2g+1) with activation bytes q8(DI) and q8+32(DI), each scaled by its sub-block scale.
// Y15 = 0x0f bytes, Y7 = the scale words in both lanes.
#define Q4K_GROUP(qs, q8, sh) \
	VMOVDQU    qs(SI), Y0; \
	VPSRLW     $4, Y0, Y1; \
	VPAND      Y15, Y0, Y0; \
	VPAND      Y15, Y1, Y1; \
	VPMADDUBSW q8(DI), Y0, Y0; \
	VPMADDUBSW q8+32(DI), Y1, Y1; \
	VPSHUFB    shufK4<>+sh(SB), Y7, Y2; \
	VPSHUFB    shufK4<>+sh+32(SB), Y7, Y3; \
	VPMADDWD   Y2, Y0, Y0; \
	VPMADDWD   Y3, Y1, Y1; \
	VPADDD     Y0, Y10, Y10; \
	VPADDD     Y1, Y10, Y10

// func dotQ4KQ8KAVX2(w, a *byte, nb int) float32
TEXT ·dotQ4KQ8KAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS X9, X9, X9     // the dot product, in the low float
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15

q4kLoop:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	// d and dmin (f16 at 0 and 2) times the activation's float32 d: X12 = [d·da, dmin·da].
	MOVL         (SI), AX
	VMOVD        AX, X12
	VCVTPH2PS    X12, X12
	VBROADCASTSS (DI), X2
	VMULPS       X2, X12, X12

	// The 12 scale bytes as three words u0, u1, u2 (ggml's utmp trick):
	// scales 0-3 = u0 & 0x3f.., mins 0-3 = u1 & 0x3f..,
	// scales 4-7 = u2 & 0x0f.. | (u0>>6 & 0x03..)<<4, mins 4-7 = u2>>4 & 0x0f.. | (u1>>6 & 0x03..)<<4.
	MOVL 4(SI), AX
	MOVL 8(SI), BX
	MOVL 12(SI), DX
	MOVL AX, R8
	ANDL $0x3f3f3f3f, R8
	MOVL BX, R9
	ANDL $0x3f3f3f3f, R9
	MOVL DX, R10
	ANDL $0x0f0f0f0f, R10
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL  AX, R10
	SHRL $4, DX
	ANDL $0x0f0f0f0f, DX
	SHRL $6, BX
	ANDL $0x03030303, BX
	SHLL $4, BX
	ORL  BX, DX
	SHLQ $32, R10
	ORQ  R10, R8          // scale bytes 0-7
	SHLQ $32, DX
	ORQ  DX, R9           // min bytes 0-7
	VMOVQ R8, X4
	VPINSRQ   $1, R9, X4, X4
	VPMOVZXBW X4, Y4      // words: scales 0-7 | mins 0-7

	// Mins: bsums summed in pairs are the 32-element sub-block sums of the activation quants.
	VMOVDQU      260(DI), Y5
	VEXTRACTI128 $1, Y5, X6
	VPHADDW      X6, X5, X5
	VEXTRACTI128 $1, Y4, X6
	VPMADDWD     X6, X5, X5   // four int32 partial sums of min·(sub-block sum)

	VPERMQ $0x44, Y4, Y7
	VPXOR  Y10, Y10, Y10
	Q4K_GROUP(16, 4, 0)
	Q4K_GROUP(48, 68, 64)
	Q4K_GROUP(80, 132, 128)
	Q4K_GROUP(112, 196, 192)
	K_BLOCK_SUM_MINS

	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q4kLoop

	VZEROUPPER
	MOVSS X9, ret+24(FP)
	RET

// Q6K_QUARTER accumulates into Y10 the 32 products of one quarter of a Q6_K half: the 6-bit codes are
// (lo & 0x0f) | (qh shifted & 0x30), multiplied unsigned by the activation bytes at q8(DI) and then by the
// two scale words selected by shufQ6 mask sh from the int8 scales in X2. Y6-Y8 are scratch.
#define Q6K_QUARTER(lo, hibits, q8, sh) \
	VPAND      Y15, lo, Y6; \
	VPAND      Y14, hibits, Y7; \
	VPOR       Y7, Y6, Y6; \
	VPMADDUBSW q8(DI), Y6, Y6; \
	VPSHUFB    shufQ6<>+sh(SB), X2, X8; \
	VPMOVSXBW  X8, Y8; \
	VPMADDWD   Y8, Y6, Y6; \
	VPADDD     Y6, Y10, Y10

// Q6K_HALF handles one 128-element half: ql bytes at ql(SI) and ql+32(SI), qh bytes at qh(SI),
// activation bytes from q8(DI), shuffle masks from sh.
#define Q6K_HALF(ql, qh, q8, sh) \
	VMOVDQU ql(SI), Y0; \
	VMOVDQU ql+32(SI), Y1; \
	VMOVDQU qh(SI), Y5; \
	VPSLLW  $4, Y5, Y11; \
	Q6K_QUARTER(Y0, Y11, q8, sh); \
	VPSLLW  $2, Y5, Y11; \
	Q6K_QUARTER(Y1, Y11, q8+32, sh+16); \
	VPSRLW  $4, Y0, Y0; \
	Q6K_QUARTER(Y0, Y5, q8+64, sh+32); \
	VPSRLW  $4, Y1, Y1; \
	VPSRLW  $2, Y5, Y11; \
	Q6K_QUARTER(Y1, Y11, q8+96, sh+48)

// func dotQ6KQ8KAVX2(w, a *byte, nb int) float32
TEXT ·dotQ6KQ8KAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS X9, X9, X9
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x30303030, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14

q6kLoop:
	PREFETCHT0 4096(SI)
	PREFETCHT0 4160(SI)
	PREFETCHT0 4224(SI)
	MOVWLZX      208(SI), AX
	VMOVD        AX, X12
	VCVTPH2PS    X12, X12
	VMULSS       (DI), X12, X12 // d·da

	// The codes are unsigned (0..63); Σ (q-32)·a = Σ q·a - 32·Σ sc·bsum is settled once per block.
	VMOVDQU   192(SI), X2
	VPMOVSXBW X2, Y3
	VPMADDWD  260(DI), Y3, Y4
	VPSLLD    $5, Y4, Y4

	VPXOR Y10, Y10, Y10
	Q6K_HALF(0, 128, 4, 0)
	Q6K_HALF(64, 160, 132, 64)
	VPSUBD Y4, Y10, Y10
	K_BLOCK_SUM

	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q6kLoop

	VZEROUPPER
	MOVSS X9, ret+24(FP)
	RET

// Q5K_GROUP is Q4K_GROUP for Q5_K: quant bytes at qs(SI), and the fifth bits of sub-blocks 2g and 2g+1
// in bits lo and hi of the qh bytes held in Y8. Y14 = 0x01 bytes.
#define Q5K_GROUP(qs, q8, sh, lo, hi) \
	VMOVDQU    qs(SI), Y0; \
	VPSRLW     $4, Y0, Y1; \
	VPAND      Y15, Y0, Y0; \
	VPAND      Y15, Y1, Y1; \
	VPSRLW     $lo, Y8, Y2; \
	VPAND      Y14, Y2, Y2; \
	VPSLLW     $4, Y2, Y2; \
	VPOR       Y2, Y0, Y0; \
	VPSRLW     $hi, Y8, Y3; \
	VPAND      Y14, Y3, Y3; \
	VPSLLW     $4, Y3, Y3; \
	VPOR       Y3, Y1, Y1; \
	VPMADDUBSW q8(DI), Y0, Y0; \
	VPMADDUBSW q8+32(DI), Y1, Y1; \
	VPSHUFB    shufK4<>+sh(SB), Y7, Y2; \
	VPSHUFB    shufK4<>+sh+32(SB), Y7, Y3; \
	VPMADDWD   Y2, Y0, Y0; \
	VPMADDWD   Y3, Y1, Y1; \
	VPADDD     Y0, Y10, Y10; \
	VPADDD     Y1, Y10, Y10

// func dotQ5KQ8KAVX2(w, a *byte, nb int) float32
TEXT ·dotQ5KQ8KAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y9, Y9, Y9
	VXORPS X11, X11, X11
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x01010101, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14

q5kLoop:
	// Scales and mins exactly as in Q4_K (same header layout).
	MOVL         (SI), AX
	VMOVD        AX, X1
	VCVTPH2PS    X1, X1
	VBROADCASTSS (DI), X2
	VMULPS       X2, X1, X1
	VBROADCASTSS X1, Y12
	VMOVSHDUP    X1, X3
	VBROADCASTSS X3, X13
	MOVL 4(SI), AX
	MOVL 8(SI), BX
	MOVL 12(SI), DX
	MOVL AX, R8
	ANDL $0x3f3f3f3f, R8
	MOVL BX, R9
	ANDL $0x3f3f3f3f, R9
	MOVL DX, R10
	ANDL $0x0f0f0f0f, R10
	SHRL $6, AX
	ANDL $0x03030303, AX
	SHLL $4, AX
	ORL  AX, R10
	SHRL $4, DX
	ANDL $0x0f0f0f0f, DX
	SHRL $6, BX
	ANDL $0x03030303, BX
	SHLL $4, BX
	ORL  BX, DX
	SHLQ $32, R10
	ORQ  R10, R8
	SHLQ $32, DX
	ORQ  DX, R9
	VMOVQ R8, X4
	VPINSRQ   $1, R9, X4, X4
	VPMOVZXBW X4, Y4
	VMOVDQU      260(DI), Y5
	VEXTRACTI128 $1, Y5, X6
	VPHADDW      X6, X5, X5
	VEXTRACTI128 $1, Y4, X6
	VPMADDWD     X6, X5, X5
	VCVTDQ2PS    X5, X5
	VFMADD231PS  X13, X5, X11

	VPERMQ  $0x44, Y4, Y7
	VMOVDQU 16(SI), Y8    // qh
	VPXOR   Y10, Y10, Y10
	Q5K_GROUP(48, 4, 0, 0, 1)
	Q5K_GROUP(80, 68, 64, 2, 3)
	Q5K_GROUP(112, 132, 128, 4, 5)
	Q5K_GROUP(144, 196, 192, 6, 7)
	VCVTDQ2PS   Y10, Y10
	VFMADD231PS Y12, Y10, Y9

	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q5kLoop

	HSUM_Y9_X0
	VMOVHLPS  X11, X11, X1
	VADDPS    X1, X11, X1
	VMOVSHDUP X1, X2
	VADDSS    X2, X1, X1
	VSUBSS    X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// BLOCK_SCALE_Q8_0 broadcasts f16(w.d)·f16(a.d) into Y12; both blocks start with their f16 scale.
#define BLOCK_SCALE_Q8_0 \
	MOVWLZX      (SI), AX; \
	MOVWLZX      (DI), BX; \
	SHLL         $16, BX; \
	ORL          BX, AX; \
	VMOVD        AX, X1; \
	VCVTPH2PS    X1, X1; \
	VMOVSHDUP    X1, X2; \
	VMULSS       X2, X1, X1; \
	VBROADCASTSS X1, Y12

// SIGNED_DOT_32 accumulates into Y9 the float Y12 times Σ Y0[k]·Y1[k] over 32 signed byte pairs: the sign
// of Y0 moves onto Y1 so that VPMADDUBSW sees |Y0| as unsigned (ggml's trick). Y1 must not hold -128
// where Y0 is negative, which activations from QuantizeRowQ8_0 never do. Y13 = 1 in every word.
#define SIGNED_DOT_32 \
	VPSIGNB     Y0, Y0, Y2; \
	VPSIGNB     Y0, Y1, Y3; \
	VPMADDUBSW  Y3, Y2, Y2; \
	VPMADDWD    Y13, Y2, Y2; \
	VCVTDQ2PS   Y2, Y2; \
	VFMADD231PS Y12, Y2, Y9

// func dotQ8_0Q8_0AVX2(w, a *byte, nb int) float32
TEXT ·dotQ8_0Q8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y9, Y9, Y9
	MOVL $0x00010001, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13

q80Loop:
	BLOCK_SCALE_Q8_0
	VMOVDQU 2(SI), Y0
	VMOVDQU 2(DI), Y1
	SIGNED_DOT_32
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  q80Loop

	HSUM_Y9_X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotQ4_0Q8_0AVX2(w, a *byte, nb int) float32
TEXT ·dotQ4_0Q8_0AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y9, Y9, Y9
	MOVL $0x00010001, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x08080808, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14

q40Loop:
	BLOCK_SCALE_Q8_0
	// Elements 0-15 are the low nibbles of the 16 quant bytes, elements 16-31 the high ones.
	VMOVDQU      2(SI), X0
	VPSRLW       $4, X0, X1
	VINSERTI128  $1, X1, Y0, Y0
	VPAND        Y15, Y0, Y0
	VPSUBB       Y14, Y0, Y0
	VMOVDQU      2(DI), Y1
	SIGNED_DOT_32
	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JNZ  q40Loop

	HSUM_Y9_X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF32AVX2(x, y unsafe.Pointer, n int) float32
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y9, Y9, Y9
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

f32Loop32:
	CMPQ CX, $32
	JLT  f32Loop8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y9
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  f32Loop32

f32Loop8:
	CMPQ CX, $8
	JLT  f32Tail
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y9
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  f32Loop8

f32Tail:
	VADDPS Y1, Y9, Y9
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y9, Y9
	HSUM_Y9_X0

f32Loop1:
	TESTQ CX, CX
	JEQ   f32Done
	VMOVSS      (SI), X4
	VFMADD231SS (DI), X4, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  f32Loop1

f32Done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF16AVX2(w, x unsafe.Pointer, n int) float32
TEXT ·dotF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y9, Y9, Y9
	VXORPS Y1, Y1, Y1

f16Loop16:
	CMPQ CX, $16
	JLT  f16Loop8
	VCVTPH2PS   (SI), Y4
	VCVTPH2PS   16(SI), Y5
	VFMADD231PS (DI), Y4, Y9
	VFMADD231PS 32(DI), Y5, Y1
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  f16Loop16

f16Loop8:
	CMPQ CX, $8
	JLT  f16Tail
	VCVTPH2PS   (SI), Y4
	VFMADD231PS (DI), Y4, Y9
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  f16Loop8

f16Tail:
	VADDPS Y1, Y9, Y9
	HSUM_Y9_X0

f16Loop1:
	TESTQ CX, CX
	JEQ   f16Done
	MOVWLZX     (SI), AX
	VMOVD       AX, X4
	VCVTPH2PS   X4, X4
	VFMADD231SS (DI), X4, X0
	ADDQ $2, SI
	ADDQ $4, DI
	DECQ CX
	JMP  f16Loop1

f16Done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotBF16AVX2(w, x unsafe.Pointer, n int) float32
TEXT ·dotBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y9, Y9, Y9
	VXORPS Y1, Y1, Y1

bf16Loop16:
	CMPQ CX, $16
	JLT  bf16Loop8
	VPMOVZXWD   (SI), Y4
	VPMOVZXWD   16(SI), Y5
	VPSLLD      $16, Y4, Y4
	VPSLLD      $16, Y5, Y5
	VFMADD231PS (DI), Y4, Y9
	VFMADD231PS 32(DI), Y5, Y1
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  bf16Loop16

bf16Loop8:
	CMPQ CX, $8
	JLT  bf16Tail
	VPMOVZXWD   (SI), Y4
	VPSLLD      $16, Y4, Y4
	VFMADD231PS (DI), Y4, Y9
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  bf16Loop8

bf16Tail:
	VADDPS Y1, Y9, Y9
	HSUM_Y9_X0

bf16Loop1:
	TESTQ CX, CX
	JEQ   bf16Done
	MOVWLZX     (SI), AX
	SHLL        $16, AX
	VMOVD       AX, X4
	VFMADD231SS (DI), X4, X0
	ADDQ $2, SI
	ADDQ $4, DI
	DECQ CX
	JMP  bf16Loop1

bf16Done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
