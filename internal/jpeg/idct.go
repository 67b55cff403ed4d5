// Ported from libjpeg-turbo 2.1.5 jidctint.c (jpeg_idct_islow) and
// jidctred.c (jpeg_idct_4x4, jpeg_idct_2x2, jpeg_idct_1x1):
//   Copyright (C) 1991-1998, Thomas G. Lane.
//   Modification developed 2002-2009 by Guido Vollbeding.
//   libjpeg-turbo Modifications: Copyright (C) 2015, 2020, D. R. Commander.
// See README.ijg and LICENSE-libjpeg-turbo.md. Translated to Go for the
// toolkit: the inputs are already dequantized, and the level shift is
// folded into the final rounding.

package jpeg

// The integer IDCT works with 13-bit fixed-point constants; the first pass
// keeps 2 extra bits of precision (jidctint.c, "The poop on this scaling
// stuff").
const (
	constBits = 13
	pass1Bits = 2

	fix0_211164243 = 1730
	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_509795579 = 4176
	fix0_541196100 = 4433
	fix0_601344887 = 4926
	fix0_720959822 = 5906
	fix0_765366865 = 6270
	fix0_850430095 = 6967
	fix0_899976223 = 7373
	fix1_061594337 = 8697
	fix1_175875602 = 9633
	fix1_272758580 = 10426
	fix1_451774981 = 11893
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_172734803 = 17799
	fix2_562915447 = 20995
	fix3_072711026 = 25172
	fix3_624509785 = 29692
)

// limit is libjpeg's post-IDCT range-limit table (jdmaster.c
// prepare_range_limit_table), indexed by the level-shifted output x+128
// masked to 10 bits: it saturates x in [-512, 512) to a sample and wraps
// beyond, as the C code does. (libjpeg-turbo's SIMD IDCTs saturate
// everywhere; only corrupt coefficients reach beyond +-512.)
var limit = func() (t [1024]uint8) {
	for v := range t {
		switch {
		case v < 256:
			t[v] = uint8(v)
		case v < 640:
			t[v] = 255
		default:
			t[v] = 0
		}
	}
	return t
}()

// idctDC is the value of every sample of a block whose only non-zero
// coefficient is the (dequantized) DC: what each of the IDCTs below
// computes for it, through their all-zero shortcuts.
func idctDC(dc int32) uint8 {
	const sh = pass1Bits + 3
	return limit[((dc<<pass1Bits+1<<(sh-1))>>sh+128)&1023]
}

// fillBlock sets an n x n block of out (row length stride) to v.
func fillBlock(out []uint8, stride, n int, v uint8) {
	for y := 0; y < n; y++ {
		row := out[y*stride : y*stride+n]
		for x := range row {
			row[x] = v
		}
	}
}

// idct8x8 is jpeg_idct_islow: the accurate integer 8x8 inverse DCT (the
// Loeffler-Ligtenberg-Moschytz algorithm with 12 multiplies), columns first.
// It serves the blocks with coefficients beyond the 4x4 corner, where the
// C code's all-zero column and row shortcuts are mispredicted branches
// more often than savings; without them the values are the same.
func idct8x8(in *[64]int32, out []uint8, stride int) {
	var ws [64]int32
	for c := 0; c < 8; c++ {
		// Even part: the rotator is sqrt(2)*c(-6).
		z2, z3 := in[16+c], in[48+c]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		z2, z3 = in[c], in[32+c]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

		// Odd part.
		tmp0, tmp1, tmp2, tmp3 = in[56+c], in[40+c], in[24+c], in[8+c]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1_175875602
		tmp0 *= fix0_298631336
		tmp1 *= fix2_053119869
		tmp2 *= fix3_072711026
		tmp3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 = z3*-fix1_961570560 + z5
		z4 = z4*-fix0_390180644 + z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		const sh, rnd = constBits - pass1Bits, 1 << (constBits - pass1Bits - 1)
		ws[c] = (tmp10 + tmp3 + rnd) >> sh
		ws[56+c] = (tmp10 - tmp3 + rnd) >> sh
		ws[8+c] = (tmp11 + tmp2 + rnd) >> sh
		ws[48+c] = (tmp11 - tmp2 + rnd) >> sh
		ws[16+c] = (tmp12 + tmp1 + rnd) >> sh
		ws[40+c] = (tmp12 - tmp1 + rnd) >> sh
		ws[24+c] = (tmp13 + tmp0 + rnd) >> sh
		ws[32+c] = (tmp13 - tmp0 + rnd) >> sh
	}

	for r := 0; r < 8; r++ {
		w := (*[8]int32)(ws[8*r : 8*r+8])
		o := (*[8]uint8)(out[r*stride : r*stride+8])
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

		tmp0, tmp1, tmp2, tmp3 = w[7], w[5], w[3], w[1]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1_175875602
		tmp0 *= fix0_298631336
		tmp1 *= fix2_053119869
		tmp2 *= fix3_072711026
		tmp3 *= fix1_501321110
		z1 *= -fix0_899976223
		z2 *= -fix2_562915447
		z3 = z3*-fix1_961570560 + z5
		z4 = z4*-fix0_390180644 + z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		const sh, rnd = constBits + pass1Bits + 3, 1<<(constBits+pass1Bits+2) + 128<<(constBits+pass1Bits+3)
		o[0] = limit[((tmp10+tmp3+rnd)>>sh)&1023]
		o[7] = limit[((tmp10-tmp3+rnd)>>sh)&1023]
		o[1] = limit[((tmp11+tmp2+rnd)>>sh)&1023]
		o[6] = limit[((tmp11-tmp2+rnd)>>sh)&1023]
		o[2] = limit[((tmp12+tmp1+rnd)>>sh)&1023]
		o[5] = limit[((tmp12-tmp1+rnd)>>sh)&1023]
		o[3] = limit[((tmp13+tmp0+rnd)>>sh)&1023]
		o[4] = limit[((tmp13-tmp0+rnd)>>sh)&1023]
	}
}

