package main

import "fmt"

// The bfloat16 kernel's packers. A panel of pairs holds in slot (q, l) lane l of k rows
// 2q (low half) and 2q+1 (high half), rounded to bfloat16 (VCVTNE2PS2BF16 and
// VCVTNEPS2BF16: to nearest, ties to even); a row past kc reads as zeros, and so do the
// lanes past n. They read the float32 rows and write the pairs in one pass (no float32
// panel in between, as cvtPairsBF16 needs).

// laneMasks emits K1 (lanes 0-15) and K2 (lanes 16-31) set on the first n lanes, n in
// register n; it clobbers AX, CX and tmp.
func laneMasks(w *asm, name, n, tmp string) {
	w.p(`	MOVQ %[2]s, AX
	CMPQ AX, $16
	JLE  %[1]s_m1
	MOVL $16, AX
%[1]s_m1:
	MOVL $1, %[3]s
	MOVL AX, CX
	SHLL CX, %[3]s
	DECL %[3]s
	KMOVW %[3]s, K1
	MOVQ %[2]s, AX
	SUBQ $16, AX
	JGE  %[1]s_m2
	XORQ AX, AX
%[1]s_m2:
	MOVL $1, %[3]s
	MOVL AX, CX
	SHLL CX, %[3]s
	DECL %[3]s
	KMOVW %[3]s, K2`, name, n, tmp)
}

// cvtPair emits the rounding of float32 vectors lo and hi (zmm numbers) into pair slots
// in zmm dst: VCVTNE2PS2BF16 gives [lo's 16 words | hi's 16 words], VPERMW with
// bf16Interleave (in Z31) puts word j beside word 16+j.
func cvtPair(w *asm, dst, lo, hi int) {
	w.p("%s", evex512(0x72, 3, dst, hi, lo))
	w.p("\tVPERMW Z%d, Z31, Z%d", dst, dst)
}

// packCopyPairs emits packCopyPairs<w>(kc int, src *float32, koff *int32, n int, dst
// *float32): slot (q, l) of dst = rows koff[2q] and koff[2q+1] of src at lane l < n.
func packCopyPairs(w *asm, width int) {
	name := fmt.Sprintf("packCopyPairs%d", width)
	w.p(`// func %[1]s(kc int, src *float32, koff *int32, n int, dst *float32)
//
// dst[q*%[2]d+j] = the bfloat16 pair of src[koff[2q]+j] and src[koff[2q+1]+j] (0 for
// 2q+1 = kc) for 2q < kc and j < n; zero for n <= j < %[2]d. Lanes past n are not read.
TEXT ·%[1]s(SB), NOSPLIT, $0-40
	MOVQ src+8(FP), SI
	MOVQ koff+16(FP), BX
	MOVQ n+24(FP), R8
	MOVQ dst+32(FP), DI`, name, width)
	laneMasks(w, name, "R8", "DX")
	w.p("\tVMOVDQU16 bf16Interleave<>(SB), Z31\n\tMOVQ kc+0(FP), R9")
	if width == 32 {
		// one pair a step: Z0, Z2 the low row's lanes 0-15 and 16-31, Z1, Z3 the high row's
		row := func(off string, lo, hi int) {
			w.p("\tMOVLQSX %s(BX), AX", off)
			w.p("\tVMOVUPS.Z (SI)(AX*4), K1, Z%d\n\tVMOVUPS.Z 64(SI)(AX*4), K2, Z%d", lo, hi)
		}
		store := func() {
			cvtPair(w, 4, 0, 1)
			cvtPair(w, 5, 2, 3)
			w.p("\tVMOVUPS Z4, (DI)\n\tVMOVUPS Z5, 64(DI)")
		}
		pairSteps(w, name, 128, func() { row("0", 0, 2) }, func() { row("4", 1, 3) }, "\tVPXORD Z1, Z1, Z1\n\tVPXORD Z3, Z3, Z3", store)
	} else {
		// two pairs a step in one zmm: Z0 = [row 4s | row 4s+2], Z1 = [row 4s+1 | row 4s+3]
		w.p("\tMOVQ R9, CX\n\tSHRQ $2, CX\n\tJZ   %s_two", name)
		w.p("%s_loop:", name)
		for r, dst := range []string{"Y0", "Y1", "Y6", "Y7"} {
			w.p("\tMOVLQSX %d(BX), AX\n\tVMOVUPS.Z (SI)(AX*4), K1, %s", 4*r, dst)
		}
		w.p("\tVINSERTF32X8 $1, Y6, Z0, Z0\n\tVINSERTF32X8 $1, Y7, Z1, Z1")
		cvtPair(w, 2, 0, 1)
		w.p("\tVMOVUPS Z2, (DI)\n\tADDQ $16, BX\n\tADDQ $64, DI\n\tDECQ CX\n\tJNZ  %s_loop", name)
		// the 0-3 rows left: a pair, then a row alone
		w.p("%s_two:\n\tTESTQ $2, R9\n\tJZ   %s_odd", name, name)
		w.p("\tMOVLQSX (BX), AX\n\tVMOVUPS.Z (SI)(AX*4), K1, Y0")
		w.p("\tMOVLQSX 4(BX), AX\n\tVMOVUPS.Z (SI)(AX*4), K1, Y1")
		cvtPair(w, 2, 0, 1)
		w.p("\tVMOVUPS Y2, (DI)\n\tADDQ $8, BX\n\tADDQ $32, DI")
		w.p("%s_odd:\n\tTESTQ $1, R9\n\tJZ   %s_done", name, name)
		w.p("\tMOVLQSX (BX), AX\n\tVMOVUPS.Z (SI)(AX*4), K1, Y0\n\tVPXORD Z1, Z1, Z1")
		cvtPair(w, 2, 0, 1)
		w.p("\tVMOVUPS Y2, (DI)")
	}
	w.p("%s_done:\n\tVZEROUPPER\n\tRET\n", name)
}

