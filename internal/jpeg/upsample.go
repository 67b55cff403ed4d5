// Ported from libjpeg-turbo 2.1.5 jdsample.c:
//   Copyright (C) 1991-1996, Thomas G. Lane.
//   libjpeg-turbo Modifications: Copyright 2009 Pierre Ossman for Cendio AB;
//   Copyright (C) 2010, 2015-2016, D. R. Commander.
//   Copyright (C) 2014, MIPS Technologies, Inc., California.
//   Copyright (C) 2015, Google, Inc.
//   Copyright (C) 2019-2020, Arm Limited.
// See README.ijg and LICENSE-libjpeg-turbo.md. Translated to Go for the
// toolkit: each output row is computed on its own, for a range of columns,
// with the rows above and below clamped to the component's edges, which is
// what jdmainct.c's context-row pointers do at the top and bottom.

package jpeg

import (
	"encoding/binary"
	"fmt"
)

type upKind uint8

const (
	upFull      upKind = iota // the component is at output size
	upH2V1Fancy               // triangle filter, 2:1 horizontally
	upH1V2Fancy               // triangle filter, 2:1 vertically
	upH2V2Fancy               // triangle filter, 2:1 both ways
	upBox                     // replication by integral factors (libjpeg's "box filter")
)

// upsampler says how one component reaches the output size: hx x vy
// output samples per component sample.
type upsampler struct {
	kind   upKind
	hx, vy int
}

// chooseUpsampler picks the method jinit_upsampler picks for a component
// whose row group of hIn x vIn samples becomes hOut x vOut output samples.
// fancy is do_fancy_upsampling && min_DCT_scaled_size > 1; dsW is the
// component's width in samples.
func chooseUpsampler(hIn, vIn, hOut, vOut int, fancy bool, dsW int) (upsampler, error) {
	if hOut%hIn != 0 || vOut%vIn != 0 {
		return upsampler{}, UnsupportedError(fmt.Sprintf("fractional sampling ratio %d/%d x %d/%d", hOut, hIn, vOut, vIn))
	}
	u := upsampler{kind: upBox, hx: hOut / hIn, vy: vOut / vIn}
	switch {
	case u.hx == 1 && u.vy == 1:
		u.kind = upFull
	case u.hx == 2 && u.vy == 1 && fancy && dsW > 2:
		u.kind = upH2V1Fancy
	case u.hx == 1 && u.vy == 2 && fancy:
		u.kind = upH1V2Fancy
	case u.hx == 2 && u.vy == 2 && fancy && dsW > 2:
		u.kind = upH2V2Fancy
	}
	return u, nil
}

// row returns c's samples for output row y, indexed by output column and
// valid on [x0, x1). Full-size components are returned in place; the others
// are computed into buf (len >= x1+1).
func (u *upsampler) row(c *component, buf []uint8, y, x0, x1 int) []uint8 {
	switch u.kind {
	case upFull:
		return c.plane[y*c.stride:]
	case upH2V1Fancy:
		h2v1Fancy(buf, c.plane[y*c.stride:][:c.dsW], x0, x1)
	case upH1V2Fancy:
		near, far, bias := c.vertical(y)
		for x := x0; x < x1; x++ {
			buf[x] = uint8((3*int32(near[x]) + int32(far[x]) + bias) >> 2)
		}
	case upH2V2Fancy:
		near, far, _ := c.vertical(y)
		h2v2Fancy(buf, near, far, x0, x1)
	default:
		src := c.plane[(y/u.vy)*c.stride:]
		for x := x0; x < x1; x++ {
			buf[x] = src[x/u.hx]
		}
	}
	return buf
}

// vertical returns, for output row y of a component upsampled 2:1
// vertically, the nearest component row, the next nearest (the row above
// for even y, below for odd y, clamped to the component's rows), and the
// rounding bias of h1v2_fancy_upsample for that case.
func (c *component) vertical(y int) (near, far []uint8, bias int32) {
	cy := y >> 1
	fy, bias := cy-1, int32(1)
	if y&1 != 0 {
		fy, bias = cy+1, 2
	}
	fy = min(max(fy, 0), c.dsH-1)
	return c.plane[cy*c.stride:][:c.dsW], c.plane[fy*c.stride:][:c.dsW], bias
}

