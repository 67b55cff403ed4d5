package main

// bf16Store emits toBF16AVX512 and fromBF16AVX512, the compact copies of the tensors a
// training step keeps for its backward pass in bfloat16 (bf16.go's ToBF16, FromBF16):
//
//	toBF16AVX512(n int, src *float32, dst *uint16)
//	fromBF16AVX512(n int, src *uint16, dst *float32)
//
// toBF16AVX512 for n a multiple of 16 (the caller does the rest), fromBF16AVX512 for any
// n (the last n%16 through a mask, so that the rows of small planes read back from a
// copy stay in the vector loop). toBF16 rounds as bf16.go's
// toBF16 does, in integer arithmetic (AVX-512F; the CPU's VCVTNEPS2BF16 would flush
// denormals): r = (u + 0x7fff + (u>>16 & 1)) >> 16; a NaN keeps its high half, quieted
// (| 0x40); and a nonzero value that would round to a zero keeps its sign and the
// smallest magnitude (r | 1), so that a Relu's output read back from the copy is
// positive exactly where the output was. fromBF16 is exact: the bfloat16 is the high
// half of the float32.
func bf16Store(w *asm) {
	w.p("// func toBF16AVX512(n int, src *float32, dst *uint16)")
	w.p("TEXT ·toBF16AVX512(SB), NOSPLIT, $0-24")
	w.p("\tMOVQ n+0(FP), CX\n\tMOVQ src+8(FP), SI\n\tMOVQ dst+16(FP), DI")
	// Z24 0x7fff, Z25 0x40, Z26 0x7f800000, Z27 0x7fffffff, Z28 1.
	for _, c := range []struct {
		reg string
		v   uint32
	}{{"Z24", 0x7fff}, {"Z25", 0x40}, {"Z26", 0x7f800000}, {"Z27", 0x7fffffff}, {"Z28", 1}} {
		w.p("\tMOVL $0x%x, AX\n\tVPBROADCASTD AX, %s", c.v, c.reg)
	}
	w.p("tobf16_loop:\n\tCMPQ CX, $16\n\tJLT tobf16_done")
	w.p("\tVMOVDQU32 (SI), Z0")
	w.p("\tVPSRLD $16, Z0, Z1")      // u>>16
	w.p("\tVPANDD Z28, Z1, Z2")      // its lowest bit
	w.p("\tVPADDD Z24, Z0, Z3")      // u + 0x7fff
	w.p("\tVPADDD Z2, Z3, Z3")       // + the bit
	w.p("\tVPSRLD $16, Z3, Z3")      // r
	w.p("\tVPANDD Z27, Z0, Z4")      // |u|
	w.p("\tVPCMPUD $6, Z26, Z4, K2") // |u| > infinity: a NaN
	w.p("\tVPORD Z25, Z1, K2, Z3")   // r = u>>16 | 0x40 there
	w.p("\tVPTESTMD Z4, Z4, K3")     // u nonzero
	w.p("\tVPTESTNMD Z24, Z3, K4")   // r's magnitude zero
	w.p("\tKANDW K3, K4, K4")
	w.p("\tVPORD Z28, Z3, K4, Z3") // r | 1 there
	w.p("\tVPMOVDW Z3, (DI)")
	w.p("\tADDQ $64, SI\n\tADDQ $32, DI\n\tSUBQ $16, CX\n\tJMP tobf16_loop")
	w.p("tobf16_done:\n\tVZEROUPPER\n\tRET\n")

	w.p("// func fromBF16AVX512(n int, src *uint16, dst *float32)")
	w.p("TEXT ·fromBF16AVX512(SB), NOSPLIT, $0-24")
	w.p("\tMOVQ n+0(FP), CX\n\tMOVQ src+8(FP), SI\n\tMOVQ dst+16(FP), DI")
	w.p("frombf16_loop:\n\tCMPQ CX, $32\n\tJLT frombf16_one")
	w.p("\tVPMOVZXWD (SI), Z0\n\tVPMOVZXWD 32(SI), Z1")
	w.p("\tVPSLLD $16, Z0, Z0\n\tVPSLLD $16, Z1, Z1")
	w.p("\tVMOVDQU32 Z0, (DI)\n\tVMOVDQU32 Z1, 64(DI)")
	w.p("\tADDQ $64, SI\n\tADDQ $128, DI\n\tSUBQ $32, CX\n\tJMP frombf16_loop")
	w.p("frombf16_one:\n\tCMPQ CX, $16\n\tJLT frombf16_tail")
	w.p("\tVPMOVZXWD (SI), Z0\n\tVPSLLD $16, Z0, Z0\n\tVMOVDQU32 Z0, (DI)")
	w.p("\tADDQ $32, SI\n\tADDQ $64, DI\n\tSUBQ $16, CX")
	w.p("frombf16_tail:\n\tTESTQ CX, CX\n\tJZ frombf16_done")
	w.p("\tMOVL $1, AX\n\tSHLL CX, AX\n\tDECL AX\n\tKMOVW AX, K1")
	w.p("\tVPMOVZXWD.Z (SI), K1, Z0\n\tVPSLLD $16, Z0, Z0\n\tVMOVDQU32 Z0, K1, (DI)")
	w.p("frombf16_done:\n\tVZEROUPPER\n\tRET\n")

	// reluMaskBF16AVX512(n int, y *uint16, dy, dx *float32): dx[i] = dy[i] where the
	// bfloat16 y[i] is positive (1 <= its bits <= 0x7f80: not a zero, a negative value
	// or a NaN), else +0, for any n (the tail masked): a Relu's mask read from the
	// copy's bits, nothing read back into float32.
	w.p("// func reluMaskBF16AVX512(n int, y *uint16, dy, dx *float32)")
	w.p("TEXT ·reluMaskBF16AVX512(SB), NOSPLIT, $0-32")
	w.p("\tMOVQ n+0(FP), CX\n\tMOVQ y+8(FP), SI\n\tMOVQ dy+16(FP), BX\n\tMOVQ dx+24(FP), DI")
	w.p("\tMOVL $1, AX\n\tVPBROADCASTD AX, Z29\n\tMOVL $0x7f80, AX\n\tVPBROADCASTD AX, Z28")
	mask := func(load string) {
		w.p("\t%s", load)
		w.p("\tVPSUBD Z29, Z0, Z0")      // bits - 1 (0 wraps to the top)
		w.p("\tVPCMPUD $1, Z28, Z0, K1") // below 0x7f80
	}
	w.p("relumbf_loop:\n\tCMPQ CX, $16\n\tJLT relumbf_tail")
	mask("VPMOVZXWD (SI), Z0")
	w.p("\tVMOVUPS.Z (BX), K1, Z1\n\tVMOVUPS Z1, (DI)")
	w.p("\tADDQ $32, SI\n\tADDQ $64, BX\n\tADDQ $64, DI\n\tSUBQ $16, CX\n\tJMP relumbf_loop")
	w.p("relumbf_tail:\n\tTESTQ CX, CX\n\tJZ relumbf_done")
	w.p("\tMOVL $1, AX\n\tSHLL CX, AX\n\tDECL AX\n\tKMOVW AX, K2")
	mask("VPMOVZXWD.Z (SI), K2, Z0")
	w.p("\tKANDW K2, K1, K1\n\tVMOVUPS.Z (BX), K1, Z1\n\tVMOVUPS Z1, K2, (DI)")
	w.p("relumbf_done:\n\tVZEROUPPER\n\tRET\n")
}
