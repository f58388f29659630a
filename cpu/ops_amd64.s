//go:build amd64 && !purego

#include "textflag.h"

// Constants for expf, each broadcast to eight lanes: clamping bounds that keep 2^n a normal float, log2(e),
// ln 2 split in a part exact in float32 and the rest, the polynomial coefficients, 1 and the sign bit.
#define CONST8(name, bits) \
	DATA name<>+0x00(SB)/4, $bits; \
	DATA name<>+0x04(SB)/4, $bits; \
	DATA name<>+0x08(SB)/4, $bits; \
	DATA name<>+0x0c(SB)/4, $bits; \
	DATA name<>+0x10(SB)/4, $bits; \
	DATA name<>+0x14(SB)/4, $bits; \
	DATA name<>+0x18(SB)/4, $bits; \
	DATA name<>+0x1c(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

CONST8(expHi, 0x42b00000)   // 88
CONST8(expLo, 0xc2ac0000)   // -86
CONST8(log2e, 0x3fb8aa3b)   // 1.44269504
CONST8(ln2Hi, 0x3f318000)   // 0.693359375
CONST8(ln2Lo, 0xb95e8083)   // -2.12194440e-4
CONST8(expC5, 0x39506967)   // 1.9875691500e-4
CONST8(expC4, 0x3ab743ce)   // 1.3981999507e-3
CONST8(expC3, 0x3c088908)   // 8.3334519073e-3
CONST8(expC2, 0x3d2aa9c1)   // 4.1665795894e-2
CONST8(expC1, 0x3e2aaaaa)   // 1.6666665459e-1
CONST8(expC0, 0x3f000000)   // 5.0000001201e-1
CONST8(one, 0x3f800000)     // 1
CONST8(signBit, 0x80000000)

// EXP_Y1_Y3 leaves e^x in Y3 for x in Y1, clamped to [-86, 88] so that 2^n stays a normal float: n =
// round(x·log2 e), r = x - n·ln 2 (in two parts), e^r by Cephes' degree-6 polynomial, times 2^n by adding
// n to the exponent bits. Y14 = 88, Y13 = -86, Y12 = log2 e, Y11 and Y10 = ln 2, Y9 = 1. Clobbers Y1, Y2
// and Y4.
#define EXP_Y1_Y3 \
	VMINPS       Y14, Y1, Y1; \
	VMAXPS       Y13, Y1, Y1; \
	VMULPS       Y12, Y1, Y2; \
	VROUNDPS     $0, Y2, Y2; \
	VFNMADD231PS Y11, Y2, Y1; \
	VFNMADD231PS Y10, Y2, Y1; \
	VMOVUPS      expC5<>(SB), Y3; \
	VFMADD213PS  expC4<>(SB), Y1, Y3; \
	VFMADD213PS  expC3<>(SB), Y1, Y3; \
	VFMADD213PS  expC2<>(SB), Y1, Y3; \
	VFMADD213PS  expC1<>(SB), Y1, Y3; \
	VFMADD213PS  expC0<>(SB), Y1, Y3; \
	VMULPS       Y1, Y1, Y4; \
	VFMADD213PS  Y1, Y4, Y3; \
	VADDPS       Y9, Y3, Y3; \
	VCVTPS2DQ    Y2, Y2; \
	VPSLLD       $23, Y2, Y2; \
	VPADDD       Y2, Y3, Y3

// EXP_CONSTS loads the registers EXP_Y1_Y3 needs.
#define EXP_CONSTS \
	VMOVUPS expHi<>(SB), Y14; \
	VMOVUPS expLo<>(SB), Y13; \
	VMOVUPS log2e<>(SB), Y12; \
	VMOVUPS ln2Hi<>(SB), Y11; \
	VMOVUPS ln2Lo<>(SB), Y10; \
	VMOVUPS one<>(SB), Y9

// func swiGLUAVX2(gate, up *float32, n int)
TEXT ·swiGLUAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVUPS signBit<>(SB), Y15
	EXP_CONSTS

loop:
	VMOVUPS      (DI), Y0      // g
	VXORPS       Y15, Y0, Y1   // x = -g
	VCMPPS       $1, Y1, Y14, Y8 // lanes with g < -88, where silu(g) rounds to 0 (the exponential would overflow)
	EXP_Y1_Y3
	VADDPS       Y9, Y3, Y3
	VDIVPS       Y3, Y0, Y0    // g / (1 + e^-g)
	VANDNPS      Y0, Y8, Y0
	VMULPS       (SI), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, DI
	ADDQ         $32, SI
	SUBQ         $8, CX
	JNZ          loop
	VZEROUPPER
	RET

// func expSumAVX2(x *float32, n int, m float32) float64
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	EXP_CONSTS
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7

expSumLoop:
	VMOVUPS   (DI), Y1
	VSUBPS    Y15, Y1, Y1
	EXP_Y1_Y3
	VMOVUPS   Y3, (DI)
	VCVTPS2PD X3, Y0
	VADDPD    Y0, Y6, Y6
	VEXTRACTF128 $1, Y3, X3
	VCVTPS2PD X3, Y0
	VADDPD    Y0, Y7, Y7
	ADDQ      $32, DI
	SUBQ      $8, CX
	JNZ       expSumLoop

	VADDPD       Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X7
	VADDPD       X7, X6, X6
	VMOVHLPS     X6, X6, X7
	VADDSD       X7, X6, X6
	VZEROUPPER
	MOVSD X6, ret+24(FP)
	RET