// The triangle filters below work on four input columns at a time, held
// in the 16-bit lanes of a uint64 (no lane can carry into the next: the
// largest sum, 16*255+8, fits in 12 bits), and finish one column at a time
// near the edges and at the end.

// spread4 widens b[0:4] to the four 16-bit lanes of a word.
func spread4(b []uint8) uint64 {
	x := uint64(binary.LittleEndian.Uint32(b))
	x = (x | x<<16) & 0x0000ffff0000ffff
	return (x | x<<8) & 0x00ff00ff00ff00ff
}

const lanes8 = 0x00ff00ff00ff00ff // the low byte of each 16-bit lane

// h2v1Fancy is h2v1_fancy_upsample for the output columns [x0, x1) (and
// possibly x1, so dst needs room for 2*len(src) samples): each output
// sample is 3/4 of the nearer input sample and 1/4 of the further one,
// rounding up and down alternately. Beyond the edges the further sample
// is the edge sample itself, which reproduces libjpeg's special cases for
// the first and last column.
func h2v1Fancy(dst, src []uint8, x0, x1 int) {
	w := len(src)
	i0, i1 := x0>>1, (x1-1)>>1
	prev := uint64(src[max(i0-1, 0)])
	i := i0
	if i+8 <= w && i+4 <= i1 {
		cs := spread4(src[i:])
		for i+8 <= w && i+4 <= i1 {
			nx := spread4(src[i+4:])
			c3 := 3 * cs
			even := (c3 + (cs<<16 | prev) + 0x0001000100010001) >> 2 & lanes8
			odd := (c3 + (cs>>16 | nx<<48) + 0x0002000200020002) >> 2 & lanes8
			binary.LittleEndian.PutUint64(dst[2*i:], even|odd<<8)
			prev, cs = cs>>48, nx
			i += 4
		}
	}
	for ; i <= i1; i++ {
		c3 := 3 * uint64(src[i])
		next := uint64(src[min(i+1, w-1)])
		dst[2*i] = uint8((c3 + prev + 1) >> 2)
		dst[2*i+1] = uint8((c3 + next + 2) >> 2)
		prev = uint64(src[i])
	}
}

// h2v2Fancy is h2v2_fancy_upsample for one output row: the column sums
// 3*near + far (near the nearer input row, far the other one of the pair),
// filtered horizontally as in h2v1Fancy with 1/16 weights.
func h2v2Fancy(dst, near, far []uint8, x0, x1 int) {
	w := len(near)
	far = far[:w]
	i0, i1 := x0>>1, (x1-1)>>1
	e := max(i0-1, 0)
	prev := 3*uint64(near[e]) + uint64(far[e])
	i := i0
	if i+8 <= w && i+4 <= i1 {
		cs := 3*spread4(near[i:]) + spread4(far[i:])
		for i+8 <= w && i+4 <= i1 {
			nx := 3*spread4(near[i+4:]) + spread4(far[i+4:])
			c3 := 3 * cs
			even := (c3 + (cs<<16 | prev) + 0x0008000800080008) >> 4 & lanes8
			odd := (c3 + (cs>>16 | nx<<48) + 0x0007000700070007) >> 4 & lanes8
			binary.LittleEndian.PutUint64(dst[2*i:], even|odd<<8)
			prev, cs = cs>>48, nx
			i += 4
		}
	}
	for ; i <= i1; i++ {
		cur := 3*uint64(near[i]) + uint64(far[i])
		e := min(i+1, w-1)
		next := 3*uint64(near[e]) + uint64(far[e])
		c3 := 3 * cur
		dst[2*i] = uint8((c3 + prev + 8) >> 4)
		dst[2*i+1] = uint8((c3 + next + 7) >> 4)
		prev = cur
	}
}
