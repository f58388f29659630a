//go:build amd64 && !purego

#include "textflag.h"

// Repacking and the multi-row kernels that run on repacked weights (see matmul.go for the layout).
//
// A packed group holds four weight rows, block by block. Its first 1024 bytes are the 256 codes of each
// row unpacked to bytes and interleaved eight at a time: bytes 32q+8r+i are code 8q+i of row r. A
// kernel broadcasts eight activation bytes to the four quarters of a register and multiplies them with
// one 32-byte load: VPMADDUBSW then leaves four 16-bit pair sums per row, which add up across the
// chunks of a scale group without overflow, so one VPMADDWD applies the group's four scales (stored
// after the codes, one word per lane) for 32 (Q4_K) or 16 (Q6_K) elements of four rows at once.

DATA packK<>+0x00(SB)/8, $0x8000800080008000
DATA packK<>+0x08(SB)/8, $0x8008800880088008
DATA packK<>+0x10(SB)/8, $0x8000800080008000
DATA packK<>+0x18(SB)/8, $0x8008800880088008
DATA packK<>+0x20(SB)/8, $0x8001800180018001
DATA packK<>+0x28(SB)/8, $0x8009800980098009
DATA packK<>+0x30(SB)/8, $0x8001800180018001
DATA packK<>+0x38(SB)/8, $0x8009800980098009
DATA packK<>+0x40(SB)/8, $0x8002800280028002
DATA packK<>+0x48(SB)/8, $0x800a800a800a800a
DATA packK<>+0x50(SB)/8, $0x8002800280028002
DATA packK<>+0x58(SB)/8, $0x800a800a800a800a
DATA packK<>+0x60(SB)/8, $0x8003800380038003
DATA packK<>+0x68(SB)/8, $0x800b800b800b800b
DATA packK<>+0x70(SB)/8, $0x8003800380038003
DATA packK<>+0x78(SB)/8, $0x800b800b800b800b
DATA packK<>+0x80(SB)/8, $0x8004800480048004
DATA packK<>+0x88(SB)/8, $0x800c800c800c800c
DATA packK<>+0x90(SB)/8, $0x8004800480048004
DATA packK<>+0x98(SB)/8, $0x800c800c800c800c
DATA packK<>+0xa0(SB)/8, $0x8005800580058005
DATA packK<>+0xa8(SB)/8, $0x800d800d800d800d
DATA packK<>+0xb0(SB)/8, $0x8005800580058005
DATA packK<>+0xb8(SB)/8, $0x800d800d800d800d
DATA packK<>+0xc0(SB)/8, $0x8006800680068006
DATA packK<>+0xc8(SB)/8, $0x800e800e800e800e
DATA packK<>+0xd0(SB)/8, $0x8006800680068006
DATA packK<>+0xd8(SB)/8, $0x800e800e800e800e
DATA packK<>+0xe0(SB)/8, $0x8007800780078007
DATA packK<>+0xe8(SB)/8, $0x800f800f800f800f
DATA packK<>+0xf0(SB)/8, $0x8007800780078007
DATA packK<>+0xf8(SB)/8, $0x800f800f800f800f
DATA packK<>+0x100(SB)/8, $0x8001800180008000
DATA packK<>+0x108(SB)/8, $0x8009800980088008
DATA packK<>+0x110(SB)/8, $0x8001800180008000
DATA packK<>+0x118(SB)/8, $0x8009800980088008
DATA packK<>+0x120(SB)/8, $0x8003800380028002
DATA packK<>+0x128(SB)/8, $0x800b800b800a800a
DATA packK<>+0x130(SB)/8, $0x8003800380028002
DATA packK<>+0x138(SB)/8, $0x800b800b800a800a
DATA packK<>+0x140(SB)/8, $0x8005800580048004
DATA packK<>+0x148(SB)/8, $0x800d800d800c800c
DATA packK<>+0x150(SB)/8, $0x8005800580048004
DATA packK<>+0x158(SB)/8, $0x800d800d800c800c
DATA packK<>+0x160(SB)/8, $0x8007800780068006
DATA packK<>+0x168(SB)/8, $0x800f800f800e800e
DATA packK<>+0x170(SB)/8, $0x8007800780068006
DATA packK<>+0x178(SB)/8, $0x800f800f800e800e
DATA packK<>+0x180(SB)/8, $0x0000000000000000
DATA packK<>+0x188(SB)/8, $0x8000000080000000
DATA packK<>+0x190(SB)/8, $0x0000000000000000
DATA packK<>+0x198(SB)/8, $0x8000000080000000
GLOBL packK<>(SB), RODATA|NOPTR, $416

DATA packQ6<>+0x00(SB)/8, $0x0080008000800080
DATA packQ6<>+0x08(SB)/8, $0x0880088008800880
DATA packQ6<>+0x10(SB)/8, $0x0080008000800080
DATA packQ6<>+0x18(SB)/8, $0x0880088008800880
DATA packQ6<>+0x20(SB)/8, $0x0180018001800180
DATA packQ6<>+0x28(SB)/8, $0x0980098009800980
DATA packQ6<>+0x30(SB)/8, $0x0180018001800180
DATA packQ6<>+0x38(SB)/8, $0x0980098009800980
DATA packQ6<>+0x40(SB)/8, $0x0280028002800280
DATA packQ6<>+0x48(SB)/8, $0x0a800a800a800a80
DATA packQ6<>+0x50(SB)/8, $0x0280028002800280
DATA packQ6<>+0x58(SB)/8, $0x0a800a800a800a80
DATA packQ6<>+0x60(SB)/8, $0x0380038003800380
DATA packQ6<>+0x68(SB)/8, $0x0b800b800b800b80
DATA packQ6<>+0x70(SB)/8, $0x0380038003800380
DATA packQ6<>+0x78(SB)/8, $0x0b800b800b800b80
DATA packQ6<>+0x80(SB)/8, $0x0480048004800480
DATA packQ6<>+0x88(SB)/8, $0x0c800c800c800c80
DATA packQ6<>+0x90(SB)/8, $0x0480048004800480
DATA packQ6<>+0x98(SB)/8, $0x0c800c800c800c80
DATA packQ6<>+0xa0(SB)/8, $0x0580058005800580
DATA packQ6<>+0xa8(SB)/8, $0x0d800d800d800d80
DATA packQ6<>+0xb0(SB)/8, $0x0580058005800580
DATA packQ6<>+0xb8(SB)/8, $0x0d800d800d800d80
DATA packQ6<>+0xc0(SB)/8, $0x0680068006800680
DATA packQ6<>+0xc8(SB)/8, $0x0e800e800e800e80
DATA packQ6<>+0xd0(SB)/8, $0x0680068006800680
DATA packQ6<>+0xd8(SB)/8, $0x0e800e800e800e80
DATA packQ6<>+0xe0(SB)/8, $0x0780078007800780
DATA packQ6<>+0xe8(SB)/8, $0x0f800f800f800f80
DATA packQ6<>+0xf0(SB)/8, $0x0780078007800780
DATA packQ6<>+0xf8(SB)/8, $0x0f800f800f800f80
DATA packQ6<>+0x100(SB)/8, $0x0380028001800080
DATA packQ6<>+0x108(SB)/8, $0x0b800a8009800880
DATA packQ6<>+0x110(SB)/8, $0x0380028001800080
DATA packQ6<>+0x118(SB)/8, $0x0b800a8009800880
DATA packQ6<>+0x120(SB)/8, $0x0780068005800480
DATA packQ6<>+0x128(SB)/8, $0x0f800e800d800c80
DATA packQ6<>+0x130(SB)/8, $0x0780068005800480
DATA packQ6<>+0x138(SB)/8, $0x0f800e800d800c80
GLOBL packQ6<>(SB), RODATA|NOPTR, $320

// TRANSPOSE_STORE stores the 4×4 matrix of qwords in registers a, b, c, d (one row each) transposed: the
// 32 bytes at off(DI)+32j are qword j of a, b, c and d. Clobbers Y8-Y12.
#define TRANSPOSE_STORE(a, b, c, d, off) \
	VPUNPCKLQDQ b, a, Y8; \
	VPUNPCKHQDQ b, a, Y9; \
	VPUNPCKLQDQ d, c, Y10; \
	VPUNPCKHQDQ d, c, Y11; \
	VPERM2I128  $0x20, Y10, Y8, Y12; \
	VMOVDQU     Y12, off(DI); \
	VPERM2I128  $0x20, Y11, Y9, Y12; \
	VMOVDQU     Y12, off+32(DI); \
	VPERM2I128  $0x31, Y10, Y8, Y12; \
	VMOVDQU     Y12, off+64(DI); \
	VPERM2I128  $0x31, Y11, Y9, Y12; \
	VMOVDQU     Y12, off+96(DI)

// PACK_Q4K_GROUP unpacks the 32 quant bytes at qs of the four rows (low nibbles: sub-block s, high
// nibbles: sub-block s+1) and stores both sub-blocks' codes from off.
#define PACK_Q4K_GROUP(qs, off) \
	VMOVDQU qs(SI), Y0; \
	VMOVDQU qs(SI)(R8*1), Y1; \
	VMOVDQU qs(SI)(R8*2), Y2; \
	VMOVDQU qs(SI)(R10*1), Y3; \
	VPSRLW  $4, Y0, Y4; \
	VPSRLW  $4, Y1, Y5; \
	VPSRLW  $4, Y2, Y6; \
	VPSRLW  $4, Y3, Y7; \
	VPAND   Y15, Y0, Y0; \
	VPAND   Y15, Y1, Y1; \
	VPAND   Y15, Y2, Y2; \
	VPAND   Y15, Y3, Y3; \
	VPAND   Y15, Y4, Y4; \
	VPAND   Y15, Y5, Y5; \
	VPAND   Y15, Y6, Y6; \
	VPAND   Y15, Y7, Y7; \
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, off); \
	TRANSPOSE_STORE(Y4, Y5, Y6, Y7, off+128)

// K_SCALES decodes the 12 scale bytes of the Q4_K block at base into BX (the eight 6-bit scales) and R9
// (the eight mins), one byte each, as dotQ4KQ8KAVX2 does. Clobbers AX.
#define K_SCALES(base) \
	MOVL 12 base, R9; \
	MOVL 4 base, AX; \
	SHRL $6, AX; \
	ANDL $0x03030303, AX; \
	SHLL $4, AX; \
	MOVL R9, BX; \
	ANDL $0x0f0f0f0f, BX; \
	ORL  AX, BX; \
	SHLQ $32, BX; \
	MOVL 4 base, AX; \
	ANDL $0x3f3f3f3f, AX; \
	ORQ  AX, BX; \
	MOVL 8 base, AX; \
	SHRL $6, AX; \
	ANDL $0x03030303, AX; \
	SHLL $4, AX; \
	SHRL $4, R9; \
	ANDL $0x0f0f0f0f, R9; \
	ORL  AX, R9; \
	SHLQ $32, R9; \
	MOVL 8 base, AX; \
	ANDL $0x3f3f3f3f, AX; \
	ORQ  AX, R9

