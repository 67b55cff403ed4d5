package main

// firstMax emits firstMaxAVX512 and firstMaxAVX2, the window search of the max
// pooling's backward pass (pool.go):
//
//	firstMax(n, taps, offs, x, code, rows, xs, cs) bool
//
// sets, for each row r < rows and j < n, code[r·cs+j] to the first t (in the order of
// offs) with x[r·xs+offs[t]+j] equal to the maximum over t of those values: the cell
// of a window that its output's gradient goes to, ties to the first, +0 equal to -0.
// It returns whether some window's values summed to NaN (a NaN among them, or
// infinities of both signs):
// the caller then takes the scalar rule, where a NaN wins. taps is at least 1.
// Several vectors of outputs at a time (four on AVX-512, three on AVX2: the
// maximum's chain of dependent VMAXPS per vector is the bound), then one, the last
// masked.
func firstMax(w *asm) {
	for _, v := range vecISAs {
		firstMaxISA(w, v)
	}
}

func firstMaxISA(w *asm, v vecISA) {
	label := "fm" + v.suffix
	bytes := 4 * v.lanes
	// Registers: per vector i of a block, the maximum m(i), the sum s(i) and the
	// code c(i); then a loaded value, a comparison (AVX2), the tap's index broadcast,
	// the last tap's index, and the NaN flag (AVX2; K3 on AVX-512). K1/Y15 hold the
	// tail mask, K2 the comparison on AVX-512.
	k := 4
	if v.r == "Y" {
		k = 3
	}
	m := func(i int) string { return v.reg(i) }
	s := func(i int) string { return v.reg(k + i) }
	c := func(i int) string { return v.reg(2*k + i) }
	tmp, cmp, tap, last, nan := v.reg(3*k), v.reg(3*k+1), v.reg(3*k+2), v.reg(3*k+3), v.reg(3*k+4)
	xmm := func(r string) string { return "X" + r[1:] }
	windowFrame(w, v, "firstMax", "x *float32, code *int32", "code", "cs", label, nan, func() {
		w.p("\tLEAQ -1(R9), AX\n\tVMOVD AX, %s\n\tVPBROADCASTD %s, %s", xmm(last), xmm(last), last)
	})
	// load emits dst = vector i at R15, masked when the block's last vector is.
	load := func(i, nv int, masked bool, dst string) {
		v.loadVec(w, i*bytes, "R15", dst, masked && i == nv-1)
	}
	// block emits nv vectors of outputs: the maximum and the sum over the taps, the
	// NaN test, then the codes from the last tap back to the first; AX and BX advance.
	block := func(name string, nv int, masked bool) {
		w.p("\tMOVQ (DI), R14\n\tLEAQ (AX)(R14*4), R15")
		for i := 0; i < nv; i++ {
			load(i, nv, masked, m(i))
			w.p("\tVMOVAPS %s, %s", m(i), s(i))
		}
		w.p("\tMOVQ $1, DX")
		w.p("%s_max:\n\tCMPQ DX, R9\n\tJGE %s_nan", name, name)
		w.p("\tMOVQ (DI)(DX*8), R14\n\tLEAQ (AX)(R14*4), R15")
		for i := 0; i < nv; i++ {
			load(i, nv, masked, tmp)
			w.p("\tVMAXPS %s, %s, %s\n\tVADDPS %s, %s, %s", tmp, m(i), m(i), tmp, s(i), s(i))
		}
		w.p("\tINCQ DX\n\tJMP %s_max", name)
		w.p("%s_nan:", name)
		for i := 0; i < nv; i++ {
			if v.r == "Z" {
				w.p("\tVCMPPS $3, %[1]s, %[1]s, K2\n\tKORW K2, K3, K3", s(i))
			} else {
				w.p("\tVCMPPS $3, %[1]s, %[1]s, %[2]s\n\tVORPS %[2]s, %[3]s, %[3]s", s(i), cmp, nan)
			}
			w.p("\tVMOVAPS %s, %s", last, c(i))
		}
		w.p("\tLEAQ -1(R9), DX")
		w.p("%s_code:\n\tDECQ DX\n\tJL %s_store", name, name)
		w.p("\tMOVQ (DI)(DX*8), R14\n\tLEAQ (AX)(R14*4), R15\n\tVMOVD DX, %s\n\tVPBROADCASTD %s, %s", xmm(tap), xmm(tap), tap)
		for i := 0; i < nv; i++ {
			load(i, nv, masked, tmp)
			if v.r == "Z" {
				w.p("\tVCMPPS $0, %s, %s, K2\n\tVMOVDQA32 %s, K2, %s", tmp, m(i), tap, c(i))
			} else {
				w.p("\tVCMPPS $0, %s, %s, %s\n\tVBLENDVPS %s, %s, %s, %s", tmp, m(i), cmp, cmp, tap, c(i), c(i))
			}
		}
		w.p("\tJMP %s_code", name)
		w.p("%s_store:", name)
		for i := 0; i < nv; i++ {
			v.storeVec(w, c(i), i*bytes, "BX", masked && i == nv-1)
		}
		w.p("\tADDQ $%d, AX\n\tADDQ $%d, BX", nv*bytes, nv*bytes)
	}
	windowRows(w, v, label, "cs", k, nan, block)
}

