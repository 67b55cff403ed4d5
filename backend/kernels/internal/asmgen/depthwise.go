package main

import (
	"fmt"
	"math/bits"
)

// depthwise emits dwTapsAVX512, dwTapsAVX2, copyRowsAVX512, copyRowsAVX2,
// evenOddAVX512 and evenOddAVX2, the loops of the depthwise convolutions
// (conv_depthwise.go).
//
// dwTaps(n, taps, w, offs, x, y, bias, lo, hi, rows, xs, ys) sets, for each row
// r < rows,
//
//	y[r·ys+j] = min(max(bias + Σ_t w[t]·x[r·xs+offs[t]+j], lo), hi)   for j < n,
//
// the taps added in order, each a fused multiply-add (the bits of an affine
// pass for tap 0 and an axpy for each other tap), with lo = -Inf and hi = +Inf
// for no activation (NaN is kept, as the products' stores keep it). Eight
// vectors of outputs at a time, each in its own accumulator, so that a tap's
// eight products run in parallel; then four; then the remaining one to four
// vectors (fewer than four vectors' values), the last masked, in one block. taps must
// be at least 1 (the tap loop runs once before its test).
//
// evenOdd(n, x, even, odd, rows, xs, ds) sets even[r·ds+i] = x[r·xs+2i] and
// odd[r·ds+i] = x[r·xs+2i+1] for i < n and r < rows: rows of a stride-2
// convolution's input split into their two column phases.
func depthwise(w *asm) {
	for _, v := range vecISAs {
		dwTaps(w, v)
		copyRows(w, v)
	}
	evenOdd(w)
}

// copyRows emits copyRowsAVX512 and copyRowsAVX2: copyRows(n, src, dst, rows, ss,
// ds) sets dst[r·ds+j] = src[r·ss+j] for j < n and r < rows (at least one, n at
// least 1), four vectors at a time, then one, the last masked: a depthwise plane's
// rows into its padded buffer and out of the rows it is computed in, one call a plane
// instead of a copy a row (most of the work on 7×7 and 14×14 maps).
func copyRows(w *asm, v vecISA) {
	label := "cr" + v.suffix
	bytes := 4 * v.lanes
	w.p("// func copyRows%s(n int, src, dst *float32, rows, ss, ds int)", v.suffix)
	w.p("TEXT ·copyRows%s(SB), NOSPLIT, $0-48", v.suffix)
	w.p("\tMOVQ src+8(FP), R10\n\tMOVQ dst+16(FP), R11\n\tMOVQ rows+24(FP), R12")
	w.p("\tMOVQ ss+32(FP), R8\n\tSHLQ $2, R8\n\tMOVQ ds+40(FP), R9\n\tSHLQ $2, R9")
	// The last vector's lanes, n mod lanes (none: no masked vector).
	w.p("\tMOVQ n+0(FP), CX\n\tANDQ $%d, CX", v.lanes-1)
	v.tailMask(w, "DX", "R14")
	w.p("%s_row:\n\tMOVQ n+0(FP), CX\n\tMOVQ R10, SI\n\tMOVQ R11, DI", label)
	w.p("%s_loop4:\n\tCMPQ CX, $%d\n\tJL %s_loop1", label, 4*v.lanes, label)
	for i := 0; i < 4; i++ {
		w.p("\tVMOVUPS %d(SI), %s", i*bytes, v.reg(i))
	}
	for i := 0; i < 4; i++ {
		w.p("\tVMOVUPS %s, %d(DI)", v.reg(i), i*bytes)
	}
	w.p("\tADDQ $%d, SI\n\tADDQ $%d, DI\n\tSUBQ $%d, CX\n\tJMP %s_loop4", 4*bytes, 4*bytes, 4*v.lanes, label)
	w.p("%s_loop1:\n\tCMPQ CX, $%d\n\tJL %s_tail", label, v.lanes, label)
	w.p("\tVMOVUPS (SI), %s\n\tVMOVUPS %s, (DI)", v.reg(0), v.reg(0))
	w.p("\tADDQ $%d, SI\n\tADDQ $%d, DI\n\tSUBQ $%d, CX\n\tJMP %s_loop1", bytes, bytes, v.lanes, label)
	w.p("%s_tail:\n\tTESTQ CX, CX\n\tJZ %s_next", label, label)
	if v.r == "Z" {
		w.p("\tVMOVUPS.Z (SI), K1, Z0\n\tVMOVUPS Z0, K1, (DI)")
	} else {
		w.p("\tVMASKMOVPS (SI), Y15, Y0\n\tVMASKMOVPS Y0, Y15, (DI)")
	}
	w.p("%s_next:\n\tADDQ R8, R10\n\tADDQ R9, R11\n\tDECQ R12\n\tJNZ %s_row", label, label)
	w.p("\tVZEROUPPER\n\tRET\n")
}