// N_ARGS reads the arguments of the small-batch kernels: SI the weights, R8 = lda, R10 = 3·lda, DX the
// output, R11 = ldo in bytes, CX the groups.
#define N_ARGS \
	MOVQ         w+0(FP), SI; \
	MOVQ         lda+16(FP), R8; \
	LEAQ         (R8)(R8*2), R10; \
	MOVQ         out+24(FP), DX; \
	MOVQ         ldo+32(FP), R11; \
	SHLQ         $2, R11; \
	MOVQ         groups+48(FP), CX

// N_KERNEL is the body of the small-batch kernels at the end of this file (defined before the first
// function so that go vet checks its argument names against each function's): for each group, the
// tokens' float accumulators are zeroed, block(tokens) runs on each of the nb interleaved blocks of size
// bytes, and the results are stored. Registers: SI the weights, DI token 0, R8 = lda, R10 = 3·lda, DX
// the output, AX = DX + 2·ldo, R11 = ldo in bytes, CX the groups left, R12 the blocks left; Y15 = 0x0f
// and Y14 = 0x30 bytes (Q6_K's masks; the Q4_K kernels use Y14 as an accumulator).
#define N_KERNEL(block, tokens, size) \
	N_ARGS; \
	MOVL         $0x0f0f0f0f, AX; \
	VMOVD        AX, X15; \
	VPBROADCASTD X15, Y15; \
	MOVL         $0x30303030, AX; \
	VMOVD        AX, X14; \
	VPBROADCASTD X14, Y14; \
nGroup: \
	MOVQ   a+8(FP), DI; \
	MOVQ   nb+40(FP), R12; \
	VXORPS Y0, Y0, Y0; \
	tokens(N_ZEROF, 0, 0); \
nBlock: \
	block(tokens); \
	ADDQ $size, SI; \
	ADDQ $292, DI; \
	DECQ R12; \
	JNZ  nBlock; \
	LEAQ (DX)(R11*2), AX; \
	tokens(N_STOREF, 0, 0); \
	ADDQ $16, DX; \
	DECQ CX; \
	JNZ  nGroup; \
	VZEROUPPER; \
	RET

// Z_KERNEL is the body of the AVX-512 four-token kernel at the end of this file, as N_KERNEL: for
// each group, the tokens' float accumulators Y12-Y15 are zeroed, block runs on each of its nb blocks of
// size bytes, and the results are stored. Registers as N_KERNEL's; Z31 = 0x0f and Z30 = 0x30 bytes, Z29
// the qword order of qwordsByRow.
#define Z_KERNEL(block, size) \
	N_ARGS; \
	MOVL         $0x0f0f0f0f, AX; \
	VPBROADCASTD AX, Z31; \
	MOVL         $0x30303030, AX; \
	VPBROADCASTD AX, Z30; \
	VMOVDQU64    qwordsByRow<>(SB), Z29; \
zGroup: \
	MOVQ   a+8(FP), DI; \
	MOVQ   nb+40(FP), R12; \
	VXORPS Y12, Y12, Y12; \
	VXORPS Y13, Y13, Y13; \
	VXORPS Y14, Y14, Y14; \
	VXORPS Y15, Y15, Y15; \
zBlock: \
	block; \
	ADDQ $size, SI; \
	ADDQ $292, DI; \
	DECQ R12; \
	JNZ  zBlock; \
	P_STORE(Y12, X12, (DX)); \
	P_STORE(Y13, X13, (DX)(R11*1)); \
	P_STORE(Y14, X14, (DX)(R11*2)); \
	LEAQ (DX)(R11*2), AX; \
	P_STORE(Y15, X15, (AX)(R11*1)); \
	ADDQ $16, DX; \
	DECQ CX; \
	JNZ  zGroup; \
	VZEROUPPER; \
	RET