// packGatherPairs emits packGatherPairs<w>(kc int, src *float32, koff, lane *int32, n int,
// dst *float32): packCopyPairs's slots with lane l at src[koff[p]+lane[l]], gathered.
func packGatherPairs(w *asm, width int) { pairGather(w, width, false) }

// pairGather emits the gathering pair packers of one width: packGatherPairs<w> from
// float32 values (VGATHERDPS, then cvtPair's rounding), or with half packGatherHalf<w>
// from bfloat16 values (two to a slot, offsets counting values), each value a 32-bit
// gather at its offset (scale 2) whose low half is kept, moved as it is.
func pairGather(w *asm, width int, half bool) {
	name, doc := fmt.Sprintf("packGatherPairs%d", width), `the bfloat16 pair of src[koff[2q]+lane[j]] and src[koff[2q+1]+lane[j]]
// (0 for 2q+1 = kc)`
	gather, scale, setup := "VGATHERDPS", 4, "\tVMOVDQU16 bf16Interleave<>(SB), Z31"
	if half {
		name, doc = fmt.Sprintf("packGatherHalf%d", width), `the bfloat16 values koff[2q]+lane[j] and koff[2q+1]+lane[j] of src (0
// for 2q+1 = kc), read one value past each offset,`
		gather, scale, setup = "VPGATHERDD", 2, "\tMOVL $0xffff, AX\n\tVPBROADCASTD AX, Z30"
	}
	w.p(`// func %[1]s(kc int, src *float32, koff *int32, lane *int32, n int, dst *float32)
//
// dst[q*%[2]d+j] = %[3]s for 2q < kc and j < n; zero for n <= j < %[2]d.
TEXT ·%[1]s(SB), NOSPLIT, $0-48
	MOVQ src+8(FP), SI
	MOVQ koff+16(FP), BX
	MOVQ lane+24(FP), DX
	MOVQ n+32(FP), R8
	MOVQ dst+40(FP), DI`, name, width, doc)
	laneMasks(w, name, "R8", "R10")
	w.p("%s\n\tMOVQ kc+0(FP), R9", setup)
	// row emits row off(BX)'s lanes into zmm lo (lanes 0-15) and hi (16-31, width 32).
	row := func(off string, lo, hi int) {
		w.p("\tVPBROADCASTD %s(BX), Z4", off)
		w.p("\tVPADDD Z2, Z4, Z5\n\tKMOVW K1, K5\n\tVPXORD Z%d, Z%d, Z%d\n\t%s (SI)(Z5*%d), K5, Z%d", lo, lo, lo, gather, scale, lo)
		if width == 32 {
			w.p("\tVPADDD Z3, Z4, Z6\n\tKMOVW K2, K6\n\tVPXORD Z%d, Z%d, Z%d\n\t%s (SI)(Z6*%d), K6, Z%d", hi, hi, hi, gather, scale, hi)
		}
	}
	// Lanes 0-15 in Z2, 16-31 in Z3 (width 8: lanes 8-15 are masked off by K1).
	w.p("\tVMOVDQU32.Z (DX), K1, Z2")
	if width == 32 {
		w.p("\tVMOVDQU32.Z 64(DX), K2, Z3")
	}
	// pair puts the rows' values of lo and hi into the slots of dst.
	pair := func(dst, lo, hi int) {
		if half {
			w.p("\tVPANDD Z30, Z%d, Z%d\n\tVPSLLD $16, Z%d, Z%d\n\tVPORD Z%d, Z%d, Z%d", lo, lo, hi, hi, hi, lo, dst)
			return
		}
		cvtPair(w, dst, lo, hi)
	}
	store := func() {
		pair(12, 0, 1)
		if width == 32 {
			pair(13, 10, 11)
			w.p("\tVMOVDQU32 Z12, (DI)\n\tVMOVDQU32 Z13, 64(DI)")
		} else {
			w.p("\tVMOVDQU32 Y12, (DI)")
		}
	}
	pairSteps(w, name, 4*width, func() { row("0", 0, 10) }, func() { row("4", 1, 11) }, "\tVPXORD Z1, Z1, Z1\n\tVPXORD Z11, Z11, Z11", store)
	w.p("%s_done:\n\tVZEROUPPER\n\tRET\n", name)
}