func dwTaps(w *asm, v vecISA) {
	label := "dw" + v.suffix
	bytes := 4 * v.lanes
	// Registers: accumulators 0-7, bias 8, lo 9, hi 10, the tap's weight 11,
	// a masked load 12, the AVX2 mask 15.
	acc, bias, lo, hi, wt, tmp := v.reg, v.reg(8), v.reg(9), v.reg(10), v.reg(11), v.reg(12)
	w.p("// func dwTaps%s(n, taps int, w *float32, offs *int, x, y *float32, bias, lo, hi float32, rows, xs, ys int)", v.suffix)
	w.p("TEXT ·dwTaps%s(SB), NOSPLIT, $0-88", v.suffix)
	w.p("\tMOVQ taps+8(FP), R9\n\tMOVQ w+16(FP), SI\n\tMOVQ offs+24(FP), DI")
	w.p("\tVBROADCASTSS bias+48(FP), %s\n\tVBROADCASTSS lo+52(FP), %s\n\tVBROADCASTSS hi+56(FP), %s", bias, lo, hi)
	// The rows (at least one): R10 and R11 the row's x and y, R12 the rows left, R13
	// x's stride in bytes; y's is read from the frame at the end of each row.
	w.p("\tMOVQ x+32(FP), R10\n\tMOVQ y+40(FP), R11\n\tMOVQ rows+64(FP), R12\n\tMOVQ xs+72(FP), R13\n\tSHLQ $2, R13")
	// The last vector's lanes, ((n-1) mod lanes) + 1, as a mask (K1 or Y15), the same
	// for every row.
	w.p("\tMOVQ n+0(FP), CX\n\tDECQ CX\n\tANDQ $%d, CX\n\tINCQ CX", v.lanes-1)
	v.tailMask(w, "DX", "R14")
	w.p("%s_row:\n\tMOVQ n+0(FP), CX\n\tMOVQ R10, AX\n\tMOVQ R11, BX", label)
	// block emits the loop over taps for k accumulators, the last masked (K1 on
	// AVX-512, Y15 on AVX2) when masked is set, then the clamp and the stores;
	// AX and BX advance by k vectors.
	block := func(name string, k int, masked bool) {
		for i := 0; i < k; i++ {
			w.p("\tVMOVAPS %s, %s", bias, acc(i))
		}
		w.p("\tXORQ DX, DX")
		w.p("%s:", name)
		w.p("\tMOVQ (DI)(DX*8), R14\n\tLEAQ (AX)(R14*4), R15\n\tVBROADCASTSS (SI)(DX*4), %s", wt)
		for i := 0; i < k; i++ {
			if !masked || i < k-1 {
				w.p("\tVFMADD231PS %d(R15), %s, %s", i*bytes, wt, acc(i))
				continue
			}
			v.loadVec(w, i*bytes, "R15", tmp, true)
			w.p("\tVFMADD231PS %s, %s, %s", tmp, wt, acc(i))
		}
		w.p("\tINCQ DX\n\tCMPQ DX, R9\n\tJL %s", name)
		for i := 0; i < k; i++ {
			clamp(w, acc(i), lo, hi)
			v.storeVec(w, acc(i), i*bytes, "BX", masked && i == k-1)
		}
		w.p("\tADDQ $%d, AX\n\tADDQ $%d, BX", k*bytes, k*bytes)
	}
	w.p("%s_loop8:\n\tCMPQ CX, $%d\n\tJL %s_loop4", label, 8*v.lanes, label)
	block(label+"_taps8", 8, false)
	w.p("\tSUBQ $%d, CX\n\tJMP %s_loop8", 8*v.lanes, label)
	// Fewer than eight vectors remain: four once, then the rest (fewer than four
	// vectors' values, so one to four vectors, four by falling through the tests of
	// one to three) in one block with its last vector masked.
	w.p("%s_loop4:\n\tCMPQ CX, $%d\n\tJL %s_rest", label, 4*v.lanes, label)
	block(label+"_taps4", 4, false)
	w.p("\tSUBQ $%d, CX", 4*v.lanes)
	w.p("%s_rest:\n\tTESTQ CX, CX\n\tJZ %s_done", label, label)
	// The vectors left, ⌈CX/lanes⌉, choose the block (its last vector masked by the
	// mask made before the rows: CX ≡ n mod lanes here).
	w.p("\tMOVQ CX, R8\n\tADDQ $%d, R8\n\tSHRQ $%d, R8", v.lanes-1, bits.TrailingZeros(uint(v.lanes)))
	for k := 1; k <= 3; k++ {
		w.p("\tCMPQ R8, $%d\n\tJEQ %s_rest%d", k, label, k)
	}
	for k := 4; k >= 1; k-- {
		w.p("%s_rest%d:", label, k)
		block(fmt.Sprintf("%s_tapsRest%d", label, k), k, true)
		w.p("\tJMP %s_done", label)
	}
	w.p("%s_done:\n\tADDQ R13, R10\n\tMOVQ ys+80(FP), R8\n\tLEAQ (R11)(R8*4), R11\n\tDECQ R12\n\tJNZ %s_row", label, label)
	w.p("\tVZEROUPPER\n\tRET\n")
}

