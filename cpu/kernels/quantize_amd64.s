//go:build amd64 && !purego

#include "textflag.h"

DATA q8kConst<>+0x00(SB)/4, $0x7fffffff // |x| mask
DATA q8kConst<>+0x04(SB)/4, $127
DATA q8kConst<>+0x08(SB)/4, $0xc2fe0000 // -127.0
DATA q8kConst<>+0x0c(SB)/4, $0x3f800000 // 1.0
DATA q8kConst<>+0x10(SB)/4, $0x01010101 // byte ones
DATA q8kConst<>+0x14(SB)/4, $0x00010001 // word ones
// VPERMD order that undoes the lane interleaving of VPACKSSDW/VPACKSSWB.
DATA q8kPerm<>+0x00(SB)/4, $0
DATA q8kPerm<>+0x04(SB)/4, $4
DATA q8kPerm<>+0x08(SB)/4, $1
DATA q8kPerm<>+0x0c(SB)/4, $5
DATA q8kPerm<>+0x10(SB)/4, $2
DATA q8kPerm<>+0x14(SB)/4, $6
DATA q8kPerm<>+0x18(SB)/4, $3
DATA q8kPerm<>+0x1c(SB)/4, $7
GLOBL q8kConst<>(SB), RODATA|NOPTR, $24
GLOBL q8kPerm<>(SB), RODATA|NOPTR, $32

// Q8K_QUANT32 quantizes the 32 floats at off(SI) with the scale in Y13 and stores the 32 bytes at
// 4+off/4(DI); it also leaves in Y8 their sums by runs of four (byte products with Y11, then Y10).
#define Q8K_QUANT32(off) \
	VMULPS    off(SI), Y13, Y0; \
	VMULPS    off+32(SI), Y13, Y1; \
	VMULPS    off+64(SI), Y13, Y2; \
	VMULPS    off+96(SI), Y13, Y3; \
	VCVTPS2DQ Y0, Y0; \
	VCVTPS2DQ Y1, Y1; \
	VCVTPS2DQ Y2, Y2; \
	VCVTPS2DQ Y3, Y3; \
	VPMINSD   Y12, Y0, Y0; \
	VPMINSD   Y12, Y1, Y1; \
	VPMINSD   Y12, Y2, Y2; \
	VPMINSD   Y12, Y3, Y3; \
	VPACKSSDW Y1, Y0, Y0; \
	VPACKSSDW Y3, Y2, Y2; \
	VPACKSSWB Y2, Y0, Y0; \
	VPERMD    Y0, Y9, Y0; \
	VMOVDQU   Y0, 4+off/4(DI); \
	VPMADDUBSW Y0, Y11, Y0; \
	VPMADDWD  Y10, Y0, Y8

// func quantizeQ8KAVX2(x *float32, dst *byte, nb int)
TEXT ·quantizeQ8KAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	VBROADCASTSS q8kConst<>+0x00(SB), Y15
	VPBROADCASTD q8kConst<>+0x04(SB), Y12
	VPBROADCASTD q8kConst<>+0x10(SB), Y11
	VPBROADCASTD q8kConst<>+0x14(SB), Y10
	VMOVDQU q8kPerm<>(SB), Y9

q8kBlock:
	// The largest magnitude, in every lane of Y4.
	VANDPS (SI), Y15, Y4
	VANDPS 32(SI), Y15, Y5
	VANDPS 64(SI), Y15, Y6
	VANDPS 96(SI), Y15, Y7
	MOVQ   $128, AX
q8kMax:
	VANDPS (SI)(AX*1), Y15, Y0
	VMAXPS Y0, Y4, Y4
	VANDPS 32(SI)(AX*1), Y15, Y0
	VMAXPS Y0, Y5, Y5
	VANDPS 64(SI)(AX*1), Y15, Y0
	VMAXPS Y0, Y6, Y6
	VANDPS 96(SI)(AX*1), Y15, Y0
	VMAXPS Y0, Y7, Y7
	ADDQ   $128, AX
	CMPQ   AX, $1024
	JNE    q8kMax
	VMAXPS Y5, Y4, Y4
	VMAXPS Y7, Y6, Y6
	VMAXPS Y6, Y4, Y4
	VPERM2F128 $1, Y4, Y4, Y5
	VMAXPS Y5, Y4, Y4
	VPERMILPS $0x4e, Y4, Y5
	VMAXPS Y5, Y4, Y4
	VPERMILPS $0xb1, Y4, Y5
	VMAXPS Y5, Y4, Y4
	VXORPS  X5, X5, X5
	VUCOMISS X5, X4
	JNE     q8kNonZero
	// An all-zero block: everything zero, d included.
	VPXOR   Y0, Y0, Y0
	VMOVDQU Y0, (DI)
	MOVQ    $32, AX
q8kZero:
	VMOVDQU Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, $288
	JNE     q8kZero
	MOVL    $0, 288(DI)
	JMP     q8kNext

q8kNonZero:
	// The first element of that magnitude, with its sign: vmax. Y13 = iscale = -127/vmax.
	XORQ AX, AX
q8kFind:
	VANDPS   (SI)(AX*1), Y15, Y0
	VCMPPS   $0, Y4, Y0, Y0
	VMOVMSKPS Y0, BX
	TESTL    BX, BX
	JNZ      q8kFound
	ADDQ     $32, AX
	JMP      q8kFind
q8kFound:
	BSFL     BX, BX
	LEAQ     (AX)(BX*4), AX
	VMOVSS   q8kConst<>+0x08(SB), X13
	VDIVSS   (SI)(AX*1), X13, X13
	VBROADCASTSS X13, Y13

	// The quants in 32-byte runs, and their sums: Y8 holds four sums of four per lane for each run, folded
	// to the sixteen sums of sixteen below.
	Q8K_QUANT32(0)
	VMOVDQA Y8, Y4
	Q8K_QUANT32(128)
	VPHADDD Y8, Y4, Y4
	Q8K_QUANT32(256)
	VMOVDQA Y8, Y5
	Q8K_QUANT32(384)
	VPHADDD Y8, Y5, Y5
	VPHADDD Y5, Y4, Y4 // groups 0 2 4 6 | 1 3 5 7
	Q8K_QUANT32(512)
	VMOVDQA Y8, Y5
	Q8K_QUANT32(640)
	VPHADDD Y8, Y5, Y5
	Q8K_QUANT32(768)
	VMOVDQA Y8, Y6
	Q8K_QUANT32(896)
	VPHADDD Y8, Y6, Y6
	VPHADDD Y6, Y5, Y5 // groups 8 10 12 14 | 9 11 13 15
	VPACKSSDW Y5, Y4, Y4 // 0 2 4 6 8 10 12 14 | 1 3 5 7 9 11 13 15
	VEXTRACTI128 $1, Y4, X5
	VPUNPCKLWD X5, X4, X6
	VPUNPCKHWD X5, X4, X7
	VMOVDQU X6, 260(DI)
	VMOVDQU X7, 276(DI)

	// d = 1/iscale.
	VMOVSS q8kConst<>+0x0c(SB), X0
	VDIVSS X13, X0, X0
	VMOVSS X0, (DI)

q8kNext:
	ADDQ $1024, SI
	ADDQ $292, DI
	DECQ CX
	JNZ  q8kBlock
	VZEROUPPER
	RET