// pairSteps emits the loop of a pair packer over kc (in R9) rows of offsets at BX: kc/2
// steps that load the low row (low), the high row (high) and store a panel row, BX
// advanced by two offsets and DI by step bytes; then, for an odd kc, the last row
// alone, the high row's registers cleared by zero, and stored. It ends at name_done.
func pairSteps(w *asm, name string, step int, low, high func(), zero string, store func()) {
	w.p("\tMOVQ R9, CX\n\tSHRQ $1, CX\n\tJZ   %s_odd", name)
	w.p("%s_loop:", name)
	low()
	high()
	store()
	w.p("\tADDQ $8, BX\n\tADDQ $%d, DI\n\tDECQ CX\n\tJNZ  %s_loop", step, name)
	w.p("%s_odd:\n\tTESTQ $1, R9\n\tJZ   %s_done", name, name)
	low()
	w.p("%s", zero)
	store()
}

// packTrans8Pairs emits packTrans8Pairs(kc int, src *float32, lane *int32, dst *float32,
// ld int): dst[q*ld+i] = the pair of src[lane[i]+2q] and src[lane[i]+2q+1] for 2q < kc
// (a multiple of 16) and i < 8. Each lane's 16 consecutive values round to 8 pair slots
// (VCVTNEPS2BF16 keeps their order, so consecutive words are the pairs), and the
// 8×8 transpose of packTrans8 spreads them over the panel's rows.
func packTrans8Pairs(w *asm) {
	transpose8(w, "packTrans8Pairs", `dst[q*ld+i] = the bfloat16 pair of src[lane[i]+2q], src[lane[i]+2q+1] for 2q < kc and
// i < 8; kc is a multiple of 16.`, "ptp", 4, 2, func() {
		for i := 0; i < 8; i++ {
			w.p("\tVMOVUPS (SI)(R%d*1), Z%d", 8+i, i)
		}
		for i := 0; i < 8; i++ {
			w.p("%s", evex512(0x72, 2, i, 0, i)) // VCVTNEPS2BF16 Zi, Yi
		}
	}, 64)
}

// transpose8 emits a transposing packer, name(kc int, src *float32, lane *int32, dst
// *float32, ld int), with the comment doc: each step (kc >> kshift of them) loads eight
// lanes' rows (lane offsets in src scaled by shift) into Y0-Y7 with load, transposes them
// and stores eight panel rows ld apart, then advances src by step bytes.
func transpose8(w *asm, name, doc, lab string, kshift, shift int, load func(), step int) {
	w.p(`// func %[1]s(kc int, src *float32, lane *int32, dst *float32, ld int)
//
// %[2]s
TEXT ·%[1]s(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	SHRQ $%[3]d, CX
	JZ   %[4]sdone`, name, doc, kshift, lab)
	transposeSetup(w, shift)
	w.p("%sloop:", lab)
	load()
	transpose8x8Store(w)
	w.p("\tADDQ $%d, SI\n\tLEAQ (DI)(AX*8), DI\n\tDECQ CX\n\tJNZ  %sloop\n\tVZEROUPPER\n%sdone:\n\tRET\n", step, lab, lab)
}

// loadRows8 emits the loads of eight 32-byte rows, one a lane, into Y0-Y7.
func loadRows8(w *asm) func() {
	return func() {
		for i := 0; i < 8; i++ {
			w.p("\tVMOVUPS (SI)(R%d*1), Y%d", 8+i, i)
		}
	}
}

// transposeSetup emits the loads of packTrans8's arguments after kc: SI src, DI dst,
// AX the row stride in bytes (ld·4), DX three of them, R8-R15 the eight lanes' byte
// offsets (the lane table's entries shifted left by shift: 2 for float32 values, 1 for
// bfloat16).
func transposeSetup(w *asm, shift int) {
	w.p(`	MOVQ src+8(FP), SI
	MOVQ lane+16(FP), BX
	MOVQ dst+24(FP), DI
	MOVQ ld+32(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), DX`)
	for i := 0; i < 8; i++ {
		w.p("\tMOVLQSX %d(BX), R%d", 4*i, 8+i)
	}
	for i := 0; i < 8; i++ {
		w.p("\tSHLQ $%d, R%d", shift, 8+i)
	}
}