// idct8x8Low is idct8x8 for a block whose non-zero coefficients all lie in
// its top-left 4x4 corner (the first 10 in zig-zag order), which is most
// chroma blocks and smooth luma: the same arithmetic with the zero terms
// left out, so the results are identical.
func idct8x8Low(in *[64]int32, out []uint8, stride int) {
	var ws [32]int32 // 8 rows of the 4 non-zero columns
	for c := 0; c < 4; c++ {
		if in[8+c]|in[16+c]|in[24+c] == 0 {
			dc := in[c] << pass1Bits
			ws[c], ws[4+c], ws[8+c], ws[12+c] = dc, dc, dc, dc
			ws[16+c], ws[20+c], ws[24+c], ws[28+c] = dc, dc, dc, dc
			continue
		}
		z2 := in[16+c]
		z1 := z2 * fix0_541196100
		tmp2 := z1
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := in[c] << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp0+tmp2, tmp0-tmp2

		t2, t3 := in[24+c], in[8+c]
		z5 := (t2 + t3) * fix1_175875602
		z1 = t3 * -fix0_899976223
		z2 = t2 * -fix2_562915447
		z3 := t2*-fix1_961570560 + z5
		z4 := t3*-fix0_390180644 + z5
		tmp0 = z1 + z3
		tmp1 := z2 + z4
		tmp2 = t2*fix3_072711026 + z2 + z3
		tmp3 = t3*fix1_501321110 + z1 + z4

		const sh, rnd = constBits - pass1Bits, 1 << (constBits - pass1Bits - 1)
		ws[c] = (tmp10 + tmp3 + rnd) >> sh
		ws[28+c] = (tmp10 - tmp3 + rnd) >> sh
		ws[4+c] = (tmp11 + tmp2 + rnd) >> sh
		ws[24+c] = (tmp11 - tmp2 + rnd) >> sh
		ws[8+c] = (tmp12 + tmp1 + rnd) >> sh
		ws[20+c] = (tmp12 - tmp1 + rnd) >> sh
		ws[12+c] = (tmp13 + tmp0 + rnd) >> sh
		ws[16+c] = (tmp13 - tmp0 + rnd) >> sh
	}

	for r := 0; r < 8; r++ {
		w := (*[4]int32)(ws[4*r : 4*r+4])
		o := (*[8]uint8)(out[r*stride : r*stride+8])
		if w[1]|w[2]|w[3] == 0 {
			v := limit[((w[0]+1<<(pass1Bits+2))>>(pass1Bits+3)+128)&1023]
			*o = [8]uint8{v, v, v, v, v, v, v, v}
			continue
		}
		z2 := w[2]
		z1 := z2 * fix0_541196100
		tmp2 := z1
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := w[0] << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp0+tmp2, tmp0-tmp2

		t2, t3 := w[3], w[1]
		z5 := (t2 + t3) * fix1_175875602
		z1 = t3 * -fix0_899976223
		z2 = t2 * -fix2_562915447
		z3 := t2*-fix1_961570560 + z5
		z4 := t3*-fix0_390180644 + z5
		tmp0 = z1 + z3
		tmp1 := z2 + z4
		tmp2 = t2*fix3_072711026 + z2 + z3
		tmp3 = t3*fix1_501321110 + z1 + z4

		const sh, rnd = constBits + pass1Bits + 3, 1<<(constBits+pass1Bits+2) + 128<<(constBits+pass1Bits+3)
		o[0] = limit[((tmp10+tmp3+rnd)>>sh)&1023]
		o[7] = limit[((tmp10-tmp3+rnd)>>sh)&1023]
		o[1] = limit[((tmp11+tmp2+rnd)>>sh)&1023]
		o[6] = limit[((tmp11-tmp2+rnd)>>sh)&1023]
		o[2] = limit[((tmp12+tmp1+rnd)>>sh)&1023]
		o[5] = limit[((tmp12-tmp1+rnd)>>sh)&1023]
		o[3] = limit[((tmp13+tmp0+rnd)>>sh)&1023]
		o[4] = limit[((tmp13-tmp0+rnd)>>sh)&1023]
	}
}

