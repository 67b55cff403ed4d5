package kernels

import (
	"math"
	"unsafe"
)

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

// packGatherHalfGo is gemmKernel.packGatherHalf in Go: slot (q, l) of the panel of width
// w holds the bfloat16 values koff[2q]+lane[l] and koff[2q+1]+lane[l] of src (two to a
// slot; 0 for the row past kc), zeros past n.
func packGatherHalfGo(w int, src []float32, koff, lane []int32, n int, dst []float32) {
	h := bf16s(src)
	kc := len(koff)
	lane = lane[:n]
	for q := 0; 2*q < kc; q++ {
		d := dst[q*w : q*w+w]
		o0 := koff[2*q]
		for l, x := range lane {
			v := uint32(h[o0+x])
			if 2*q+1 < kc {
				v |= uint32(h[koff[2*q+1]+x]) << 16
			}
			d[l] = math.Float32frombits(v)
		}
		clear(d[n:])
	}
}

// BF16Len is the number of float32 slots that hold n bfloat16 values (two to a slot).
func BF16Len(n int) int { return (n + 1) / 2 }

// bf16s views the first 2·len(s) bfloat16 slots of s as uint16 (value i in the low half of
// slot i/2 for even i, the high half for odd i, on a little-endian machine).
func bf16s(s []float32) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), 2*len(s))
}

// ToBF16 rounds the values of src to bfloat16 (to nearest, ties to even, as the bfloat16
// products round their operands; a nonzero value never to a zero, see keptBF16) and stores them two to a slot of dst (BF16Len(len(src))
// slots): the compact copy of a tensor that the backward pass reads only through
// products that round it anyway, or for its sign. Split across the cores.
func ToBF16(src, dst []float32) {
	need("ToBF16", "dst", dst, BF16Len(len(src)))
	d := bf16s(dst)[:len(src)]
	parallelFor(len(src), workers(len(src), 1), func(_, lo, hi int) {
		toBF16Run(src[lo:hi], d[lo:hi])
	})
}

// FromBF16 is ToBF16's inverse on the values it kept: dst[i] = the bfloat16 value i of
// src, as a float32 (exact). Split across the cores.
func FromBF16(src, dst []float32) {
	need("FromBF16", "src", src, BF16Len(len(dst)))
	s := bf16s(src)[:len(dst)]
	parallelFor(len(dst), workers(len(dst), 1), func(_, lo, hi int) {
		fromBF16Run(s[lo:hi], dst[lo:hi])
	})
}

// keptBF16 is toBF16, except that a nonzero value that would round to a zero keeps its
// sign and the smallest magnitude: a Relu's output read back from its compact copy is
// positive exactly where the output was.
func keptBF16(f float32) uint16 {
	r := toBF16(f)
	if r&0x7fff == 0 && math.Float32bits(f)&0x7fffffff != 0 {
		r |= 1
	}
	return uint16(r)
}

func toBF16Go(src []float32, dst []uint16) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = keptBF16(v)
	}
}

func fromBF16Go(src []uint16, dst []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = math.Float32frombits(uint32(v) << 16)
	}
}

// compactChunk is how many values the compact readers below read back at a time, into
// a float32 buffer of the free lists that stays in the L1 cache.
const compactChunk = 2048

// ReluBackwardCompact sets dx[i] = dy[i] where a Relu's output y was positive and 0
// elsewhere, given y's compact copy (ToBF16, which keeps every nonzero value nonzero and
// its sign: the same mask as from y); dx may be dy. Split across the cores.
func ReluBackwardCompact(y, dy, dx []float32) {
	need("ReluBackwardCompact", "y", y, BF16Len(len(dy)))
	need("ReluBackwardCompact", "dx", dx, len(dy))
	s := bf16s(y)[:len(dy)]
	parallelFor(len(dy), workers(len(dy), 1), func(_, lo, hi int) {
		buf := getBuf[float32](compactChunk)
		defer putBuf(buf)
		for c := lo; c < hi; c += compactChunk {
			e := min(hi, c+compactChunk)
			reluMaskCompact(s[c:e], dy[c:e], dx[c:e], buf)
		}
	})
}

// reluMaskCompact is ReluBackwardCompact's serial loop on values s of the compact copy:
// in AVX-512 from their bits, else read back into buf (as long as s at least) first.
func reluMaskCompact(s []uint16, dy, dx, buf []float32) {
	if len(s) == 0 || reluMaskBF16Run(s, dy, dx) {
		return
	}
	buf = buf[:len(s)]
	fromBF16Run(s, buf)
	reluBackwardSerial(buf, dy, dx)
}

// compactView returns y's values as bfloat16 when y is the compact copy of n float32
// values (IsCompact), else nil.
func compactView[T Float](y []T, n int) []uint16 {
	if y32, ok := any(y).([]float32); ok && IsCompact(y32, n) {
		return bf16s(y32)[:n]
	}
	return nil
}

// needValues is need for n values that may also come as their compact copy.
func needValues[T Float](kernel, name string, s []T, n int) {
	if compactView(s, n) == nil {
		need(kernel, name, s, n)
	}
}

// IsCompact reports whether s holds n values as a compact copy (BF16Len(n) slots) rather
// than as float32: the gradients that read a value straight from its copy tell the two
// apart by length.
func IsCompact(s []float32, n int) bool { return n > 1 && len(s) == BF16Len(n) }
