//go:build amd64 && !purego

#include "textflag.h"

// The Adam update of adamKernelGo, 16 (AVX-512) or 8 (AVX2) elements at a
// time, with the same float32 operations in the same order (no fused
// multiply-adds, a correctly rounded square root), so the results are the
// Go loop's, bit for bit.
//
// c points at an adamCoef: b1, omb1, b2, omb2, wd, decay, negStep, eps.
// Registers: x Z0, g Z1, m Z3, v Z5, temporaries Z2, Z4, Z6-Z8; the
// coefficients in Z20-Z27.

// func adamAVX512(n int, p, grad, m, v *float32, c *adamCoef, useWD, useDecay bool)
TEXT ·adamAVX512(SB), NOSPLIT, $0-50
	MOVQ n+0(FP), CX
	MOVQ p+8(FP), SI
	MOVQ grad+16(FP), DI
	MOVQ m+24(FP), R8
	MOVQ v+32(FP), R9
	MOVQ c+40(FP), AX
	MOVBLZX useWD+48(FP), R10
	MOVBLZX useDecay+49(FP), R11
	VBROADCASTSS 0(AX), Z20
	VBROADCASTSS 4(AX), Z21
	VBROADCASTSS 8(AX), Z22
	VBROADCASTSS 12(AX), Z23
	VBROADCASTSS 16(AX), Z24
	VBROADCASTSS 20(AX), Z25
	VBROADCASTSS 24(AX), Z26
	VBROADCASTSS 28(AX), Z27
	// K1: all lanes, then the remainder's lanes for the last block.
	KXNORW K1, K1, K1

loop:
	CMPQ CX, $16
	JGE  block
	TESTQ CX, CX
	JZ   done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ $16, CX

block:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (DI), K1, Z1
	TESTL R10, R10
	JZ   nowd
	VMULPS Z24, Z0, Z2
	VADDPS Z2, Z1, Z1

nowd:
	TESTL R11, R11
	JZ   nodecay
	VMULPS Z25, Z0, Z0

nodecay:
	VMOVUPS.Z (R8), K1, Z3
	VMULPS Z20, Z3, Z3
	VMULPS Z21, Z1, Z4
	VADDPS Z4, Z3, Z3
	VMOVUPS.Z (R9), K1, Z5
	VMULPS Z22, Z5, Z5
	VMULPS Z23, Z1, Z6
	VMULPS Z1, Z6, Z6
	VADDPS Z6, Z5, Z5
	VMOVUPS Z3, K1, (R8)
	VMOVUPS Z5, K1, (R9)
	VSQRTPS Z5, Z7
	VADDPS Z27, Z7, Z7
	VMULPS Z26, Z3, Z8
	VDIVPS Z7, Z8, Z8
	VADDPS Z8, Z0, Z0
	VMOVUPS Z0, K1, (SI)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	SUBQ $16, CX
	JMP  loop

done:
	VZEROUPPER
	RET

// func adamAVX2(n int, p, grad, m, v *float32, c *adamCoef, useWD, useDecay bool)
//
// n must be a multiple of 8; the caller does the rest.
TEXT ·adamAVX2(SB), NOSPLIT, $0-50
	MOVQ n+0(FP), CX
	MOVQ p+8(FP), SI
	MOVQ grad+16(FP), DI
	MOVQ m+24(FP), R8
	MOVQ v+32(FP), R9
	MOVQ c+40(FP), AX
	MOVBLZX useWD+48(FP), R10
	MOVBLZX useDecay+49(FP), R11
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	SHRQ $3, CX
	JZ   done2

loop2:
	VMOVUPS (SI), Y0
	VMOVUPS (DI), Y1
	TESTL R10, R10
	JZ   nowd2
	VMULPS Y12, Y0, Y2
	VADDPS Y2, Y1, Y1

nowd2:
	TESTL R11, R11
	JZ   nodecay2
	VMULPS Y13, Y0, Y0

nodecay2:
	VMOVUPS (R8), Y3
	VMULPS Y8, Y3, Y3
	VMULPS Y9, Y1, Y4
	VADDPS Y4, Y3, Y3
	VMOVUPS (R9), Y5
	VMULPS Y10, Y5, Y5
	VMULPS Y11, Y1, Y6
	VMULPS Y1, Y6, Y6
	VADDPS Y6, Y5, Y5
	VMOVUPS Y3, (R8)
	VMOVUPS Y5, (R9)
	VSQRTPS Y5, Y7
	VADDPS Y15, Y7, Y7
	VMULPS Y14, Y3, Y2
	VDIVPS Y7, Y2, Y2
	VADDPS Y2, Y0, Y0
	VMOVUPS Y0, (SI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNZ  loop2

done2:
	VZEROUPPER
	RET
