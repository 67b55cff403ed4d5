package kernels

import "math"

// bfloat16 products. A bfloat16 is the high half of a float32 (8 bits of mantissa);
// AVX512_BF16's VDPBF16PS multiplies pairs of them exactly and adds the pair's products
// to a float32 accumulator, twice the multiply-adds of a float32 FMA per instruction.
// The bfloat16 kernel (kernelBF16 where the CPU has it; Use("avx512bf16")) is the packed
// GEMM of gemm.go with panels of pairs: its packers round the operands to bfloat16 (to
// nearest, ties to even) as they pack them, two consecutive k of a row or column to a
// 32-bit slot, and its micro-kernel accumulates in float32. Everything the products
// feed stays float32. A panel of kc values is ⌈kc/2⌉ slots deep in the space of kc.

// toBF16 rounds f to the nearest bfloat16, ties to even; a NaN stays a (quiet) NaN.
func toBF16(f float32) uint32 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return u>>16 | 0x40
	}
	return (u + 0x7fff + u>>16&1) >> 16
}

// RoundBF16 returns f rounded to the nearest bfloat16 (as the bfloat16 kernel rounds
// the operands of its products), as a float32.
func RoundBF16(f float32) float32 { return math.Float32frombits(toBF16(f) << 16) }

// pairBF16 is the 32-bit slot of a bfloat16 pair: lo in the low half.
func pairBF16(lo, hi float32) float32 {
	return math.Float32frombits(toBF16(lo) | toBF16(hi)<<16)
}

// packCopyBF16 and packGatherBF16 are the bfloat16 kernel's panel packers (the
// contract of gemmKernel.packCopy and packGather, kc = len(koff) values deep): slot
// (q, l) of the panel of width w holds lanes l of k rows 2q and 2q+1 (0 for the row
// past kc), zeros past n.
func packCopyBF16(w int, src []float32, koff []int32, n int, dst []float32) {
	kc := len(koff)
	for q := 0; 2*q < kc; q++ {
		d := dst[q*w : q*w+w]
		r0 := src[koff[2*q] : int(koff[2*q])+n]
		if 2*q+1 == kc {
			for l, v := range r0 {
				d[l] = pairBF16(v, 0)
			}
		} else {
			r1 := src[koff[2*q+1] : int(koff[2*q+1])+n]
			for l, v := range r0 {
				d[l] = pairBF16(v, r1[l])
			}
		}
		clear(d[n:])
	}
}

func packGatherBF16(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	kc := len(koff)
	lane = lane[:n]
	for q := 0; 2*q < kc; q++ {
		d := dst[q*w : q*w+w]
		o0 := koff[2*q]
		if 2*q+1 == kc {
			for l, x := range lane {
				d[l] = pairBF16(src[o0+x], 0)
			}
		} else {
			o1 := koff[2*q+1]
			for l, x := range lane {
				d[l] = pairBF16(src[o0+x], src[o1+x])
			}
		}
		clear(d[n:])
	}
}