// maxTaps emits maxTapsAVX512 and maxTapsAVX2, the max pooling's forward loop without
// the positions (pool_taps.go):
//
//	maxTaps(n, taps, offs, x, y, rows, xs, ys) bool
//
// sets, for each row r < rows and j < n, y[r·ys+j] to the maximum over t (in the order
// of offs) of x[r·xs+offs[t]+j], ties to the first (so +0 before -0 keeps +0, as the
// window search's first maximum). It returns whether some window's values summed to
// NaN (a NaN among them, or infinities of both signs): the caller then takes the
// scalar rule for the plane, where a NaN wins. taps is at least 1. Eight vectors of
// outputs at a time on AVX-512, four on AVX2, then one, the last masked.
func maxTaps(w *asm) {
	for _, v := range vecISAs {
		maxTapsISA(w, v)
	}
}

func maxTapsISA(w *asm, v vecISA) {
	label := "mt" + v.suffix
	bytes := 4 * v.lanes
	// Registers: per vector i of a block, the maximum m(i) and the sum s(i); then a
	// loaded value, a comparison (AVX2) and the NaN flag (AVX2; K3 on AVX-512). K1/Y15
	// hold the tail mask, K2 the comparison on AVX-512.
	k := 8
	if v.r == "Y" {
		k = 4
	}
	m := func(i int) string { return v.reg(i) }
	s := func(i int) string { return v.reg(k + i) }
	tmp, cmp, nan := v.reg(2*k), v.reg(2*k+1), v.reg(2*k+2)
	windowFrame(w, v, "maxTaps", "x, y *float32", "y", "ys", label, nan, nil)
	load := func(i, nv int, masked bool, dst string) {
		v.loadVec(w, i*bytes, "R15", dst, masked && i == nv-1)
	}
	// block emits nv vectors of outputs: the maximum and the sum over the taps, the
	// NaN test, the stores; AX and BX advance.
	block := func(name string, nv int, masked bool) {
		w.p("\tMOVQ (DI), R14\n\tLEAQ (AX)(R14*4), R15")
		for i := 0; i < nv; i++ {
			load(i, nv, masked, m(i))
			w.p("\tVMOVAPS %s, %s", m(i), s(i))
		}
		w.p("\tMOVQ $1, DX")
		w.p("%s_max:\n\tCMPQ DX, R9\n\tJGE %s_nan", name, name)
		w.p("\tMOVQ (DI)(DX*8), R14\n\tLEAQ (AX)(R14*4), R15")
		for i := 0; i < nv; i++ {
			load(i, nv, masked, tmp)
			// m = tmp > m ? tmp : m: a tie keeps the earlier tap's value.
			w.p("\tVMAXPS %s, %s, %s\n\tVADDPS %s, %s, %s", m(i), tmp, m(i), tmp, s(i), s(i))
		}
		w.p("\tINCQ DX\n\tJMP %s_max", name)
		w.p("%s_nan:", name)
		for i := 0; i < nv; i++ {
			if v.r == "Z" {
				w.p("\tVCMPPS $3, %[1]s, %[1]s, K2\n\tKORW K2, K3, K3", s(i))
			} else {
				w.p("\tVCMPPS $3, %[1]s, %[1]s, %[2]s\n\tVORPS %[2]s, %[3]s, %[3]s", s(i), cmp, nan)
			}
			v.storeVec(w, m(i), i*bytes, "BX", masked && i == nv-1)
		}
		w.p("\tADDQ $%d, AX\n\tADDQ $%d, BX", nv*bytes, nv*bytes)
	}
	windowRows(w, v, label, "ys", k, nan, block)
}