// evenOdd emits evenOddAVX512 (two-source permutes, 16 pairs at a time, then the
// remainder masked) and
// evenOddAVX2 (shuffles within lanes, then a cross-lane permute; 8 pairs).
func evenOdd(w *asm) {
	// The permutes' indices: Winograd's tables of the even and odd lanes (2j, 2j+1).
	w.p(`// func evenOddAVX512(n int, x, even, odd *float32, rows, xs, ds int)
TEXT ·evenOddAVX512(SB), NOSPLIT, $0-56
	VMOVUPS winoEven<>(SB), Z4
	VMOVUPS winoOdd<>(SB), Z5
` + evenOddRows("eo512") + `
eo512_loop:
	CMPQ CX, $16
	JL eo512_tail
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVAPS Z4, Z2
	VPERMI2PS Z1, Z0, Z2
	VMOVAPS Z5, Z3
	VPERMI2PS Z1, Z0, Z3
	VMOVUPS Z2, (DI)
	VMOVUPS Z3, (DX)
	ADDQ $128, SI
	ADDQ $64, DI
	ADDQ $64, DX
	SUBQ $16, CX
	JMP eo512_loop
eo512_tail:
	TESTQ CX, CX
	JZ eo512_done
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K3
	ADDL CX, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	SHRL $16, AX
	KMOVW AX, K2
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVAPS Z4, Z2
	VPERMI2PS Z1, Z0, Z2
	VMOVAPS Z5, Z3
	VPERMI2PS Z1, Z0, Z3
	VMOVUPS Z2, K3, (DI)
	VMOVUPS Z3, K3, (DX)
eo512_done:
` + evenOddNext("eo512") + `
	VZEROUPPER
	RET

// func evenOddAVX2(n int, x, even, odd *float32, rows, xs, ds int)
TEXT ·evenOddAVX2(SB), NOSPLIT, $0-56
` + evenOddRows("eo2") + `
eo2_loop:
	CMPQ CX, $8
	JL eo2_tail
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VSHUFPS $0x88, Y1, Y0, Y2
	VSHUFPS $0xdd, Y1, Y0, Y3
	VPERMPD $0xd8, Y2, Y2
	VPERMPD $0xd8, Y3, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, (DX)
	ADDQ $64, SI
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $8, CX
	JMP eo2_loop
eo2_tail:
	TESTQ CX, CX
	JZ eo2_done
eo2_one:
	MOVL (SI), AX
	MOVL AX, (DI)
	MOVL 4(SI), AX
	MOVL AX, (DX)
	ADDQ $8, SI
	ADDQ $4, DI
	ADDQ $4, DX
	DECQ CX
	JNZ eo2_one
eo2_done:
` + evenOddNext("eo2") + `
	VZEROUPPER
	RET
`)
}

// evenOddRows loads evenOdd's row loop registers (R10, R11, R12: the row's x,
// even and odd; R13 the rows left, at least one; R8 and R9 the strides in bytes)
// and starts a row (CX the pairs, SI, DI, DX the pointers) at label_row.
func evenOddRows(label string) string {
	return fmt.Sprintf(`	MOVQ x+8(FP), R10
	MOVQ even+16(FP), R11
	MOVQ odd+24(FP), R12
	MOVQ rows+32(FP), R13
	MOVQ xs+40(FP), R8
	SHLQ $2, R8
	MOVQ ds+48(FP), R9
	SHLQ $2, R9
%s_row:
	MOVQ n+0(FP), CX
	MOVQ R10, SI
	MOVQ R11, DI
	MOVQ R12, DX`, label)
}

// evenOddNext moves evenOdd's pointers to the next row and loops to label_row
// while rows are left.
func evenOddNext(label string) string {
	return fmt.Sprintf(`	ADDQ R8, R10
	ADDQ R9, R11
	ADDQ R9, R12
	DECQ R13
	JNZ %s_row`, label)
}