// func packQ4Kx4AVX2(w *byte, ldw int, dst *byte, nb int)
TEXT ·packQ4Kx4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ ldw+8(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ dst+16(FP), DI
	MOVQ nb+24(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU packK<>+0x180(SB), Y14

packQ4KBlock:
	PACK_Q4K_GROUP(16, 0)
	PACK_Q4K_GROUP(48, 256)
	PACK_Q4K_GROUP(80, 512)
	PACK_Q4K_GROUP(112, 768)

	// Scales and mins: Y0 = the scale bytes of rows 0|1 in the low lane, 2|3 in the high one; Y1 the mins.
	K_SCALES((SI))
	VMOVQ BX, X0
	VMOVQ R9, X1
	K_SCALES((SI)(R8*1))
	VPINSRQ $1, BX, X0, X0
	VPINSRQ $1, R9, X1, X1
	K_SCALES((SI)(R8*2))
	VMOVQ BX, X2
	VMOVQ R9, X3
	K_SCALES((SI)(R10*1))
	VPINSRQ $1, BX, X2, X2
	VPINSRQ $1, R9, X3, X3
	VINSERTI128 $1, X2, Y0, Y0
	VINSERTI128 $1, X3, Y1, Y1
	VPSHUFB packK<>+0x000(SB), Y0, Y2
	VMOVDQU Y2, 1024(DI)
	VPSHUFB packK<>+0x020(SB), Y0, Y2
	VMOVDQU Y2, 1056(DI)
	VPSHUFB packK<>+0x040(SB), Y0, Y2
	VMOVDQU Y2, 1088(DI)
	VPSHUFB packK<>+0x060(SB), Y0, Y2
	VMOVDQU Y2, 1120(DI)
	VPSHUFB packK<>+0x080(SB), Y0, Y2
	VMOVDQU Y2, 1152(DI)
	VPSHUFB packK<>+0x0a0(SB), Y0, Y2
	VMOVDQU Y2, 1184(DI)
	VPSHUFB packK<>+0x0c0(SB), Y0, Y2
	VMOVDQU Y2, 1216(DI)
	VPSHUFB packK<>+0x0e0(SB), Y0, Y2
	VMOVDQU Y2, 1248(DI)
	VPSHUFB packK<>+0x100(SB), Y1, Y2
	VMOVDQU Y2, 1280(DI)
	VPSHUFB packK<>+0x120(SB), Y1, Y2
	VMOVDQU Y2, 1312(DI)
	VPSHUFB packK<>+0x140(SB), Y1, Y2
	VMOVDQU Y2, 1344(DI)
	VPSHUFB packK<>+0x160(SB), Y1, Y2
	VMOVDQU Y2, 1376(DI)

	// d and dmin of the four rows: [d0 d1 -dmin0 -dmin1 | d2 d3 -dmin2 -dmin3], then its halves swapped.
	VMOVD     (SI), X0
	VPINSRD   $1, (SI)(R8*1), X0, X0
	VPINSRD   $2, (SI)(R8*2), X0, X0
	VPINSRD   $3, (SI)(R10*1), X0, X0
	VCVTPH2PS X0, Y0
	VPERMILPS $0xd8, Y0, Y0
	VXORPS    Y14, Y0, Y0
	VMOVUPS   Y0, 1408(DI)
	VPERMILPS $0x4e, Y0, Y0
	VMOVUPS   Y0, 1440(DI)

	ADDQ $144, SI
	ADDQ $1472, DI
	DECQ CX
	JNZ  packQ4KBlock
	VZEROUPPER
	RET

// PACK_Q6K_CODES assembles 32 codes into dst: the low four bits from lo (ql bytes, shifted as needed), bits
// 4-5 from hi (qh bytes, shifted so that the quarter's two bits sit there). Clobbers hi.
#define PACK_Q6K_CODES(lo, hi, dst) \
	VPAND Y15, lo, dst; \
	VPAND Y14, hi, hi; \
	VPOR  hi, dst, dst

// PACK_Q6K_Qk puts the codes of quarter k of a half (ql bytes at ql, qh bytes at qh of the row at base)
// in dst. Clobbers Y4 and Y5.
#define PACK_Q6K_Q0(ql, qh, base, dst) \
	VMOVDQU ql base, Y4; \
	VMOVDQU qh base, Y5; \
	VPSLLW  $4, Y5, Y5; \
	PACK_Q6K_CODES(Y4, Y5, dst)

#define PACK_Q6K_Q1(ql, qh, base, dst) \
	VMOVDQU ql+32 base, Y4; \
	VMOVDQU qh base, Y5; \
	VPSLLW  $2, Y5, Y5; \
	PACK_Q6K_CODES(Y4, Y5, dst)

#define PACK_Q6K_Q2(ql, qh, base, dst) \
	VMOVDQU ql base, Y4; \
	VPSRLW  $4, Y4, Y4; \
	VMOVDQU qh base, Y5; \
	PACK_Q6K_CODES(Y4, Y5, dst)

#define PACK_Q6K_Q3(ql, qh, base, dst) \
	VMOVDQU ql+32 base, Y4; \
	VPSRLW  $4, Y4, Y4; \
	VMOVDQU qh base, Y5; \
	VPSRLW  $2, Y5, Y5; \
	PACK_Q6K_CODES(Y4, Y5, dst)

// PACK_Q6K_QUARTER stores quarter k (elements 128n+32k … +31) of the four rows from off.
#define PACK_Q6K_QUARTER(q, ql, qh, off) \
	q(ql, qh, (SI), Y0); \
	q(ql, qh, (SI)(R8*1), Y1); \
	q(ql, qh, (SI)(R8*2), Y2); \
	q(ql, qh, (SI)(R10*1), Y3); \
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, off)

// PACK_Q6K_SCALE stores the scale words selected by mask m of packQ6 from src at off(DI).
#define PACK_Q6K_SCALE(src, m, off) \
	VPSHUFB packQ6<>+m(SB), src, Y2; \
	VPSRAW  $8, Y2, Y2; \
	VMOVDQU Y2, off(DI)

// PACK_Q6K_OFFSET stores -32 times the scale words selected by mask m of packQ6 from src at off(DI).
#define PACK_Q6K_OFFSET(src, m, off) \
	VPSHUFB packQ6<>+m(SB), src, Y2; \
	VPSRAW  $3, Y2, Y2; \
	VPSIGNW Y13, Y2, Y2; \
	VMOVDQU Y2, off(DI)

// func packQ6Kx4AVX2(w *byte, ldw int, dst *byte, nb int)
TEXT ·packQ6Kx4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ ldw+8(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ dst+16(FP), DI
	MOVQ nb+24(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x30303030, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VPCMPEQD Y13, Y13, Y13 // -1 in every word

packQ6KBlock:
	PACK_Q6K_QUARTER(PACK_Q6K_Q0, 0, 128, 0)
	PACK_Q6K_QUARTER(PACK_Q6K_Q1, 0, 128, 128)
	PACK_Q6K_QUARTER(PACK_Q6K_Q2, 0, 128, 256)
	PACK_Q6K_QUARTER(PACK_Q6K_Q3, 0, 128, 384)
	PACK_Q6K_QUARTER(PACK_Q6K_Q0, 64, 160, 512)
	PACK_Q6K_QUARTER(PACK_Q6K_Q1, 64, 160, 640)
	PACK_Q6K_QUARTER(PACK_Q6K_Q2, 64, 160, 768)
	PACK_Q6K_QUARTER(PACK_Q6K_Q3, 64, 160, 896)

	// Scales: Y0 = scales 0-7 of rows 0|1 (low lane) and 2|3 (high lane), Y1 = scales 8-15. Each mask puts
	// a scale in the high byte of a word; the arithmetic shift sign-extends it (>>8) or also multiplies it
	// by 32 (>>3).
	VMOVQ       192(SI), X0
	VPINSRQ     $1, 192(SI)(R8*1), X0, X0
	VMOVQ       192(SI)(R8*2), X2
	VPINSRQ     $1, 192(SI)(R10*1), X2, X2
	VINSERTI128 $1, X2, Y0, Y0
	VMOVQ       200(SI), X1
	VPINSRQ     $1, 200(SI)(R8*1), X1, X1
	VMOVQ       200(SI)(R8*2), X2
	VPINSRQ     $1, 200(SI)(R10*1), X2, X2
	VINSERTI128 $1, X2, Y1, Y1
	PACK_Q6K_SCALE(Y0, 0x000, 1024)
	PACK_Q6K_SCALE(Y0, 0x020, 1056)
	PACK_Q6K_SCALE(Y0, 0x040, 1088)
	PACK_Q6K_SCALE(Y0, 0x060, 1120)
	PACK_Q6K_SCALE(Y0, 0x080, 1152)
	PACK_Q6K_SCALE(Y0, 0x0a0, 1184)
	PACK_Q6K_SCALE(Y0, 0x0c0, 1216)
	PACK_Q6K_SCALE(Y0, 0x0e0, 1248)
	PACK_Q6K_SCALE(Y1, 0x000, 1280)
	PACK_Q6K_SCALE(Y1, 0x020, 1312)
	PACK_Q6K_SCALE(Y1, 0x040, 1344)
	PACK_Q6K_SCALE(Y1, 0x060, 1376)
	PACK_Q6K_SCALE(Y1, 0x080, 1408)
	PACK_Q6K_SCALE(Y1, 0x0a0, 1440)
	PACK_Q6K_SCALE(Y1, 0x0c0, 1472)
	PACK_Q6K_SCALE(Y1, 0x0e0, 1504)
	PACK_Q6K_OFFSET(Y0, 0x100, 1536)
	PACK_Q6K_OFFSET(Y0, 0x120, 1568)
	PACK_Q6K_OFFSET(Y1, 0x100, 1600)
	PACK_Q6K_OFFSET(Y1, 0x120, 1632)

	// d of the four rows: [d0 d1 d0 d1 | d2 d3 d2 d3].
	MOVWLZX   208(SI), AX
	MOVWLZX   208(SI)(R8*1), BX
	SHLL      $16, BX
	ORL       BX, AX
	MOVWLZX   208(SI)(R8*2), R9
	MOVWLZX   208(SI)(R10*1), BX
	SHLL      $16, BX
	ORL       BX, R9
	SHLQ      $32, R9
	ORQ       R9, AX
	VMOVQ     AX, X2
	VCVTPH2PS X2, X2
	VPERMQ    $0x50, Y2, Y2
	VMOVUPS   Y2, 1664(DI)

	ADDQ $210, SI
	ADDQ $1696, DI
	DECQ CX
	JNZ  packQ6KBlock
	VZEROUPPER
	RET

// P_CHUNKS adds to acc the products of the packed codes in w0, w1 (two chunks: 16 elements of four rows)
// with the sixteen activation bytes at off of base, broadcast eight at a time. Y4, Y15 and Y6 are
// scratch; the 16-bit sums are left in Y5.
#define P_CHUNKS(off, base, w0, w1) \
	VPBROADCASTQ off base, Y4; \
	VPMADDUBSW   Y4, w0, Y5; \
	VPBROADCASTQ off+8 base, Y15; \
	VPMADDUBSW   Y15, w1, Y6; \
	VPADDW       Y6, Y5, Y5

// P4K_TOKEN adds one token's products with a Q4_K sub-block (codes in Y0-Y3, scale words at sc) to acc.
#define P4K_TOKEN(off, base, sc, acc) \
	P_CHUNKS(off, base, Y0, Y1); \
	VPBROADCASTQ off+16 base, Y4; \
	VPMADDUBSW   Y4, Y2, Y6; \
	VPADDW       Y6, Y5, Y5; \
	VPBROADCASTQ off+24 base, Y15; \
	VPMADDUBSW   Y15, Y3, Y6; \
	VPADDW       Y6, Y5, Y5; \
	VPMADDWD     sc(SI), Y5, Y5; \
	VPADDD       Y5, acc, acc

// P4K_SUB multiplies sub-block s of the four packed rows with the four tokens.
#define P4K_SUB(s) \
	VMOVDQU 128*s(SI), Y0; \
	VMOVDQU 128*s+32(SI), Y1; \
	VMOVDQU 128*s+64(SI), Y2; \
	VMOVDQU 128*s+96(SI), Y3; \
	P4K_TOKEN(4+32*s, (DI), 1024+32*s, Y7); \
	P4K_TOKEN(4+32*s, (DI)(R8*1), 1024+32*s, Y8); \
	P4K_TOKEN(4+32*s, (DI)(R8*2), 1024+32*s, Y9); \
	P4K_TOKEN(4+32*s, (DI)(R10*1), 1024+32*s, Y10)

// P_BSUMS leaves in Y5 the dot products of one token's sixteen Q8_K block sums (at 260 of base) with
// the packed words at off: four per row, against block sums 4p … 4p+3. Clobbers Y4 and Y6.
#define P_BSUMS(base, off) \
	VPBROADCASTQ 260 base, Y4; \
	VPMADDWD     off(SI), Y4, Y5; \
	VPBROADCASTQ 268 base, Y4; \
	VPMADDWD     off+32(SI), Y4, Y6; \
	VPADDD       Y6, Y5, Y5; \
	VPBROADCASTQ 276 base, Y4; \
	VPMADDWD     off+64(SI), Y4, Y6; \
	VPADDD       Y6, Y5, Y5; \
	VPBROADCASTQ 284 base, Y4; \
	VPMADDWD     off+96(SI), Y4, Y6; \
	VPADDD       Y6, Y5, Y5

// P4K_END ends a block for one token: sumi (acc, two lanes per row) and summ (the mins against the
// block sums) are each summed exactly per row, then f = fma(d·da, sumi, f), f = fma(-dmin·da, summ, f)
// in lanes 0, 1, 4 and 5 of f (rows 0-3), as the dot product does.
#define P4K_END(base, acc, f) \
	P_BSUMS(base, 1280); \
	VPHADDD      Y5, acc, acc; \
	VCVTDQ2PS    acc, acc; \
	VBROADCASTSS base, Y4; \
	VMULPS       1408(SI), Y4, Y5; \
	VMULPS       1440(SI), Y4, Y6; \
	VFMADD231PS  Y5, acc, f; \
	VPERMILPS    $0x4e, acc, acc; \
	VFMADD231PS  Y6, acc, f

// P_STORE writes lanes 0, 1, 4 and 5 of f (rows 0-3 of one token) to dst. Clobbers X4.
#define P_STORE(f, xf, dst) \
	VEXTRACTF128 $1, f, X4; \
	VUNPCKLPD    X4, xf, X4; \
	VMOVUPS      X4, dst

// P_STORE4 writes the four tokens' results to the output columns at DX (stride R11 bytes).
#define P_STORE4 \
	P_STORE(Y11, X11, (DX)); \
	P_STORE(Y12, X12, (DX)(R11*1)); \
	P_STORE(Y13, X13, (DX)(R11*2)); \
	LEAQ (DX)(R11*2), AX; \
	P_STORE(Y14, X14, (AX)(R11*1))

// func gemmP4KQ8Kx4AVX2(p, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemmP4KQ8Kx4AVX2(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), SI
	MOVQ lda+16(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ out+24(FP), DX
	MOVQ ldo+32(FP), R11
	SHLQ $2, R11
	MOVQ groups+48(FP), CX

p4kGroup:
	MOVQ   a+8(FP), DI
	MOVQ   nb+40(FP), R12
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14

p4kBlock:
	VPXOR Y7, Y7, Y7
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	P4K_SUB(0)
	P4K_SUB(1)
	P4K_SUB(2)
	P4K_SUB(3)
	P4K_SUB(4)
	P4K_SUB(5)
	P4K_SUB(6)
	P4K_SUB(7)
	P4K_END((DI), Y7, Y11)
	P4K_END((DI)(R8*1), Y8, Y12)
	P4K_END((DI)(R8*2), Y9, Y13)
	P4K_END((DI)(R10*1), Y10, Y14)

	ADDQ $1472, SI
	ADDQ $292, DI
	DECQ R12
	JNZ  p4kBlock

	P_STORE4
	ADDQ $16, DX
	DECQ CX
	JNZ  p4kGroup
	VZEROUPPER
	RET

// P6K_TOKEN adds one token's products with two Q6_K scale groups (codes in Y0, Y1 and Y2, Y3; scale
// words at sc and sc+32) to acc.
#define P6K_TOKEN(off, base, sc, acc) \
	P_CHUNKS(off, base, Y0, Y1); \
	VPMADDWD sc(SI), Y5, Y5; \
	VPADDD   Y5, acc, acc; \
	P_CHUNKS(off+16, base, Y2, Y3); \
	VPMADDWD sc+32(SI), Y5, Y5; \
	VPADDD   Y5, acc, acc

// P6K_PAIR multiplies scale groups 2j and 2j+1 of the four packed rows with the four tokens.
#define P6K_PAIR(j) \
	VMOVDQU 128*j(SI), Y0; \
	VMOVDQU 128*j+32(SI), Y1; \
	VMOVDQU 128*j+64(SI), Y2; \
	VMOVDQU 128*j+96(SI), Y3; \
	P6K_TOKEN(4+32*j, (DI), 1024+64*j, Y7); \
	P6K_TOKEN(4+32*j, (DI)(R8*1), 1024+64*j, Y8); \
	P6K_TOKEN(4+32*j, (DI)(R8*2), 1024+64*j, Y9); \
	P6K_TOKEN(4+32*j, (DI)(R10*1), 1024+64*j, Y10)

// P6K_START starts acc at -32·Σ scale·(block sum) for one token: the codes are stored unsigned.
#define P6K_START(base, acc) \
	P_BSUMS(base, 1536); \
	VMOVDQA Y5, acc

// P6K_END ends a block for one token: sumi summed exactly per row, then f = fma(d·da, sumi, f).
#define P6K_END(base, acc, f) \
	VPHADDD      acc, acc, acc; \
	VCVTDQ2PS    acc, acc; \
	VBROADCASTSS base, Y4; \
	VMULPS       1664(SI), Y4, Y5; \
	VFMADD231PS  Y5, acc, f

// func gemmP6KQ8Kx4AVX2(p, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemmP6KQ8Kx4AVX2(SB), NOSPLIT, $0-56
	MOVQ p+0(FP), SI
	MOVQ lda+16(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ out+24(FP), DX
	MOVQ ldo+32(FP), R11
	SHLQ $2, R11
	MOVQ groups+48(FP), CX

p6kGroup:
	MOVQ   a+8(FP), DI
	MOVQ   nb+40(FP), R12
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	VXORPS Y14, Y14, Y14

p6kBlock:
	P6K_START((DI), Y7)
	P6K_START((DI)(R8*1), Y8)
	P6K_START((DI)(R8*2), Y9)
	P6K_START((DI)(R10*1), Y10)
	P6K_PAIR(0)
	P6K_PAIR(1)
	P6K_PAIR(2)
	P6K_PAIR(3)
	P6K_PAIR(4)
	P6K_PAIR(5)
	P6K_PAIR(6)
	P6K_PAIR(7)
	P6K_END((DI), Y7, Y11)
	P6K_END((DI)(R8*1), Y8, Y12)
	P6K_END((DI)(R8*2), Y9, Y13)
	P6K_END((DI)(R10*1), Y10, Y14)

	ADDQ $1696, SI
	ADDQ $292, DI
	DECQ R12
	JNZ  p6kBlock

	P_STORE4
	ADDQ $16, DX
	DECQ CX
	JNZ  p6kGroup
	VZEROUPPER
	RET

// ---- Interleaved weights: the CPU backend's load-time layout (see interleave.go). ----

// func interleaveQ4Kx4AVX2(w *byte, ldw int, dst *byte, nb int)
TEXT ·interleaveQ4Kx4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ ldw+8(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ dst+16(FP), DI
	MOVQ nb+24(FP), CX

ilQ4KBlock:
	// The quant bytes, eight at a time across the rows: 32 bytes at 32j hold qword j of each row's qs.
	VMOVDQU 16(SI), Y0
	VMOVDQU 16(SI)(R8*1), Y1
	VMOVDQU 16(SI)(R8*2), Y2
	VMOVDQU 16(SI)(R10*1), Y3
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, 0)
	VMOVDQU 48(SI), Y0
	VMOVDQU 48(SI)(R8*1), Y1
	VMOVDQU 48(SI)(R8*2), Y2
	VMOVDQU 48(SI)(R10*1), Y3
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, 128)
	VMOVDQU 80(SI), Y0
	VMOVDQU 80(SI)(R8*1), Y1
	VMOVDQU 80(SI)(R8*2), Y2
	VMOVDQU 80(SI)(R10*1), Y3
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, 256)
	VMOVDQU 112(SI), Y0
	VMOVDQU 112(SI)(R8*1), Y1
	VMOVDQU 112(SI)(R8*2), Y2
	VMOVDQU 112(SI)(R10*1), Y3
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, 384)

	// Scales and mins decoded to bytes: rows 0|1 in the low lane, 2|3 in the high one.
	K_SCALES((SI))
	VMOVQ BX, X0
	VMOVQ R9, X1
	K_SCALES((SI)(R8*1))
	VPINSRQ $1, BX, X0, X0
	VPINSRQ $1, R9, X1, X1
	K_SCALES((SI)(R8*2))
	VMOVQ BX, X2
	VMOVQ R9, X3
	K_SCALES((SI)(R10*1))
	VPINSRQ $1, BX, X2, X2
	VPINSRQ $1, R9, X3, X3
	VINSERTI128 $1, X2, Y0, Y0
	VINSERTI128 $1, X3, Y1, Y1
	VMOVDQU Y0, 512(DI)
	VMOVDQU Y1, 544(DI)

	// d and dmin as stored, row after row.
	VMOVD   (SI), X0
	VPINSRD $1, (SI)(R8*1), X0, X0
	VPINSRD $2, (SI)(R8*2), X0, X0
	VPINSRD $3, (SI)(R10*1), X0, X0
	VMOVDQU X0, 576(DI)

	ADDQ $144, SI
	ADDQ $608, DI
	DECQ CX
	JNZ  ilQ4KBlock
	VZEROUPPER
	RET

// IL_Q6K_SCALES leaves in X0 the eight int8 scales at off of rows 0 and 1 and in the high lane those of
// rows 2 and 3.
#define IL_Q6K_SCALES(off, dst) \
	VMOVQ       off(SI), X0; \
	VPINSRQ     $1, off(SI)(R8*1), X0, X0; \
	VMOVQ       off(SI)(R8*2), X2; \
	VPINSRQ     $1, off(SI)(R10*1), X2, X2; \
	VINSERTI128 $1, X2, Y0, Y0; \
	VMOVDQU     Y0, dst(DI)

// IL_TRANSPOSE interleaves the 32 bytes at off of the four rows into dst.
#define IL_TRANSPOSE(off, dst) \
	VMOVDQU off(SI), Y0; \
	VMOVDQU off(SI)(R8*1), Y1; \
	VMOVDQU off(SI)(R8*2), Y2; \
	VMOVDQU off(SI)(R10*1), Y3; \
	TRANSPOSE_STORE(Y0, Y1, Y2, Y3, dst)

// func interleaveQ6Kx4AVX2(w *byte, ldw int, dst *byte, nb int)
TEXT ·interleaveQ6Kx4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ ldw+8(FP), R8
	LEAQ (R8)(R8*2), R10
	MOVQ dst+16(FP), DI
	MOVQ nb+24(FP), CX

ilQ6KBlock:
	IL_TRANSPOSE(0, 0)
	IL_TRANSPOSE(32, 128)
	IL_TRANSPOSE(64, 256)
	IL_TRANSPOSE(96, 384)
	IL_TRANSPOSE(128, 512)
	IL_TRANSPOSE(160, 640)
	IL_Q6K_SCALES(192, 768)
	IL_Q6K_SCALES(200, 800)
	MOVWLZX 208(SI), AX
	MOVWLZX 208(SI)(R8*1), BX
	SHLL    $16, BX
	ORL     BX, AX
	MOVWLZX 208(SI)(R8*2), R9
	MOVWLZX 208(SI)(R10*1), BX
	SHLL    $16, BX
	ORL     BX, R9
	SHLQ    $32, R9
	ORQ     R9, AX
	MOVQ    AX, 832(DI)

	ADDQ $210, SI
	ADDQ $864, DI
	DECQ CX
	JNZ  ilQ6KBlock
	VZEROUPPER
	RET

// K_DVECS leaves in Y0 the d and dmin of the four rows' interleaved Q4_K block (f16 at 576) as
// [d0 d1 -dmin0 -dmin1 | d2 d3 -dmin2 -dmin3] and in Y1 the same with the halves of each lane swapped.
// Y14 must hold the sign mask of packK (at 0x180).
#define K_DVECS \
	VCVTPH2PS 576(SI), Y0; \
	VPERMILPS $0xd8, Y0, Y0; \
	VXORPS    Y14, Y0, Y0; \
	VPERMILPS $0x4e, Y0, Y1

// C4K_UNPACK stores the codes of qword j of the interleaved Q4_K block: low nibbles at chunk lo, high
// nibbles at chunk hi of the packed block.
#define C4K_UNPACK(j, lo, hi) \
	VMOVDQU 32*(j)(SI), Y0; \
	VPSRLW  $4, Y0, Y1; \
	VPAND   Y15, Y0, Y0; \
	VPAND   Y15, Y1, Y1; \
	VMOVDQU Y0, 32*(lo)(DI); \
	VMOVDQU Y1, 32*(hi)(DI)

// C4K_UNPACK_GROUP unpacks the four qwords of sub-blocks 2g and 2g+1.
#define C4K_UNPACK_GROUP(g) \
	C4K_UNPACK(4*g, 8*g, 8*g+4); \
	C4K_UNPACK(4*g+1, 8*g+1, 8*g+5); \
	C4K_UNPACK(4*g+2, 8*g+2, 8*g+6); \
	C4K_UNPACK(4*g+3, 8*g+3, 8*g+7)

// func packC4KAVX2(src, dst *byte, nb int)
TEXT ·packC4KAVX2(SB), NOSPLIT, $0-24
	MOVQ src+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU packK<>+0x180(SB), Y14

packC4KBlock:
	C4K_UNPACK_GROUP(0)
	C4K_UNPACK_GROUP(1)
	C4K_UNPACK_GROUP(2)
	C4K_UNPACK_GROUP(3)
	VMOVDQU 512(SI), Y0
	VMOVDQU 544(SI), Y1
	VPSHUFB packK<>+0x000(SB), Y0, Y2
	VMOVDQU Y2, 1024(DI)
	VPSHUFB packK<>+0x020(SB), Y0, Y2
	VMOVDQU Y2, 1056(DI)
	VPSHUFB packK<>+0x040(SB), Y0, Y2
	VMOVDQU Y2, 1088(DI)
	VPSHUFB packK<>+0x060(SB), Y0, Y2
	VMOVDQU Y2, 1120(DI)
	VPSHUFB packK<>+0x080(SB), Y0, Y2
	VMOVDQU Y2, 1152(DI)
	VPSHUFB packK<>+0x0a0(SB), Y0, Y2
	VMOVDQU Y2, 1184(DI)
	VPSHUFB packK<>+0x0c0(SB), Y0, Y2
	VMOVDQU Y2, 1216(DI)
	VPSHUFB packK<>+0x0e0(SB), Y0, Y2
	VMOVDQU Y2, 1248(DI)
	VPSHUFB packK<>+0x100(SB), Y1, Y2
	VMOVDQU Y2, 1280(DI)
	VPSHUFB packK<>+0x120(SB), Y1, Y2
	VMOVDQU Y2, 1312(DI)
	VPSHUFB packK<>+0x140(SB), Y1, Y2
	VMOVDQU Y2, 1344(DI)
	VPSHUFB packK<>+0x160(SB), Y1, Y2
	VMOVDQU Y2, 1376(DI)
	K_DVECS
	VMOVUPS Y0, 1408(DI)
	VMOVUPS Y1, 1440(DI)

	ADDQ $608, SI
	ADDQ $1472, DI
	DECQ CX
	JNZ  packC4KBlock
	VZEROUPPER
	RET

// C6K_CODES leaves in dst the 32 codes (four rows × eight) of quarter k, chunk lc of half n of the
// interleaved Q6_K block at SI: ql qword 8n+lc (k = 0, 2) or 8n+4+lc (k = 1, 3), qh qword 4n+lc. Y15 =
// 0x0f and Y14 = 0x30 bytes; tmp is scratch.
#define C6K_CODES_0(n, lc, dst, tmp) \
	VPAND   32*(8*n+lc)(SI), Y15, dst; \
	VMOVDQU 512+32*(4*n+lc)(SI), tmp; \
	VPSLLW  $4, tmp, tmp; \
	VPAND   Y14, tmp, tmp; \
	VPOR    tmp, dst, dst

#define C6K_CODES_1(n, lc, dst, tmp) \
	VPAND   32*(8*n+4+lc)(SI), Y15, dst; \
	VMOVDQU 512+32*(4*n+lc)(SI), tmp; \
	VPSLLW  $2, tmp, tmp; \
	VPAND   Y14, tmp, tmp; \
	VPOR    tmp, dst, dst

#define C6K_CODES_2(n, lc, dst, tmp) \
	VMOVDQU 32*(8*n+lc)(SI), dst; \
	VPSRLW  $4, dst, dst; \
	VPAND   Y15, dst, dst; \
	VPAND   512+32*(4*n+lc)(SI), Y14, tmp; \
	VPOR    tmp, dst, dst

#define C6K_CODES_3(n, lc, dst, tmp) \
	VMOVDQU 32*(8*n+4+lc)(SI), dst; \
	VPSRLW  $4, dst, dst; \
	VPAND   Y15, dst, dst; \
	VMOVDQU 512+32*(4*n+lc)(SI), tmp; \
	VPSRLW  $2, tmp, tmp; \
	VPAND   Y14, tmp, tmp; \
	VPOR    tmp, dst, dst

// C6K_UNPACK stores the codes of chunk lc of half n, all four quarters, into the packed block.
#define C6K_UNPACK(n, lc) \
	C6K_CODES_0(n, lc, Y0, Y1); \
	VMOVDQU Y0, 32*(16*n+lc)(DI); \
	C6K_CODES_1(n, lc, Y0, Y1); \
	VMOVDQU Y0, 32*(16*n+4+lc)(DI); \
	C6K_CODES_2(n, lc, Y0, Y1); \
	VMOVDQU Y0, 32*(16*n+8+lc)(DI); \
	C6K_CODES_3(n, lc, Y0, Y1); \
	VMOVDQU Y0, 32*(16*n+12+lc)(DI)

// func packC6KAVX2(src, dst *byte, nb int)
TEXT ·packC6KAVX2(SB), NOSPLIT, $0-24
	MOVQ src+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x30303030, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VPCMPEQD Y13, Y13, Y13

packC6KBlock:
	C6K_UNPACK(0, 0)
	C6K_UNPACK(0, 1)
	C6K_UNPACK(0, 2)
	C6K_UNPACK(0, 3)
	C6K_UNPACK(1, 0)
	C6K_UNPACK(1, 1)
	C6K_UNPACK(1, 2)
	C6K_UNPACK(1, 3)
	VMOVDQU 768(SI), Y0
	VMOVDQU 800(SI), Y1
	PACK_Q6K_SCALE(Y0, 0x000, 1024)
	PACK_Q6K_SCALE(Y0, 0x020, 1056)
	PACK_Q6K_SCALE(Y0, 0x040, 1088)
	PACK_Q6K_SCALE(Y0, 0x060, 1120)
	PACK_Q6K_SCALE(Y0, 0x080, 1152)
	PACK_Q6K_SCALE(Y0, 0x0a0, 1184)
	PACK_Q6K_SCALE(Y0, 0x0c0, 1216)
	PACK_Q6K_SCALE(Y0, 0x0e0, 1248)
	PACK_Q6K_SCALE(Y1, 0x000, 1280)
	PACK_Q6K_SCALE(Y1, 0x020, 1312)
	PACK_Q6K_SCALE(Y1, 0x040, 1344)
	PACK_Q6K_SCALE(Y1, 0x060, 1376)
	PACK_Q6K_SCALE(Y1, 0x080, 1408)
	PACK_Q6K_SCALE(Y1, 0x0a0, 1440)
	PACK_Q6K_SCALE(Y1, 0x0c0, 1472)
	PACK_Q6K_SCALE(Y1, 0x0e0, 1504)
	PACK_Q6K_OFFSET(Y0, 0x100, 1536)
	PACK_Q6K_OFFSET(Y0, 0x120, 1568)
	PACK_Q6K_OFFSET(Y1, 0x100, 1600)
	PACK_Q6K_OFFSET(Y1, 0x120, 1632)
	VMOVQ     832(SI), X2
	VCVTPH2PS X2, X2
	VPERMQ    $0x50, Y2, Y2
	VMOVUPS   Y2, 1664(DI)

	ADDQ $864, SI
	ADDQ $1696, DI
	DECQ CX
	JNZ  packC6KBlock
	VZEROUPPER
	RET

// G4K_CHUNK multiplies qword j of the interleaved Q4_K block (chunk c of sub-blocks 2g and 2g+1 of the
// four rows) with the token's activation bytes, adding the 16-bit sums to Y8 (low nibbles) and Y9 (high).
#define G4K_CHUNK(g, c) \
	VMOVDQU      32*(4*g+c)(SI), Y0; \
	VPSRLW       $4, Y0, Y1; \
	VPAND        Y15, Y0, Y0; \
	VPAND        Y15, Y1, Y1; \
	VPBROADCASTQ 4+64*g+8*c(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y0; \
	VPBROADCASTQ 36+64*g+8*c(DI), Y3; \
	VPMADDUBSW   Y3, Y1, Y1; \
	VPADDW       Y0, Y8, Y8; \
	VPADDW       Y1, Y9, Y9

// G4K_GROUP multiplies sub-blocks 2g and 2g+1 of the four rows and adds them, scaled, to Y12.
#define G4K_GROUP(g) \
	VPXOR   Y8, Y8, Y8; \
	VPXOR   Y9, Y9, Y9; \
	G4K_CHUNK(g, 0); \
	G4K_CHUNK(g, 1); \
	G4K_CHUNK(g, 2); \
	G4K_CHUNK(g, 3); \
	VPSHUFB  packK<>+64*g(SB), Y13, Y2; \
	VPMADDWD Y2, Y8, Y8; \
	VPADDD   Y8, Y12, Y12; \
	VPSHUFB  packK<>+64*g+32(SB), Y13, Y3; \
	VPMADDWD Y3, Y9, Y9; \
	VPADDD   Y9, Y12, Y12

// G_MINS leaves in Y11 the dot products of the token's block sums with the mins (bytes in Y1) of the
// four rows, two lanes per row.
#define G_MINS_PAIR(p) \
	VPSHUFB      packK<>+0x100+32*p(SB), Y1, Y2; \
	VPBROADCASTQ 260+8*p(DI), Y3; \
	VPMADDWD     Y3, Y2, Y2; \
	VPADDD       Y2, Y11, Y11

// func gemvC4KQ8KAVX2(w, a *byte, out *float32, nb, groups int)
TEXT ·gemvC4KQ8KAVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ groups+32(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU packK<>+0x180(SB), Y14

gemv4kGroup:
	MOVQ   a+8(FP), DI
	MOVQ   nb+24(FP), R12
	VXORPS Y10, Y10, Y10

gemv4kBlock:
	// Two blocks ahead: the hardware prefetchers alone leave this loop waiting on memory.
	PREFETCHT0 1216(SI)
	PREFETCHT0 1280(SI)
	PREFETCHT0 1344(SI)
	PREFETCHT0 1408(SI)
	PREFETCHT0 1472(SI)
	PREFETCHT0 1536(SI)
	PREFETCHT0 1600(SI)
	PREFETCHT0 1664(SI)
	PREFETCHT0 1728(SI)
	PREFETCHT0 1792(SI)
	VMOVDQU 544(SI), Y1
	VPXOR   Y11, Y11, Y11
	G_MINS_PAIR(0)
	G_MINS_PAIR(1)
	G_MINS_PAIR(2)
	G_MINS_PAIR(3)
	VMOVDQU 512(SI), Y13
	VPXOR   Y12, Y12, Y12
	G4K_GROUP(0)
	G4K_GROUP(1)
	G4K_GROUP(2)
	G4K_GROUP(3)
	// As P4K_END: exact per-row sums, then the two fused multiply-adds.
	VPHADDD      Y11, Y12, Y12
	VCVTDQ2PS    Y12, Y12
	K_DVECS
	VBROADCASTSS (DI), Y4
	VMULPS       Y4, Y0, Y0
	VMULPS       Y4, Y1, Y1
	VFMADD231PS  Y0, Y12, Y10
	VPERMILPS    $0x4e, Y12, Y12
	VFMADD231PS  Y1, Y12, Y10

	ADDQ $608, SI
	ADDQ $292, DI
	DECQ R12
	JNZ  gemv4kBlock

	P_STORE(Y10, X10, (DX))
	ADDQ $16, DX
	DECQ CX
	JNZ  gemv4kGroup
	VZEROUPPER
	RET

// G6K_QUARTER multiplies quarter k of chunks 2p and 2p+1 of half n (scale group 8n+2k+p) with the
// token and adds the result, scaled, to Y12. The group's scale words come from src (Y6: scales 0-7,
// Y7: 8-15) through mask m of packQ6.
#define G6K_QUARTER(codes, n, k, p, src, m) \
	codes(n, 2*p, Y0, Y1); \
	VPBROADCASTQ 4+128*n+32*k+16*p(DI), Y2; \
	VPMADDUBSW   Y2, Y0, Y0; \
	codes(n, 2*p+1, Y3, Y1); \
	VPBROADCASTQ 12+128*n+32*k+16*p(DI), Y2; \
	VPMADDUBSW   Y2, Y3, Y3; \
	VPADDW       Y3, Y0, Y0; \
	VPSHUFB      packQ6<>+m(SB), src, Y2; \
	VPSRAW       $8, Y2, Y2; \
	VPMADDWD     Y2, Y0, Y0; \
	VPADDD       Y0, Y12, Y12

// G6K_HALF multiplies half n; src holds its scales.
#define G6K_HALF(n, src) \
	G6K_QUARTER(C6K_CODES_0, n, 0, 0, src, 0x000); \
	G6K_QUARTER(C6K_CODES_0, n, 0, 1, src, 0x020); \
	G6K_QUARTER(C6K_CODES_1, n, 1, 0, src, 0x040); \
	G6K_QUARTER(C6K_CODES_1, n, 1, 1, src, 0x060); \
	G6K_QUARTER(C6K_CODES_2, n, 2, 0, src, 0x080); \
	G6K_QUARTER(C6K_CODES_2, n, 2, 1, src, 0x0a0); \
	G6K_QUARTER(C6K_CODES_3, n, 3, 0, src, 0x0c0); \
	G6K_QUARTER(C6K_CODES_3, n, 3, 1, src, 0x0e0)

// G6K_OFFSET adds -32·Σ scale·(block sum) over groups 4q … 4q+3 to Y12; src holds the scales and m
// selects the quad within it.
#define G6K_OFFSET(q, src, m) \
	VPSHUFB      packQ6<>+m(SB), src, Y2; \
	VPSRAW       $3, Y2, Y2; \
	VPSIGNW      Y13, Y2, Y2; \
	VPBROADCASTQ 260+8*q(DI), Y3; \
	VPMADDWD     Y3, Y2, Y2; \
	VPADDD       Y2, Y12, Y12

// func gemvC6KQ8KAVX2(w, a *byte, out *float32, nb, groups int)
TEXT ·gemvC6KQ8KAVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ out+16(FP), DX
	MOVQ groups+32(FP), CX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x30303030, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VPCMPEQD Y13, Y13, Y13

gemv6kGroup:
	MOVQ   a+8(FP), DI
	MOVQ   nb+24(FP), R12
	VXORPS Y10, Y10, Y10

gemv6kBlock:
	PREFETCHT0 1728(SI)
	PREFETCHT0 1792(SI)
	PREFETCHT0 1856(SI)
	PREFETCHT0 1920(SI)
	PREFETCHT0 1984(SI)
	PREFETCHT0 2048(SI)
	PREFETCHT0 2112(SI)
	PREFETCHT0 2176(SI)
	PREFETCHT0 2240(SI)
	PREFETCHT0 2304(SI)
	PREFETCHT0 2368(SI)
	PREFETCHT0 2432(SI)
	PREFETCHT0 2496(SI)
	PREFETCHT0 2560(SI)
	VMOVDQU 768(SI), Y6
	VMOVDQU 800(SI), Y7
	VPXOR   Y12, Y12, Y12
	G6K_OFFSET(0, Y6, 0x100)
	G6K_OFFSET(1, Y6, 0x120)
	G6K_OFFSET(2, Y7, 0x100)
	G6K_OFFSET(3, Y7, 0x120)
	G6K_HALF(0, Y6)
	G6K_HALF(1, Y7)
	VPHADDD      Y12, Y12, Y12
	VCVTDQ2PS    Y12, Y12
	VMOVQ        832(SI), X0
	VCVTPH2PS    X0, X0
	VPERMQ       $0x50, Y0, Y0
	VBROADCASTSS (DI), Y4
	VMULPS       Y4, Y0, Y0
	VFMADD231PS  Y0, Y12, Y10

	ADDQ $864, SI
	ADDQ $292, DI
	DECQ R12
	JNZ  gemv6kBlock

	P_STORE(Y10, X10, (DX))
	ADDQ $16, DX
	DECQ CX
	JNZ  gemv6kGroup
	VZEROUPPER
	RET

// ---- Small batches on interleaved weights: several activation rows per pass. ----
//
// The kernels below are the matrix-vector kernels above for two to four activation rows (the tokens of
// a decode step of several sequences): each chunk of weights is loaded and unpacked into registers once
// and multiplied with every token, so the weights are read from memory once for all of them and the
// unpacking is shared. Per token and block the integer sums are exactly those of the matrix-vector
// kernel (exact int32 additions in any order give the same sum), and the float steps are the same
// instructions in the same order, so every output is bit for bit what gemvC4KQ8KAVX2 or
// gemvC6KQ8KAVX2 writes. Tokens are lda bytes apart, output columns ldo floats apart.
//
// A token list applies op(x, y, base, out, L, H, S, f) to each token: base addresses its activation row
// (DI, R8 = lda, R10 = 3·lda), out its output column (DX, AX = DX + 2·ldo, R11 = ldo bytes), L and H
// are its 16-bit sums (Q4_K; Q6_K's tokens share two scratch registers), S its int32 block sums, and
// f(SP) its float accumulator in the frame.

#define N4K_TOKENS2(op, x, y) \
	op(x, y, (DI), (DX), Y4, Y5, Y3, 0); \
	op(x, y, (DI)(R8*1), (DX)(R11*1), Y6, Y7, Y12, 32)

#define N4K_TOKENS3(op, x, y) \
	N4K_TOKENS2(op, x, y); \
	op(x, y, (DI)(R8*2), (DX)(R11*2), Y8, Y9, Y13, 64)

#define N4K_TOKENS4(op, x, y) \
	N4K_TOKENS3(op, x, y); \
	op(x, y, (DI)(R10*1), (AX)(R11*1), Y10, Y11, Y14, 96)

#define N6K_TOKENS2(op, x, y) \
	op(x, y, (DI), (DX), Y10, Y11, Y6, 0); \
	op(x, y, (DI)(R8*1), (DX)(R11*1), Y10, Y11, Y7, 32)

#define N6K_TOKENS3(op, x, y) \
	N6K_TOKENS2(op, x, y); \
	op(x, y, (DI)(R8*2), (DX)(R11*2), Y10, Y11, Y8, 64)

#define N6K_TOKENS4(op, x, y) \
	N6K_TOKENS3(op, x, y); \
	op(x, y, (DI)(R10*1), (AX)(R11*1), Y10, Y11, Y9, 96)

// N_ZEROF zeroes a token's float accumulator (Y0 = 0); N_STOREF writes its rows 0-3 (lanes 0, 1, 4, 5)
// to its output column; N_ZEROS zeroes its block sums.
#define N_ZEROF(x, y, base, out, L, H, S, f) \
	VMOVUPS Y0, f(SP)

#define N_STOREF(x, y, base, out, L, H, S, f) \
	VMOVUPS f(SP), Y2; \
	P_STORE(Y2, X2, out)

#define N_ZEROS(x, y, base, out, L, H, S, f) \
	VPXOR S, S, S

// N4K_FIRST and N4K_NEXT multiply the unpacked codes of chunk c of group g (Y0: sub-block 2g, Y1:
// 2g+1) with the token, starting (FIRST) or adding to (NEXT) its 16-bit sums. Y2 is scratch.
#define N4K_FIRST(g, c, base, out, L, H, S, f) \
	VPBROADCASTQ 4+64*g+8*c base, Y2; \
	VPMADDUBSW   Y2, Y0, L; \
	VPBROADCASTQ 36+64*g+8*c base, Y2; \
	VPMADDUBSW   Y2, Y1, H

#define N4K_NEXT(g, c, base, out, L, H, S, f) \
	VPBROADCASTQ 4+64*g+8*c base, Y2; \
	VPMADDUBSW   Y2, Y0, Y2; \
	VPADDW       Y2, L, L; \
	VPBROADCASTQ 36+64*g+8*c base, Y2; \
	VPMADDUBSW   Y2, Y1, Y2; \
	VPADDW       Y2, H, H

// N4K_SCALE adds the token's 16-bit sums, scaled by the sub-block scale words in Y1 and Y2, to S.
#define N4K_SCALE(x, y, base, out, L, H, S, f) \
	VPMADDWD Y1, L, L; \
	VPADDD   L, S, S; \
	VPMADDWD Y2, H, H; \
	VPADDD   H, S, S

// N4K_MIN0 and N4K_MIN set and add to L (free after the groups) the dot products of the token's block
// sums p with the min words in Y1.
#define N4K_MIN0(p, y, base, out, L, H, S, f) \
	VPBROADCASTQ 260+8*p base, Y2; \
	VPMADDWD     Y2, Y1, L

#define N4K_MIN(p, y, base, out, L, H, S, f) \
	VPBROADCASTQ 260+8*p base, Y2; \
	VPMADDWD     Y2, Y1, Y2; \
	VPADDD       Y2, L, L

// N4K_END ends a block for the token, as gemvC4KQ8KAVX2 does: its sums S and mins L summed exactly per
// row, then the two fused multiply-adds on its accumulator with d·da and -dmin·da (Y0, Y1 as K_DVECS
// leaves them, times the token's da). Clobbers Y2, L and H.
#define N4K_END(x, y, base, out, L, H, S, f) \
	VPHADDD      L, S, S; \
	VCVTDQ2PS    S, S; \
	VBROADCASTSS base, Y2; \
	VMULPS       Y2, Y0, H; \
	VMULPS       Y2, Y1, Y2; \
	VMOVUPS      f(SP), L; \
	VFMADD231PS  H, S, L; \
	VPERMILPS    $0x4e, S, S; \
	VFMADD231PS  Y2, S, L; \
	VMOVUPS      L, f(SP)

// N4K_GROUP multiplies sub-blocks 2g and 2g+1 of the four rows with the tokens: each chunk's codes are
// unpacked once (Y0, Y1), then the sub-blocks' scale words (Y1, Y2) are applied.
#define N4K_GROUP(g, tokens) \
	VMOVDQU 32*(4*g)(SI), Y0; \
	VPSRLW  $4, Y0, Y1; \
	VPAND   Y15, Y0, Y0; \
	VPAND   Y15, Y1, Y1; \
	tokens(N4K_FIRST, g, 0); \
	N4K_CHUNK(g, 1, tokens); \
	N4K_CHUNK(g, 2, tokens); \
	N4K_CHUNK(g, 3, tokens); \
	VMOVDQU 512(SI), Y0; \
	VPSHUFB packK<>+64*g(SB), Y0, Y1; \
	VPSHUFB packK<>+64*g+32(SB), Y0, Y2; \
	tokens(N4K_SCALE, g, 0)

#define N4K_CHUNK(g, c, tokens) \
	VMOVDQU 32*(4*g+c)(SI), Y0; \
	VPSRLW  $4, Y0, Y1; \
	VPAND   Y15, Y0, Y0; \
	VPAND   Y15, Y1, Y1; \
	tokens(N4K_NEXT, g, c)

// N_PREFETCH5 asks for the five cache lines from off(SI): the blocks two ahead (the hardware
// prefetchers alone leave these loops waiting on memory).
#define N_PREFETCH5(off) \
	PREFETCHT0 off(SI); \
	PREFETCHT0 off+64(SI); \
	PREFETCHT0 off+128(SI); \
	PREFETCHT0 off+192(SI); \
	PREFETCHT0 off+256(SI)

// N4K_BLOCK multiplies one interleaved Q4_K block with the tokens.
#define N4K_BLOCK(tokens) \
	N_PREFETCH5(1216); \
	N_PREFETCH5(1536); \
	tokens(N_ZEROS, 0, 0); \
	N4K_GROUP(0, tokens); \
	N4K_GROUP(1, tokens); \
	N4K_GROUP(2, tokens); \
	N4K_GROUP(3, tokens); \
	VMOVDQU 544(SI), Y0; \
	VPSHUFB packK<>+0x100(SB), Y0, Y1; \
	tokens(N4K_MIN0, 0, 0); \
	VPSHUFB packK<>+0x120(SB), Y0, Y1; \
	tokens(N4K_MIN, 1, 0); \
	VPSHUFB packK<>+0x140(SB), Y0, Y1; \
	tokens(N4K_MIN, 2, 0); \
	VPSHUFB packK<>+0x160(SB), Y0, Y1; \
	tokens(N4K_MIN, 3, 0); \
	VCVTPH2PS 576(SI), Y0; \
	VPERMILPS $0xd8, Y0, Y0; \
	VXORPS    packK<>+0x180(SB), Y0, Y0; \
	VPERMILPS $0x4e, Y0, Y1; \
	tokens(N4K_END, 0, 0)

// N6K_COL multiplies the codes of two chunks (Y0, Y3) with the token's sixteen bytes at off and adds
// the result, scaled by the scale words in Y4, to S. L and H are scratch (shared by the tokens).
#define N6K_COL(off, y, base, out, L, H, S, f) \
	VPBROADCASTQ off base, Y2; \
	VPMADDUBSW   Y2, Y0, L; \
	VPBROADCASTQ off+8 base, H; \
	VPMADDUBSW   H, Y3, H; \
	VPADDW       H, L, L; \
	VPMADDWD     Y4, L, L; \
	VPADDD       L, S, S

// N6K_QUARTER is G6K_QUARTER for the tokens: the codes of chunks 2p and 2p+1 into Y0 and Y3 once, the
// scale words of group 8n+2k+p into Y4 from the half's scales in Y5 (mask m of packQ6).
#define N6K_QUARTER(codes, n, k, p, m, tokens) \
	codes(n, 2*p, Y0, Y1); \
	codes(n, 2*p+1, Y3, Y1); \
	VPSHUFB packQ6<>+m(SB), Y5, Y4; \
	VPSRAW  $8, Y4, Y4; \
	tokens(N6K_COL, 4+128*n+32*k+16*p, 0)

// N6K_OFFSET subtracts from S 32·Σ scale·(block sum) over the four groups of block sums q whose scale
// words, times 32, are in Y4.
#define N6K_OFFSET(q, y, base, out, L, H, S, f) \
	VPBROADCASTQ 260+8*(q) base, Y2; \
	VPMADDWD     Y2, Y4, Y2; \
	VPSUBD       Y2, S, S

#define N6K_OFFSETS(q, m, tokens) \
	VPSHUFB packQ6<>+m(SB), Y5, Y4; \
	VPSRAW  $3, Y4, Y4; \
	tokens(N6K_OFFSET, q, 0)

// N6K_HALF multiplies half n with the tokens, its offsets included.
#define N6K_HALF(n, tokens) \
	VMOVDQU 768+32*n(SI), Y5; \
	N6K_OFFSETS(2*n, 0x100, tokens); \
	N6K_OFFSETS(2*n+1, 0x120, tokens); \
	N6K_QUARTER(C6K_CODES_0, n, 0, 0, 0x000, tokens); \
	N6K_QUARTER(C6K_CODES_0, n, 0, 1, 0x020, tokens); \
	N6K_QUARTER(C6K_CODES_1, n, 1, 0, 0x040, tokens); \
	N6K_QUARTER(C6K_CODES_1, n, 1, 1, 0x060, tokens); \
	N6K_QUARTER(C6K_CODES_2, n, 2, 0, 0x080, tokens); \
	N6K_QUARTER(C6K_CODES_2, n, 2, 1, 0x0a0, tokens); \
	N6K_QUARTER(C6K_CODES_3, n, 3, 0, 0x0c0, tokens); \
	N6K_QUARTER(C6K_CODES_3, n, 3, 1, 0x0e0, tokens)

// N6K_END ends a block for the token, as gemvC6KQ8KAVX2 does, with the rows' d in Y12.
#define N6K_END(x, y, base, out, L, H, S, f) \
	VPHADDD      S, S, S; \
	VCVTDQ2PS    S, S; \
	VBROADCASTSS base, Y2; \
	VMULPS       Y2, Y12, Y2; \
	VMOVUPS      f(SP), L; \
	VFMADD231PS  Y2, S, L; \
	VMOVUPS      L, f(SP)

// N6K_BLOCK multiplies one interleaved Q6_K block with the tokens.
#define N6K_BLOCK(tokens) \
	N_PREFETCH5(1728); \
	N_PREFETCH5(2048); \
	N_PREFETCH5(2368); \
	tokens(N_ZEROS, 0, 0); \
	N6K_HALF(0, tokens); \
	N6K_HALF(1, tokens); \
	VMOVQ     832(SI), X12; \
	VCVTPH2PS X12, X12; \
	VPERMQ    $0x50, Y12, Y12; \
	tokens(N6K_END, 0, 0)

// func gemvC4KQ8Kx4AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx4AVX2(SB), NOSPLIT, $128-56
	N_KERNEL(N4K_BLOCK, N4K_TOKENS4, 608)

// func gemvC4KQ8Kx3AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx3AVX2(SB), NOSPLIT, $96-56
	N_KERNEL(N4K_BLOCK, N4K_TOKENS3, 608)

// func gemvC4KQ8Kx2AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx2AVX2(SB), NOSPLIT, $64-56
	N_KERNEL(N4K_BLOCK, N4K_TOKENS2, 608)

// func gemvC6KQ8Kx4AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC6KQ8Kx4AVX2(SB), NOSPLIT, $128-56
	N_KERNEL(N6K_BLOCK, N6K_TOKENS4, 864)

// func gemvC6KQ8Kx3AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC6KQ8Kx3AVX2(SB), NOSPLIT, $96-56
	N_KERNEL(N6K_BLOCK, N6K_TOKENS3, 864)

// func gemvC6KQ8Kx2AVX2(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC6KQ8Kx2AVX2(SB), NOSPLIT, $64-56
	N_KERNEL(N6K_BLOCK, N6K_TOKENS2, 864)

// ---- AVX-512: the four-token Q6_K kernel on 64-byte registers. ----
//
// The two chunks of a quarter (scale group 8n+2k+p of the four rows) are 64 contiguous bytes of ql and
// of qh, so one register takes both. Its qwords are put in row order (row r's sixteen codes of the group
// in 128-bit lane r) so that one VPMADDUBSW with the token's sixteen activation bytes broadcast to every
// lane and one VPMADDWD with row r's scale in lane r cover the group, where the 32-byte kernels take two,
// an add and a VPMADDWD. Per token and block the integer sums are again exactly those of the dot
// product, and the block ends with gemvC6KQ8KAVX2's float steps.

// qwordsByRow puts the qwords of two interleaved chunks (rows 0-3 of chunk a, then of chunk b) in the
// order row 0 a, row 0 b, row 1 a, ..., row 3 b.
DATA qwordsByRow<>+0x00(SB)/8, $0
DATA qwordsByRow<>+0x08(SB)/8, $4
DATA qwordsByRow<>+0x10(SB)/8, $1
DATA qwordsByRow<>+0x18(SB)/8, $5
DATA qwordsByRow<>+0x20(SB)/8, $2
DATA qwordsByRow<>+0x28(SB)/8, $6
DATA qwordsByRow<>+0x30(SB)/8, $3
DATA qwordsByRow<>+0x38(SB)/8, $7
GLOBL qwordsByRow<>(SB), RODATA|NOPTR, $64

// wordOfLane: mask i (64 bytes at 64i) copies word i of each 128-bit lane to all eight words of the lane.
#define WORD_OF_LANE(i, w) \
	DATA wordOfLane<>+64*i+0x00(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x08(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x10(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x18(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x20(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x28(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x30(SB)/8, $w; \
	DATA wordOfLane<>+64*i+0x38(SB)/8, $w

WORD_OF_LANE(0, 0x0100010001000100)
WORD_OF_LANE(1, 0x0302030203020302)
WORD_OF_LANE(2, 0x0504050405040504)
WORD_OF_LANE(3, 0x0706070607060706)
WORD_OF_LANE(4, 0x0908090809080908)
WORD_OF_LANE(5, 0x0b0a0b0a0b0a0b0a)
WORD_OF_LANE(6, 0x0d0c0d0c0d0c0d0c)
WORD_OF_LANE(7, 0x0f0e0f0e0f0e0f0e)
GLOBL wordOfLane<>(SB), RODATA|NOPTR, $512

// Z6K_TOKEN adds the token's products with the codes in Z3 (group scale words in Z7) to S. Z8 is scratch.
#define Z6K_TOKEN(off, base, S) \
	VBROADCASTI64X2 off base, Z8; \
	VPMADDUBSW      Z8, Z3, Z8; \
	VPMADDWD        Z7, Z8, Z8; \
	VPADDD          Z8, S, S

// Z6K_QUARTER multiplies quarter k, chunks 2p and 2p+1 of half n: ql from qlc, the high bits hi(qh).
#define Z6K_QUARTER(n, k, p, qlc, lo, hi) \
	VMOVDQU64 32*(qlc)(SI), Z0; \
	lo; \
	VMOVDQU64 512+32*(4*n+2*p)(SI), Z1; \
	hi; \
	VPORQ     Z1, Z0, Z0; \
	VPERMQ    Z0, Z29, Z3; \
	VPSHUFB   wordOfLane<>+64*(2*k+p)(SB), Z4, Z7; \
	Z6K_TOKEN(4+128*n+32*k+16*p, (DI), Z16); \
	Z6K_TOKEN(4+128*n+32*k+16*p, (DI)(R8*1), Z17); \
	Z6K_TOKEN(4+128*n+32*k+16*p, (DI)(R8*2), Z18); \
	Z6K_TOKEN(4+128*n+32*k+16*p, (DI)(R10*1), Z19)

// The low four bits of the codes (from the low or high nibbles of ql) and bits 4-5 (from qh).
#define Z_LO_LOW VPANDQ Z31, Z0, Z0
#define Z_LO_HIGH VPSRLW $4, Z0, Z0; VPANDQ Z31, Z0, Z0
#define Z_HI_SHL4 VPSLLW $4, Z1, Z1; VPANDQ Z30, Z1, Z1
#define Z_HI_SHL2 VPSLLW $2, Z1, Z1; VPANDQ Z30, Z1, Z1
#define Z_HI_AS_IS VPANDQ Z30, Z1, Z1
#define Z_HI_SHR2 VPSRLW $2, Z1, Z1; VPANDQ Z30, Z1, Z1

// Z6K_OFFSET subtracts from S the token's 32·Σ scale·(block sum) over the eight groups of half n (Z5 =
// 32 times the scale words of the half, row r in lane r).
#define Z6K_OFFSET(n, base, S) \
	VBROADCASTI32X4 260+16*n base, Z8; \
	VPMADDWD        Z8, Z5, Z8; \
	VPSUBD          Z8, S, S

// Z6K_HALF multiplies half n with the four tokens.
#define Z6K_HALF(n) \
	VPMOVSXBW 768+32*n(SI), Z4; \
	VPSLLW    $5, Z4, Z5; \
	Z6K_OFFSET(n, (DI), Z16); \
	Z6K_OFFSET(n, (DI)(R8*1), Z17); \
	Z6K_OFFSET(n, (DI)(R8*2), Z18); \
	Z6K_OFFSET(n, (DI)(R10*1), Z19); \
	Z6K_QUARTER(n, 0, 0, 8*n, Z_LO_LOW, Z_HI_SHL4); \
	Z6K_QUARTER(n, 0, 1, 8*n+2, Z_LO_LOW, Z_HI_SHL4); \
	Z6K_QUARTER(n, 1, 0, 8*n+4, Z_LO_LOW, Z_HI_SHL2); \
	Z6K_QUARTER(n, 1, 1, 8*n+6, Z_LO_LOW, Z_HI_SHL2); \
	Z6K_QUARTER(n, 2, 0, 8*n, Z_LO_HIGH, Z_HI_AS_IS); \
	Z6K_QUARTER(n, 2, 1, 8*n+2, Z_LO_HIGH, Z_HI_AS_IS); \
	Z6K_QUARTER(n, 3, 0, 8*n+4, Z_LO_HIGH, Z_HI_SHR2); \
	Z6K_QUARTER(n, 3, 1, 8*n+6, Z_LO_HIGH, Z_HI_SHR2)

// Z_PAIRS sums the int32 lanes of Z (four per row, row r in 128-bit lane r) exactly into Y, two per row
// in the layout of the 32-byte kernels: [r0 r0 r1 r1 | r2 r2 r3 r3]. Clobbers Y8 and Y9.
#define Z_PAIRS(Z, Y) \
	VEXTRACTI64X4 $0, Z, Y8; \
	VEXTRACTI64X4 $1, Z, Y9; \
	VPHADDD       Y9, Y8, Y; \
	VPERMQ        $0xd8, Y, Y

// Z6K_END ends a block for the token at base as gemvC6KQ8KAVX2 does, on its accumulator F, with the
// rows' d in Y7. Clobbers Y8-Y11.
#define Z6K_END(base, S, F) \
	Z_PAIRS(S, Y10); \
	VPHADDD      Y10, Y10, Y10; \
	VCVTDQ2PS    Y10, Y10; \
	VBROADCASTSS base, Y11; \
	VMULPS       Y11, Y7, Y11; \
	VFMADD231PS  Y11, Y10, F

#define Z6K_BLOCK \
	N_PREFETCH5(1728); \
	N_PREFETCH5(2048); \
	N_PREFETCH5(2368); \
	VPXORD    Z16, Z16, Z16; \
	VPXORD    Z17, Z17, Z17; \
	VPXORD    Z18, Z18, Z18; \
	VPXORD    Z19, Z19, Z19; \
	Z6K_HALF(0); \
	Z6K_HALF(1); \
	VMOVQ     832(SI), X7; \
	VCVTPH2PS X7, X7; \
	VPERMQ    $0x50, Y7, Y7; \
	Z6K_END((DI), Z16, Y12); \
	Z6K_END((DI)(R8*1), Z17, Y13); \
	Z6K_END((DI)(R8*2), Z18, Y14); \
	Z6K_END((DI)(R10*1), Z19, Y15)

// func gemvC6KQ8Kx4AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC6KQ8Kx4AVX512(SB), NOSPLIT, $0-56
	Z_KERNEL(Z6K_BLOCK, 864)

// ---- AVX-512: the small-batch Q4_K kernels on 64-byte registers. ----
//
// Two chunks of a sub-block pair (qwords c and c+1 of the four rows) are 64 contiguous bytes, so one
// register takes both, its qwords put in row order (row r's sixteen codes in 128-bit lane r) so that one
// VPMADDUBSW with the token's sixteen activation bytes broadcast to every lane covers what takes two on
// 32 bytes, and one VPMADDWD with row r's scale in lane r applies a sub-block's scales: per token and
// block about half the multiplies and adds of the 32-byte kernels. Per token and block the integer sums
// are exactly those of the dot product, summed exactly into the 32-byte kernels' layout, and the block
// ends with gemvC4KQ8KAVX2's float steps, so every output is bit for bit what gemvC4KQ8KAVX2 writes.
//
// Registers: SI the weights, DI token 0 (R8 = lda, R10 = 3·lda), DX the output (AX = DX + 2·ldo, R11 =
// ldo bytes), CX the groups left, R12 the blocks left; Z31 = 0x0f bytes, Z29 = qwordsByRow, Z28 =
// qwordsEven, Z30 = the odd qwords' indices; per token
// L, H (16-bit sums of the block's sub-blocks 2g and 2g+1), S (the block's int32 sums) and F (the float
// accumulator) in the token lists below; Z0-Z11 scratch.

// qwordsEven picks the even qwords of a register into both halves of another (plus one: the odd ones).
DATA qwordsEven<>+0x00(SB)/8, $0
DATA qwordsEven<>+0x08(SB)/8, $2
DATA qwordsEven<>+0x10(SB)/8, $4
DATA qwordsEven<>+0x18(SB)/8, $6
DATA qwordsEven<>+0x20(SB)/8, $0
DATA qwordsEven<>+0x28(SB)/8, $2
DATA qwordsEven<>+0x30(SB)/8, $4
DATA qwordsEven<>+0x38(SB)/8, $6
GLOBL qwordsEven<>(SB), RODATA|NOPTR, $64

#define Z4K_TOKENS2(op, x, y) \
	op(x, y, (DI), (DX), Z16, Z20, Z24, Y12, X12); \
	op(x, y, (DI)(R8*1), (DX)(R11*1), Z17, Z21, Z25, Y13, X13)

#define Z4K_TOKENS3(op, x, y) \
	Z4K_TOKENS2(op, x, y); \
	op(x, y, (DI)(R8*2), (DX)(R11*2), Z18, Z22, Z26, Y14, X14)

#define Z4K_TOKENS4(op, x, y) \
	Z4K_TOKENS3(op, x, y); \
	op(x, y, (DI)(R10*1), (AX)(R11*1), Z19, Z23, Z27, Y15, X15)

// Z4K_ZEROF zeroes a token's float accumulator; Z4K_STOREF writes its rows 0-3 to its output column.
#define Z4K_ZEROF(x, y, base, out, L, H, S, F, XF) \
	VXORPS F, F, F

#define Z4K_STOREF(x, y, base, out, L, H, S, F, XF) \
	P_STORE(F, XF, out)

// Z4K_CODES leaves in Z0 (low nibbles: sub-block 2g) and Z1 (high nibbles: 2g+1) the codes of chunks
// 2p and 2p+1 of group g, in row order (qwordsByRow).
#define Z4K_CODES(g, p) \
	VMOVDQU64 32*(4*g+2*p)(SI), Z0; \
	VPERMQ    Z0, Z29, Z0; \
	VPSRLW    $4, Z0, Z1; \
	VPANDQ    Z31, Z0, Z0; \
	VPANDQ    Z31, Z1, Z1

// Z4K_FIRST and Z4K_NEXT multiply the codes in Z0 and Z1 (chunks 2p, 2p+1 of group g) with the token,
// starting (FIRST) or adding to (NEXT) its 16-bit sums L and H.
#define Z4K_FIRST(g, p, base, out, L, H, S, F, XF) \
	VBROADCASTI64X2 4+64*g+16*p base, Z8; \
	VPMADDUBSW      Z8, Z0, L; \
	VBROADCASTI64X2 36+64*g+16*p base, Z9; \
	VPMADDUBSW      Z9, Z1, H

#define Z4K_NEXT(g, p, base, out, L, H, S, F, XF) \
	VBROADCASTI64X2 4+64*g+16*p base, Z8; \
	VPMADDUBSW      Z8, Z0, Z8; \
	VPADDW          Z8, L, L; \
	VBROADCASTI64X2 36+64*g+16*p base, Z9; \
	VPMADDUBSW      Z9, Z1, Z9; \
	VPADDW          Z9, H, H

// Z4K_SCALE0 sets and Z4K_SCALE adds to S the token's 16-bit sums scaled by the sub-block scale words
// in Z2 and Z3 (row r's in its lane).
#define Z4K_SCALE0(g, p, base, out, L, H, S, F, XF) \
	VPMADDWD Z2, L, S; \
	VPMADDWD Z3, H, H; \
	VPADDD   H, S, S

#define Z4K_SCALE(g, p, base, out, L, H, S, F, XF) \
	VPMADDWD Z2, L, L; \
	VPADDD   L, S, S; \
	VPMADDWD Z3, H, H; \
	VPADDD   H, S, S

// Z4K_GROUP multiplies sub-blocks 2g and 2g+1 of the four rows with the tokens (Z4: the block's scale
// words, row r's eight in its lane).
#define Z4K_GROUP(g, scale, tokens) \
	Z4K_CODES(g, 0); \
	tokens(Z4K_FIRST, g, 0); \
	Z4K_CODES(g, 1); \
	tokens(Z4K_NEXT, g, 1); \
	VPSHUFB wordOfLane<>+64*(2*g)(SB), Z4, Z2; \
	VPSHUFB wordOfLane<>+64*(2*g+1)(SB), Z4, Z3; \
	tokens(scale, g, 0)

// Z4K_END ends a block for the token as gemvC4KQ8KAVX2 does: the mins against its block sums (Z5: min
// words 0-3 of the row in its lane, each twice; Z6: 4-7) into L, the sums S and L summed exactly per row
// into [s0 s1 m0 m1 | s2 s3 m2 m3] in Y10 (the 32-byte kernels' layout, through the qword picks of
// Z28 and Z30), then the two fused multiply-adds on F with d·da and -dmin·da (Y7, Y9 as K_DVECS
// leaves them in Y0, Y1). Clobbers Z8, Z10 and Y11.
#define Z4K_END(x, y, base, out, L, H, S, F, XF) \
	VBROADCASTI32X4 260 base, Z8; \
	VPMADDWD        Z8, Z5, L; \
	VBROADCASTI32X4 276 base, Z8; \
	VPMADDWD        Z8, Z6, Z8; \
	VPADDD          Z8, L, L; \
	VPUNPCKLQDQ     L, S, Z8; \
	VPUNPCKHQDQ     L, S, S; \
	VPADDD          Z8, S, S; \
	VPERMQ          S, Z28, Z10; \
	VPERMQ          S, Z30, Z8; \
	VPHADDD         Y8, Y10, Y10; \
	VCVTDQ2PS       Y10, Y10; \
	VBROADCASTSS    base, Y11; \
	VMULPS          Y11, Y7, Y8; \
	VMULPS          Y11, Y9, Y11; \
	VFMADD231PS     Y8, Y10, F; \
	VPERMILPS       $0x4e, Y10, Y10; \
	VFMADD231PS     Y11, Y10, F

// Z4K_BLOCK multiplies one interleaved Q4_K block with the tokens.
#define Z4K_BLOCK(tokens) \
	N_PREFETCH5(1216); \
	N_PREFETCH5(1536); \
	VPMOVZXBW  512(SI), Z4; \
	Z4K_GROUP(0, Z4K_SCALE0, tokens); \
	Z4K_GROUP(1, Z4K_SCALE, tokens); \
	Z4K_GROUP(2, Z4K_SCALE, tokens); \
	Z4K_GROUP(3, Z4K_SCALE, tokens); \
	VPMOVZXBW  544(SI), Z5; \
	VPUNPCKHWD Z5, Z5, Z6; \
	VPUNPCKLWD Z5, Z5, Z5; \
	VCVTPH2PS  576(SI), Y7; \
	VPERMILPS  $0xd8, Y7, Y7; \
	VXORPS     packK<>+0x180(SB), Y7, Y7; \
	VPERMILPS  $0x4e, Y7, Y9; \
	tokens(Z4K_END, 0, 0)

// Z4K_KERNEL is the body of the kernels below, as N_KERNEL's.
#define Z4K_KERNEL(tokens) \
	N_ARGS; \
	MOVL         $0x0f0f0f0f, AX; \
	VPBROADCASTD AX, Z31; \
	VMOVDQU64    qwordsByRow<>(SB), Z29; \
	VMOVDQU64    qwordsEven<>(SB), Z28; \
	MOVQ         $1, AX; \
	VPBROADCASTQ AX, Z30; \
	VPADDQ       Z28, Z30, Z30; \
z4Group: \
	MOVQ a+8(FP), DI; \
	MOVQ nb+40(FP), R12; \
	tokens(Z4K_ZEROF, 0, 0); \
z4Block: \
	Z4K_BLOCK(tokens); \
	ADDQ $608, SI; \
	ADDQ $292, DI; \
	DECQ R12; \
	JNZ  z4Block; \
	LEAQ (DX)(R11*2), AX; \
	tokens(Z4K_STOREF, 0, 0); \
	ADDQ $16, DX; \
	DECQ CX; \
	JNZ  z4Group; \
	VZEROUPPER; \
	RET

// func gemvC4KQ8Kx4AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx4AVX512(SB), NOSPLIT, $0-56
	Z4K_KERNEL(Z4K_TOKENS4)

// func gemvC4KQ8Kx3AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx3AVX512(SB), NOSPLIT, $0-56
	Z4K_KERNEL(Z4K_TOKENS3)

// func gemvC4KQ8Kx2AVX512(w, a *byte, lda int, out *float32, ldo, nb, groups int)
TEXT ·gemvC4KQ8Kx2AVX512(SB), NOSPLIT, $0-56
	Z4K_KERNEL(Z4K_TOKENS2)