// windowFrame emits the start of firstMax's and maxTaps's text (name on v): the
// arguments (n, taps int, offs *int, then args, then rows, xs and the output's stride,
// named stride) into R9 (taps), DI (offs), R10 (x), R11 (the output, named out), R12
// (rows) and R13 (x's stride in bytes); setup, if not nil; the NaN flag cleared (K3 on
// AVX-512, nan on AVX2); then the row's label, with CX = n and AX, BX the row's x and
// output.
func windowFrame(w *asm, v vecISA, name, args, out, stride, label, nan string, setup func()) {
	w.p("// func %s%s(n, taps int, offs *int, %s, rows, xs, %s int) bool", name, v.suffix, args, stride)
	w.p("TEXT ·%s%s(SB), NOSPLIT, $0-65", name, v.suffix)
	w.p("\tMOVQ taps+8(FP), R9\n\tMOVQ offs+16(FP), DI")
	w.p("\tMOVQ x+24(FP), R10\n\tMOVQ %s+32(FP), R11\n\tMOVQ rows+40(FP), R12\n\tMOVQ xs+48(FP), R13\n\tSHLQ $2, R13", out)
	if setup != nil {
		setup()
	}
	if v.r == "Z" {
		w.p("\tKXORW K3, K3, K3")
	} else {
		w.p("\tVXORPS %[1]s, %[1]s, %[1]s", nan)
	}
	w.p("%s_row:\n\tMOVQ n+0(FP), CX\n\tMOVQ R10, AX\n\tMOVQ R11, BX", label)
}

// windowRows emits the rest of firstMax's and maxTaps's text after windowFrame: each
// row's outputs in blocks of k vectors, then of one, then the masked tail (block emits
// nv vectors and advances AX and BX), the next row (the output's stride the argument
// named stride), and the NaN flag returned.
func windowRows(w *asm, v vecISA, label, stride string, k int, nan string, block func(name string, nv int, masked bool)) {
	w.p("%s_loopk:\n\tCMPQ CX, $%d\n\tJL %s_loop1", label, k*v.lanes, label)
	block(label+"_k", k, false)
	w.p("\tSUBQ $%d, CX\n\tJMP %s_loopk", k*v.lanes, label)
	w.p("%s_loop1:\n\tCMPQ CX, $%d\n\tJL %s_tail", label, v.lanes, label)
	block(label+"_1", 1, false)
	w.p("\tSUBQ $%d, CX\n\tJMP %s_loop1", v.lanes, label)
	w.p("%s_tail:\n\tTESTQ CX, CX\n\tJZ %s_next", label, label)
	v.tailMask(w, "DX", "R14")
	block(label+"_t", 1, true)
	w.p("%s_next:\n\tADDQ R13, R10\n\tMOVQ %s+56(FP), R8\n\tLEAQ (R11)(R8*4), R11\n\tDECQ R12\n\tJNZ %s_row", label, stride, label)
	if v.r == "Z" {
		w.p("\tKMOVW K3, AX")
	} else {
		w.p("\tVMOVMSKPS %s, AX", nan)
	}
	w.p("\tTESTL AX, AX\n\tSETNE ret+64(FP)\n\tVZEROUPPER\n\tRET\n")
}
