//go:build amd64 && !purego

#include "textflag.h"

// ROUND_HALF rounds the eight float32s in y to half precision and back (nearest even), in place.
#define ROUND_HALF(y, x) \
	VCVTPS2PH $0, y, x; \
	VCVTPH2PS x, y

// MAD_HALF adds half(v)·Y8 to accumulator y, v being eight halves at off(SI), and rounds to half.
#define MAD_HALF(off, y, x) \
	VCVTPH2PS   off(SI), Y9; \
	VFMADD231PS Y8, Y9, y; \
	ROUND_HALF(y, x)

// func accumF16AVX2(acc *float32, v *byte, ldv int, ms, vs *float32, n, dims int)
//
// For p < n: acc = half(acc·ms[p]), skipped when ms[p] is 1 (which leaves acc unchanged), then
// acc = half(acc + half(v[p·ldv:])·vs[p]), over dims elements (a positive multiple of 8) kept in
// registers across all n ≥ 1 positions: 64 at a time, then 8. Each position's update of an accumulator
// waits for its previous one (a multiply-add and two conversions, about 16 cycles), so eight
// independent accumulators are in flight at once.
TEXT ·accumF16AVX2(SB), NOSPLIT, $0-56
	MOVQ acc+0(FP), DI
	MOVQ v+8(FP), R11
	MOVQ ldv+16(FP), R10
	MOVQ dims+48(FP), R12

accum64:
	CMPQ    R12, $64
	JLT     accum8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7
	MOVQ    R11, SI
	MOVQ    ms+24(FP), R8
	MOVQ    vs+32(FP), R9
	MOVQ    n+40(FP), CX

accum64Loop:
	MOVL         (R8), AX
	CMPL         AX, $0x3f800000
	JEQ          accum64Mad
	VBROADCASTSS (R8), Y8
	VMULPS       Y8, Y0, Y0
	VMULPS       Y8, Y1, Y1
	VMULPS       Y8, Y2, Y2
	VMULPS       Y8, Y3, Y3
	VMULPS       Y8, Y4, Y4
	VMULPS       Y8, Y5, Y5
	VMULPS       Y8, Y6, Y6
	VMULPS       Y8, Y7, Y7
	ROUND_HALF(Y0, X0)
	ROUND_HALF(Y1, X1)
	ROUND_HALF(Y2, X2)
	ROUND_HALF(Y3, X3)
	ROUND_HALF(Y4, X4)
	ROUND_HALF(Y5, X5)
	ROUND_HALF(Y6, X6)
	ROUND_HALF(Y7, X7)

accum64Mad:
	VBROADCASTSS (R9), Y8
	MAD_HALF(0, Y0, X0)
	MAD_HALF(16, Y1, X1)
	MAD_HALF(32, Y2, X2)
	MAD_HALF(48, Y3, X3)
	MAD_HALF(64, Y4, X4)
	MAD_HALF(80, Y5, X5)
	MAD_HALF(96, Y6, X6)
	MAD_HALF(112, Y7, X7)
	ADDQ         R10, SI
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         CX
	JNZ          accum64Loop

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ    $256, DI
	ADDQ    $128, R11
	SUBQ    $64, R12
	JMP     accum64

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
	VBROADCASTSS (R8), Y8
	VMULPS       Y8, Y0, Y0
	ROUND_HALF(Y0, X0)

accum8Mad:
	VBROADCASTSS (R9), Y8
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

// WSUM_HEAD adds half rows Y8, Y9 weighted by the float at w into accumulators lo, hi.
#define WSUM_HEAD(w, lo, hi) \
	VBROADCASTSS w, Y10; \
	VFMADD231PS  Y10, Y8, lo; \
	VFMADD231PS  Y10, Y9, hi

// func wsumF16x4AVX2(out *float32, ldo int, v *byte, ldv int, w *float32, ldw, n, dims int)
//
// For g < 4 and i < dims (a positive multiple of 16): out[g·ldo + i] += Σ_{p<n} w[g·ldw + p] ·
// half(v[p·ldv + 2i]), n ≥ 1. Sixteen columns at a time for all four weight rows: each position's
// halves are converted once for the four, and the eight sums stay in registers across the positions.
TEXT ·wsumF16x4AVX2(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ ldo+8(FP), R12
	SHLQ $2, R12
	MOVQ v+16(FP), R11
	MOVQ ldv+24(FP), R10
	MOVQ ldw+40(FP), R15
	SHLQ $2, R15
	LEAQ (R15)(R15*2), R13 // 3·ldw bytes
	MOVQ dims+56(FP), BX

wsumSlice:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   R11, SI
	MOVQ   w+32(FP), R8
	MOVQ   n+48(FP), CX

wsumLoop:
	VCVTPH2PS (SI), Y8
	VCVTPH2PS 16(SI), Y9
	WSUM_HEAD((R8), Y0, Y1)
	WSUM_HEAD((R8)(R15*1), Y2, Y3)
	WSUM_HEAD((R8)(R15*2), Y4, Y5)
	WSUM_HEAD((R8)(R13*1), Y6, Y7)
	ADDQ      R10, SI
	ADDQ      $4, R8
	DECQ      CX
	JNZ       wsumLoop

	MOVQ    DI, AX
	VADDPS  (AX), Y0, Y0
	VMOVUPS Y0, (AX)
	VADDPS  32(AX), Y1, Y1
	VMOVUPS Y1, 32(AX)
	ADDQ    R12, AX
	VADDPS  (AX), Y2, Y2
	VMOVUPS Y2, (AX)
	VADDPS  32(AX), Y3, Y3
	VMOVUPS Y3, 32(AX)
	ADDQ    R12, AX
	VADDPS  (AX), Y4, Y4
	VMOVUPS Y4, (AX)
	VADDPS  32(AX), Y5, Y5
	VMOVUPS Y5, 32(AX)
	ADDQ    R12, AX
	VADDPS  (AX), Y6, Y6
	VMOVUPS Y6, (AX)
	VADDPS  32(AX), Y7, Y7
	VMOVUPS Y7, 32(AX)

	ADDQ $64, DI
	ADDQ $32, R11
	SUBQ $16, BX
	JNZ  wsumSlice
	VZEROUPPER
	RET
