//go:build amd64 && !purego

#include "textflag.h"

// F16_STORE4 adds the lane sums of a0-a3 to the four outputs of one row at DX (stride R11 bytes).
// Clobbers a0, a2, X14 and AX.
#define F16_STORE4(a0, a1, a2, a3, x0) \
	VHADDPS      a1, a0, a0; \
	VHADDPS      a3, a2, a2; \
	VHADDPS      a2, a0, a0; \
	VEXTRACTF128 $1, a0, X14; \
	VADDPS       X14, x0, x0; \
	VADDSS       (DX), x0, X14; \
	VMOVSS       X14, (DX); \
	VMOVSHDUP    x0, X14; \
	VADDSS       (DX)(R11*1), X14, X14; \
	VMOVSS       X14, (DX)(R11*1); \
	VMOVHLPS     x0, x0, X14; \
	VADDSS       (DX)(R11*2), X14, X14; \
	VMOVSS       X14, (DX)(R11*2); \
	LEAQ         (DX)(R11*2), AX; \
	VPERMILPS    $0xff, x0, X14; \
	VADDSS       (AX)(R11*1), X14, X14; \
	VMOVSS       X14, (AX)(R11*1)

// func dotF16Rows4AVX2(w *byte, ldw, rows int, x *float32, ldx, n int, out *float32, ldo int)
//
// For r < rows and j < 4: out[j·ldo + r] += Σ_{i<n} f16(w[r·ldw + 2i]) · x[j·ldx + i], n a positive
// multiple of 8. Rows go two at a time, each converted once for the four vectors; eight independent
// sums keep the multiply-adds from waiting on each other.
TEXT ·dotF16Rows4AVX2(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ ldw+8(FP), R8
	MOVQ rows+16(FP), CX
	MOVQ ldx+32(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10 // 3·ldx bytes
	MOVQ out+48(FP), DX
	MOVQ ldo+56(FP), R11
	SHLQ $2, R11

f16RowsPair:
	CMPQ CX, $2
	JLT  f16RowsOne
	MOVQ   x+24(FP), DI
	MOVQ   n+40(FP), R12
	MOVQ   SI, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

f16RowsPairLoop:
	VCVTPH2PS   (BX), Y8
	VCVTPH2PS   (BX)(R8*1), Y9
	VMOVUPS     (DI), Y10
	VMOVUPS     (DI)(R9*1), Y11
	VMOVUPS     (DI)(R9*2), Y12
	VMOVUPS     (DI)(R10*1), Y13
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y10, Y9, Y4
	VFMADD231PS Y11, Y9, Y5
	VFMADD231PS Y12, Y9, Y6
	VFMADD231PS Y13, Y9, Y7
	ADDQ $16, BX
	ADDQ $32, DI
	SUBQ $8, R12
	JNZ  f16RowsPairLoop

	F16_STORE4(Y0, Y1, Y2, Y3, X0)
	ADDQ $4, DX
	F16_STORE4(Y4, Y5, Y6, Y7, X4)
	ADDQ $4, DX
	LEAQ (SI)(R8*2), SI
	SUBQ $2, CX
	JNZ  f16RowsPair
	VZEROUPPER
	RET

f16RowsOne:
	MOVQ   x+24(FP), DI
	MOVQ   n+40(FP), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

f16RowsOneLoop:
	VCVTPH2PS   (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS (DI)(R9*1), Y8, Y1
	VFMADD231PS (DI)(R9*2), Y8, Y2
	VFMADD231PS (DI)(R10*1), Y8, Y3
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, R12
	JNZ  f16RowsOneLoop

	F16_STORE4(Y0, Y1, Y2, Y3, X0)
	VZEROUPPER
	RET
