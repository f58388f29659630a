//go:build amd64 && !purego

#include "textflag.h"

// ROUND_HALF rounds the eight float32s in y to half precision and back (nearest even), in place.
#define ROUND_HALF(y, x) \
	VCVTPS2PH $0, y, x; \
	VCVTPH2PS x, y

// MAD_HALF adds half(v)·Y4 to accumulator y, v being eight halves at off(SI), and rounds to half.
#define MAD_HALF(off, y, x) \
	VCVTPH2PS   off(SI), Y5; \
	VFMADD231PS Y4, Y5, y; \
	ROUND_HALF(y, x)

// func accumF16AVX2(acc *float32, v *byte, ldv int, ms, vs *float32, n, dims int)
//
// For p < n: acc = half(acc·ms[p]), skipped when ms[p] is 1 (which leaves acc unchanged), then
// acc = half(acc + half(v[p·ldv:])·vs[p]), over dims elements (a positive multiple of 8) kept in
// registers, 32 and then 8 at a time, across all n ≥ 1 positions.
TEXT ·accumF16AVX2(SB), NOSPLIT, $0-56
	MOVQ acc+0(FP), DI
	MOVQ v+8(FP), R11
	MOVQ ldv+16(FP), R10
	MOVQ dims+48(FP), R12

accum32:
	CMPQ    R12, $32
	JLT     accum8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ    R11, SI
	MOVQ    ms+24(FP), R8
	MOVQ    vs+32(FP), R9
	MOVQ    n+40(FP), CX

accum32Loop:
	MOVL         (R8), AX
	CMPL         AX, $0x3f800000
	JEQ          accum32Mad
	VBROADCASTSS (R8), Y4
	VMULPS       Y4, Y0, Y0
	VMULPS       Y4, Y1, Y1
	VMULPS       Y4, Y2, Y2
	VMULPS       Y4, Y3, Y3
	ROUND_HALF(Y0, X0)
	ROUND_HALF(Y1, X1)
	ROUND_HALF(Y2, X2)
	ROUND_HALF(Y3, X3)

accum32Mad:
	VBROADCASTSS (R9), Y4
	MAD_HALF(0, Y0, X0)
	MAD_HALF(16, Y1, X1)
	MAD_HALF(32, Y2, X2)
	MAD_HALF(48, Y3, X3)
	ADDQ         R10, SI
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         CX
	JNZ          accum32Loop

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $64, R11
	SUBQ    $32, R12
	JMP     accum32

accum8:
	CMPQ    R12, $8
	JLT     accumDone
	VMOVUPS (DI), Y0
	MOVQ    R11, SI
	MOVQ    ms+24(FP), R8
	MOVQ    vs+32(FP), R9
	MOVQ    n+40(FP), CX

accum8Loop:
	MOVL         (R8), AX
	CMPL         AX, $0x3f800000
	JEQ          accum8Mad
	VBROADCASTSS (R8), Y4
	VMULPS       Y4, Y0, Y0
	ROUND_HALF(Y0, X0)

accum8Mad:
	VBROADCASTSS (R9), Y4
	MAD_HALF(0, Y0, X0)
	ADDQ         R10, SI
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         CX
	JNZ          accum8Loop

	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $16, R11
	SUBQ    $8, R12
	JMP     accum8

accumDone:
	VZEROUPPER
	RET