// transpose8x8Store emits the 8×8 transpose of the 32-bit elements of Y0-Y7 (row i
// lane i's eight values) and the stores of its rows at DI, DI+AX, ... (BX clobbered).
func transpose8x8Store(w *asm) {
	for i := 0; i < 8; i += 2 {
		w.p("\tVUNPCKLPS Y%d, Y%d, Y%d\n\tVUNPCKHPS Y%d, Y%d, Y%d", i+1, i, 8+i, i+1, i, 9+i)
	}
	for i := 0; i < 8; i += 4 {
		w.p("\tVSHUFPS $0x44, Y%d, Y%d, Y%d\n\tVSHUFPS $0xee, Y%d, Y%d, Y%d", 10+i, 8+i, i, 10+i, 8+i, i+1)
		w.p("\tVSHUFPS $0x44, Y%d, Y%d, Y%d\n\tVSHUFPS $0xee, Y%d, Y%d, Y%d", 11+i, 9+i, i+2, 11+i, 9+i, i+3)
	}
	for i := 0; i < 4; i++ {
		w.p("\tVPERM2F128 $0x20, Y%d, Y%d, Y%d", 4+i, i, 8+i)
	}
	for i := 0; i < 4; i++ {
		w.p("\tVPERM2F128 $0x31, Y%d, Y%d, Y%d", 4+i, i, 12+i)
	}
	w.p(`	LEAQ (DI)(AX*4), BX
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(AX*1)
	VMOVUPS Y10, (DI)(AX*2)
	VMOVUPS Y11, (DI)(DX*1)
	VMOVUPS Y12, (BX)
	VMOVUPS Y13, (BX)(AX*1)
	VMOVUPS Y14, (BX)(AX*2)
	VMOVUPS Y15, (BX)(DX*1)`)
}

// pairPlanes emits pairPlanes(n int, lo, hi, dst *float32): dst[i] = the bfloat16 pair
// of lo[i] and hi[i] for i < n, sixteen at a time, the rest masked: two planes of an
// image interleaved into the slots of one (convForwardPadded's pair image, read in place
// by sgemmKernelBF16Rows).
func pairPlanes(w *asm) {
	w.p(`// func pairPlanes(n int, lo, hi, dst *float32)
//
// dst[i] = the bfloat16 pair of lo[i] and hi[i] for i < n.
TEXT ·pairPlanes(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), DX
	MOVQ lo+8(FP), SI
	MOVQ hi+16(FP), BX
	MOVQ dst+24(FP), DI
	VMOVDQU16 bf16Interleave<>(SB), Z31
	MOVQ DX, CX
	SHRQ $4, CX
	JZ   ppl_tail
ppl_loop:
	VMOVUPS (SI), Z0
	VMOVUPS (BX), Z1`)
	cvtPair(w, 4, 0, 1)
	w.p(`	VMOVUPS Z4, (DI)
	ADDQ $64, SI
	ADDQ $64, BX
	ADDQ $64, DI
	DECQ CX
	JNZ  ppl_loop
ppl_tail:
	ANDQ $15, DX
	JZ   ppl_done
	MOVL $1, AX
	MOVL DX, CX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z (BX), K1, Z1`)
	cvtPair(w, 4, 0, 1)
	w.p(`	VMOVUPS Z4, K1, (DI)
ppl_done:
	VZEROUPPER
	RET
`)
}

// The weight gradient's B from a compact copy (bfloat16 values, two to a 32-bit slot,
// offsets counting values): a pair of positions of one tap is two consecutive values, a
// 32-bit load wherever it starts, so the pairs are moved, not rounded.

// packTrans8Half emits packTrans8Half(kc int, src *float32, lane *int32, dst *float32,
// ld int): dst[q*ld+i] = the pair of bfloat16 values lane[i]+2q and lane[i]+2q+1 of src
// for 2q < kc (a multiple of 16) and i < 8: packTrans8's transpose of eight 32-byte
// rows, each sixteen values of a lane, eight pairs.
func packTrans8Half(w *asm) {
	transpose8(w, "packTrans8Half", `dst[q*ld+i] = the bfloat16 values lane[i]+2q, lane[i]+2q+1 of src (low, high) for
// 2q < kc and i < 8; kc is a multiple of 16.`, "pth", 4, 1, loadRows8(w), 32)
}

// packGatherHalf emits packGatherHalf<w>(kc int, src *float32, koff, lane *int32, n int,
// dst *float32): slot (q, j) of dst holds the bfloat16 values koff[2q]+lane[j] (low half)
// and koff[2q+1]+lane[j] (high half; 0 for 2q+1 = kc) of src, for j < n; zero past n.
func packGatherHalf(w *asm, width int) { pairGather(w, width, true) }