// idct4x4 is jpeg_idct_4x4: a 4x4 output from the low frequencies of an
// 8x8 block (for scale 1/2). Row and column 4 do not contribute. Unlike
// the C code it has no shortcuts for all-zero columns and rows: they give
// the same values, and for a transform this short their branches cost
// more than the arithmetic they save.
func idct4x4(in *[64]int32, out []uint8, stride int) {
	var ws [32]int32 // 4 rows of 8; column 4 unused
	for c := 0; c < 8; c++ {
		if c == 4 {
			continue
		}
		tmp0 := in[c] << (constBits + 1)
		tmp2 := in[16+c]*fix1_847759065 - in[48+c]*fix0_765366865
		tmp10, tmp12 := tmp0+tmp2, tmp0-tmp2

		z1, z2, z3, z4 := in[56+c], in[40+c], in[24+c], in[8+c]
		tmp0 = z1*-fix0_211164243 + z2*fix1_451774981 + z3*-fix2_172734803 + z4*fix1_061594337
		tmp2 = z1*-fix0_509795579 + z2*-fix0_601344887 + z3*fix0_899976223 + z4*fix2_562915447

		const sh, rnd = constBits - pass1Bits + 1, 1 << (constBits - pass1Bits)
		ws[c] = (tmp10 + tmp2 + rnd) >> sh
		ws[24+c] = (tmp10 - tmp2 + rnd) >> sh
		ws[8+c] = (tmp12 + tmp0 + rnd) >> sh
		ws[16+c] = (tmp12 - tmp0 + rnd) >> sh
	}

	for r := 0; r < 4; r++ {
		w := (*[8]int32)(ws[8*r : 8*r+8])
		o := (*[4]uint8)(out[r*stride : r*stride+4])
		tmp0 := w[0] << (constBits + 1)
		tmp2 := w[2]*fix1_847759065 - w[6]*fix0_765366865
		tmp10, tmp12 := tmp0+tmp2, tmp0-tmp2

		z1, z2, z3, z4 := w[7], w[5], w[3], w[1]
		tmp0 = z1*-fix0_211164243 + z2*fix1_451774981 + z3*-fix2_172734803 + z4*fix1_061594337
		tmp2 = z1*-fix0_509795579 + z2*-fix0_601344887 + z3*fix0_899976223 + z4*fix2_562915447

		const sh, rnd = constBits + pass1Bits + 3 + 1, 1<<(constBits+pass1Bits+3) + 128<<(constBits+pass1Bits+3+1)
		o[0] = limit[((tmp10+tmp2+rnd)>>sh)&1023]
		o[3] = limit[((tmp10-tmp2+rnd)>>sh)&1023]
		o[1] = limit[((tmp12+tmp0+rnd)>>sh)&1023]
		o[2] = limit[((tmp12-tmp0+rnd)>>sh)&1023]
	}
}

// idct2x2 is jpeg_idct_2x2: a 2x2 output (for scale 1/4). Only rows and
// columns 0, 1, 3, 5 and 7 contribute. No zero shortcuts, as in idct4x4.
func idct2x2(in *[64]int32, out []uint8, stride int) {
	var ws [16]int32 // 2 rows of 8; even columns other than 0 unused
	for _, c := range [...]int{0, 1, 3, 5, 7} {
		tmp10 := in[c] << (constBits + 2)
		tmp0 := in[56+c]*-fix0_720959822 + in[40+c]*fix0_850430095 +
			in[24+c]*-fix1_272758580 + in[8+c]*fix3_624509785

		const sh, rnd = constBits - pass1Bits + 2, 1 << (constBits - pass1Bits + 1)
		ws[c] = (tmp10 + tmp0 + rnd) >> sh
		ws[8+c] = (tmp10 - tmp0 + rnd) >> sh
	}

	for r := 0; r < 2; r++ {
		w := (*[8]int32)(ws[8*r : 8*r+8])
		o := (*[2]uint8)(out[r*stride : r*stride+2])
		tmp10 := w[0] << (constBits + 2)
		tmp0 := w[7]*-fix0_720959822 + w[5]*fix0_850430095 +
			w[3]*-fix1_272758580 + w[1]*fix3_624509785

		const sh, rnd = constBits + pass1Bits + 3 + 2, 1<<(constBits+pass1Bits+3+1) + 128<<(constBits+pass1Bits+3+2)
		o[0] = limit[((tmp10+tmp0+rnd)>>sh)&1023]
		o[1] = limit[((tmp10-tmp0+rnd)>>sh)&1023]
	}
}

// idct1x1 is jpeg_idct_1x1 (for scale 1/8): the block's mean.
func idct1x1(dc int32) uint8 {
	return limit[((dc+4)>>3+128)&1023]
}
