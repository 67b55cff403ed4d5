package kernels

import (
	"math"
	"runtime"
	"sync/atomic"
)

// Winograd's minimal filtering, F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): a 3×3 convolution with stride 1 and pad 1
// computes each 2×2 block of outputs from the 4×4 block of inputs around it as
//
//	Y = Aᵀ·[Σ_c (G·g_c·Gᵀ) ⊙ (Bᵀ·d_c·B)]·A
//
// 16 products per block and channel instead of 36: the element-wise products, summed
// over the input channels, are 16 matrix products U_k·V_k (k = 4ξ+ν: U_k [M, C] the
// transformed filters, V_k [C, tiles] the transformed inputs), 2.25 times fewer
// multiply-adds than the direct convolution. The transforms add and subtract only
// (G's halves are exact), so the result differs from the direct one by rounding alone
// (about 1e-6 relative on VGG19; the parity tests hold it to 1e-4 against PyTorch).
//
// The transforms are assembly, generated for each kernel that has them
// (winoTransforms): AVX-512 with 16 tiles in the lanes (winoInput16, winoOutput16) and
// 16 filters (winoFilter16), AVX2 with 8 tiles and 6 filters; the filters are written
// straight into the packed A of the products, so that A is packed once per call rather
// than once per unit. Measured on one core of a Xeon with AVX-512 (family 6 model 207):
// VGG19's 3×3 layers at 224 px run 1.3x (64 channels) to 1.65x (128-512 channels)
// faster than the direct convolution of conv_fast.go, the AVX2 kernel's 1.4x to 2x
// faster than its own. The tiles are cut into units, small enough for their
// transformed inputs and products to stay near the L2 cache: whole tile rows of one
// image, or several whole images where an image has few tiles; each goroutine takes
// whole units (input transform, the 16 products on one core, output transform with
// the bias and the clamp), or, with fewer units than cores, each step of a unit is
// split across them (winoUnits).

// winoTransforms are a kernel's Winograd transforms. input and output take
// tiles tiles at a time (tiles side by side in the lanes); filter takes one
// channel of filterRows output channels (whole row panels of the kernel's
// packed A).
type winoTransforms struct {
	tiles, filterRows int
	// input writes Bᵀ·d·B of the tiles j < n whose 4×4 inputs are
	// x[r*ldx + 2j + c] to v[k*ldv + j] (k = 4ξ+ν).
	input func(x *float32, ldx int, v *float32, ldv int, n int)
	// output writes Aᵀ·M·A + bias (clamped to [lo, hi] with flags tileClamp) of the tiles j < n,
	// whose products are m[k*ldm + j], as the first cols values of the
	// output rows (2 per tile; the second row only with rows == 2).
	output func(m *float32, ldm int, y *float32, ldy int, n, rows, cols int, bias float32, flags uint32, lo, hi float32)
	// filter writes G·g·Gᵀ of the filters of rows l < n (taps
	// src[idx[l] + t*tstep]) to u[k*ldk + l] of the packed panel (the
	// second 8-row panel at panel2 on AVX-512); rows past n are zeros.
	filter func(src *float32, idx *int32, tstep int, u *float32, ldk int, panel2 int, n int)
}

const (
	// winoMinChannels and winoMinWidth bound the convolutions worth it: the
	// first layer of a network (3 channels) gains nothing, and narrow maps
	// have too few tiles per row for the transforms (4×4 maps of 512
	// channels, batch 16: 0.8-1.1x the direct convolution; 8×8: 1.4x).
	winoMinChannels = 16
	winoMinWidth    = 6
	// winoMinTiles bounds the batches worth it: with few tiles in all the 16
	// products read far more transformed filters (16·M·C) than the direct
	// convolution reads weights (9·M·C) for the work they save (ResNet-50's 7×7
	// maps of 512 channels at batch 1, 16 tiles: 0.52x the direct convolution;
	// 14×14 maps of 256, 49 tiles: 1.0x; the same maps at batch 16: 1.2-1.9x;
	// BenchmarkConv2DWinogradOrDirect).
	winoMinTiles = 48
	// winoBudget bounds the floats of one unit's transformed inputs (and of
	// its products): 16 × channels × tiles.
	winoBudget = 1 << 19
)

// winogradOn reports whether p's forward pass runs as F(2×2, 3×3) on kern.
func (p Conv2DParams) winogradOn(kern *gemmKernel) bool {
	return kern.wino != nil && p.KH == 3 && p.KW == 3 && p.StrideH == 1 && p.StrideW == 1 &&
		p.DilH == 1 && p.DilW == 1 && p.PadTop == 1 && p.PadLeft == 1 && p.PadBottom == 1 && p.PadRight == 1 &&
		p.Group == 1 && p.C >= winoMinChannels && p.OutW >= winoMinWidth && p.OutH >= 2 &&
		p.N*((p.OutH+1)/2)*((p.OutW+1)/2) >= winoMinTiles
}

// winoSource says where convForwardWinograd finds its 3×3 filters: tap t
// (row-major) of output channel m's filter of input channel c is
// w[m*ms + c*cs + t0 + t*tstep] (winoWeights, winoFlipped).
type winoSource struct {
	w                 []float32
	ms, cs, t0, tstep int
}

// winoWeights is the filter source of weights w [M, C, 3, 3].
func winoWeights(C int, w []float32) winoSource {
	return winoSource{w: w, ms: 9 * C, cs: 9, tstep: 1}
}

// winoFlipped is the filter source of the flipped convolution of p (its data
// gradient): output channel m (p's input channel) from input channel c (p's
// output channel) is w[c][m] turned by 180°.
func winoFlipped(p Conv2DParams, w []float32) winoSource {
	return winoSource{w: w, ms: 9, cs: 9 * p.C, t0: 8, tstep: -1}
}

// winoFilters writes the transformed filters U_k [M, C] (k = 4ξ+ν) of the
// filters of src, each U_k packed as the A of sgemmInPlace at u[k*plen:]
// (packedAIndex; plen = packedALen(kern, M, C)): the filters of one channel
// and kern.wino.filterRows output channels (whole row panels) at a time.
func winoFilters(kern *gemmKernel, M, C int, src winoSource, u []float32) {
	wt := kern.wino
	if wt.filterRows%kern.mr != 0 || wt.filterRows > 2*kern.mr {
		panic("kernels: Winograd: the filter transform writes one or two whole row panels")
	}
	lo := src.t0 + min(0, 8*src.tstep)
	hi := (M-1)*src.ms + (C-1)*src.cs + src.t0 + max(0, 8*src.tstep)
	if lo < 0 || hi >= len(src.w) {
		panic("kernels: Winograd: filters outside the weights")
	}
	plen, kcb := packedALen(kern, M, C), inPlaceKBlock(kern, C)
	var idx [16]int32
	for l := range idx {
		idx[l] = int32(l * src.ms)
	}
	fr := wt.filterRows
	groups := (M + fr - 1) / fr
	parallelFor(groups, workers(groups, fr*C*64), func(_, lo, hi int) {
		for q := lo; q < hi; q++ {
			m0 := fr * q
			n := min(fr, M-m0)
			for c := 0; c < C; c++ {
				kc := min(kcb, C-c/kcb*kcb)
				wt.filter(&src.w[m0*src.ms+c*src.cs+src.t0], &idx[0], src.tstep,
					&u[packedAIndex(kern, M, C, kcb, m0, c)], plen, kern.mr*kc, n)
			}
		}
	})
}

// convForwardWinograd is Conv2DForward as F(2×2, 3×3) (p.winogradOn(kern)), with
// the filters of filters: the weights, or the flipped weights of a data gradient.
func convForwardWinograd(kern *gemmKernel, p Conv2DParams, x []float32, filters winoSource, bias, y []float32, act Activation, cache filterUse) {
	convForwardWinogradPadded(kern, p, x, filters, bias, y, act, cache, winoPadBudget)
}

// convForwardWinogradPadded is convForwardWinograd with padBudget floats for the padded
// images at a time.
func convForwardWinogradPadded(kern *gemmKernel, p Conv2DParams, x []float32, filters winoSource, bias, y []float32, act Activation, cache filterUse, padBudget int) {
	C, M := p.C, p.M
	th, tw := (p.OutH+1)/2, (p.OutW+1)/2
	// The padded image: one row and column of zeros before, enough after for every
	// tile's 4×4 block (2·th+2 rows, 2·tw+2 columns), and slack after the last row for
	// the transform's 34-value row reads.
	hp, wp := 2*th+2, 2*tw+2
	plane := hp * wp
	plen := packedALen(kern, M, C)
	var u []float32
	if cache.on() {
		u = cache.get(kern, cacheWinograd, 16*plen, filters.w, func(u []float32) { winoFilters(kern, M, C, filters, u) })
	} else {
		u = getBuf[float32](16 * plen)
		defer putBuf(u)
		winoFilters(kern, M, C, filters, u)
	}
	units, tb := winoPlanUnits(p)
	// The images are padded a chunk at a time, ahead of the units that read them: as
	// many images as padBudget holds (at least one, and whole units), rather than the
	// whole batch (VGG19's first layers at batch 16: 209 MB).
	chunk := max(1, min(p.N, padBudget/(C*plane)))
	if g := units[0].n1 - units[0].n0; g > 1 {
		chunk = max(g, chunk/g*g)
	}
	xp := getBuf[float32](chunk*C*plane + 64)
	defer putBuf(xp)
	clear(xp[chunk*C*plane:])
	first := 0 // the first unit of the chunk
	for c0 := 0; c0 < p.N; c0 += chunk {
		c1 := min(p.N, c0+chunk)
		last := first
		for last < len(units) && units[last].n0 < c1 {
			last++
		}
		winoPad(p, x[c0*C*p.H*p.W:c1*C*p.H*p.W], xp, hp, wp)
		winoUnits(kern, p, units[first:last], c0, xp, plane, wp, u, plen, tb, bias, y, act)
		first = last
	}
}

// winoPadBudget bounds the floats of the padded images convForwardWinograd holds at a
// time.
const winoPadBudget = 1 << 22

// winoPlanUnits cuts the tiles of p's batch into units: whole images where one image
// has few tiles (at least one unit per goroutine), else tile rows of one image, as many
// rows in each unit of an image as the budget allows, evened out. tb is the most tiles
// a unit has.
func winoPlanUnits(p Conv2DParams) (units []winoUnit, tb int) {
	th, tw := (p.OutH+1)/2, (p.OutW+1)/2
	tiles := max(16, winoBudget/(16*max(p.C, p.M)))
	perImage := th * tw
	maxNW := runtime.GOMAXPROCS(0)
	if g := min(tiles/perImage, (p.N+maxNW-1)/maxNW); g >= 2 {
		for n0 := 0; n0 < p.N; n0 += g {
			units = append(units, winoUnit{n0: n0, n1: min(p.N, n0+g), ti1: th})
		}
		return units, g * perImage
	}
	rows := max(1, min(th, tiles/tw))
	perRow := (th + rows - 1) / rows // units per image
	rows = (th + perRow - 1) / perRow
	for n := 0; n < p.N; n++ {
		for ti0 := 0; ti0 < th; ti0 += rows {
			units = append(units, winoUnit{n0: n, n1: n + 1, ti0: ti0, ti1: min(th, ti0+rows)})
		}
	}
	return units, rows * tw
}

// winoPad writes the images of x, [n, C, H, W], zero-padded to hp × wp planes (one row
// and column of zeros before) into xp.
func winoPad(p Conv2DParams, x, xp []float32, hp, wp int) {
	plane := hp * wp
	planes := len(x) / (p.H * p.W)
	parallelFor(planes, workers(planes, plane), func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			src := x[u*p.H*p.W : (u+1)*p.H*p.W]
			dst := xp[u*plane : (u+1)*plane]
			clear(dst[:wp])
			for h := 0; h < hp-1; h++ {
				row := dst[(h+1)*wp : (h+2)*wp]
				if h >= p.H {
					clear(row)
					continue
				}
				row[0] = 0
				copy(row[1:], src[h*p.W:(h+1)*p.W])
				clear(row[1+p.W:])
			}
		}
	})
}

// winoUnits runs units on the goroutines, each taking whole units: input transform,
// the 16 products, output transform with the bias and the clamp of act. The units' images start
// at image c0, padded in xp. With fewer units than cores (a single image on small
// maps), the units run one after another, each step of each split across the cores:
// the input transform by channels, the products by k, the output transform by output
// channels.
func winoUnits(kern *gemmKernel, p Conv2DParams, units []winoUnit, c0 int, xp []float32, plane, wp int, u []float32, plen, tb int, bias, y []float32, act Activation) {
	w := winoWork{kern: kern, p: p, c0: c0, xp: xp, plane: plane, wp: wp, u: u, plen: plen, tb: tb, bias: bias, y: y}
	if act.Kind == SiLUActivation {
		panic("kernels: Winograd's output transforms store a clamp, not a SiLU")
	}
	if act.Kind != NoActivation {
		w.flags = tileClamp
		w.lo, w.hi = act.bounds()
	}
	procs := runtime.GOMAXPROCS(0)
	if len(units) < procs {
		w.v, w.mb = w.buffers()
		defer putBuf(w.v)
		defer putBuf(w.mb)
		for _, un := range units {
			parallelFor(p.C, workers(p.C, 16*tb), func(_, lo, hi int) { w.input(un, lo, hi) })
			parallelFor(16, procs, func(_, lo, hi int) { w.products(un, lo, hi) })
			parallelFor(p.M, workers(p.M, 16*tb), func(_, lo, hi int) { w.output(un, lo, hi) })
		}
		return
	}
	nw := min(procs, len(units))
	var next atomic.Int64
	parallelFor(nw, nw, func(_, _, _ int) {
		w := w
		w.v, w.mb = w.buffers()
		defer putBuf(w.v)
		defer putBuf(w.mb)
		for {
			q := int(next.Add(1)) - 1
			if q >= len(units) {
				return
			}
			un := units[q]
			w.input(un, 0, p.C)
			w.products(un, 0, 16)
			w.output(un, 0, p.M)
		}
	})
}

// winoWork is what the steps of convForwardWinograd's units read: the padded images
// (from image c0) and the transformed filters, and the buffers of one unit's
// transformed inputs (v) and products (mb).
type winoWork struct {
	kern          *gemmKernel
	p             Conv2DParams
	c0, plane, wp int
	xp, u         []float32
	plen, tb      int
	bias, y       []float32
	flags         uint32
	lo, hi        float32 // the clamp of flags tileClamp
	v, mb         []float32
}

// buffers returns a unit's transformed inputs and products, with 32 values of slack
// after each (zeros): the products and the output transform read whole panels and
// 16-tile rows past the last tile.
func (w *winoWork) buffers() (v, mb []float32) {
	C, M, tb := w.p.C, w.p.M, w.tb
	v = getBuf[float32](16*C*tb + 64)
	mb = getBuf[float32](16*M*tb + 64)
	clear(v[16*C*tb:])
	clear(mb[16*M*tb:])
	return v, mb
}

// tiles returns the unit's tiles per image and in all.
func (w *winoWork) tiles(un winoUnit) (rt, nt int) {
	rt = (un.ti1 - un.ti0) * ((w.p.OutW + 1) / 2)
	return rt, (un.n1 - un.n0) * rt
}

// input writes the transformed inputs V[k][c][t] of channels [c0, c1) of the unit, t
// the tile's index in the unit.
func (w *winoWork) input(un winoUnit, c0, c1 int) {
	p, wt, C, tb := w.p, w.kern.wino, w.p.C, w.tb
	lanes, tw := wt.tiles, (p.OutW+1)/2
	rt, _ := w.tiles(un)
	for n := un.n0; n < un.n1; n++ {
		for c := c0; c < c1; c++ {
			base := w.xp[((n-w.c0)*C+c)*w.plane:]
			for ti := un.ti0; ti < un.ti1; ti++ {
				for tj := 0; tj < tw; tj += lanes {
					t := (n-un.n0)*rt + (ti-un.ti0)*tw + tj
					wt.input(&base[2*ti*w.wp+2*tj], w.wp, &w.v[c*tb+t], C*tb, min(lanes, tw-tj))
				}
			}
		}
	}
}

// products computes M_k = U_k · V_k for k in [k0, k1), each on one core.
func (w *winoWork) products(un winoUnit, k0, k1 int) {
	C, M, tb := w.p.C, w.p.M, w.tb
	_, nt := w.tiles(un)
	for k := k0; k < k1; k++ {
		sgemmPacked(w.kern, 1, gemmArgs{
			m: M, n: nt, k: C, alpha: 1,
			ap: w.u[k*w.plen : (k+1)*w.plen],
			b:  matView{data: w.v[k*C*tb:], rows: axis{stride: tb}, cols: axis{stride: 1}},
			c:  w.mb[k*M*tb : k*M*tb+(M-1)*tb+nt], ldc: tb, bInPlace: true,
		})
	}
}

// output writes the outputs of channels [m0, m1) of the unit: the output transform,
// the bias and the clamp.
func (w *winoWork) output(un winoUnit, m0, m1 int) {
	p, wt, M, tb := w.p, w.kern.wino, w.p.M, w.tb
	lanes, tw := wt.tiles, (p.OutW+1)/2
	rt, _ := w.tiles(un)
	ys := p.M * p.OutH * p.OutW
	for n := un.n0; n < un.n1; n++ {
		for m := m0; m < m1; m++ {
			var b float32
			if w.bias != nil {
				b = w.bias[m]
			}
			yp := w.y[n*ys+m*p.OutH*p.OutW:]
			for ti := un.ti0; ti < un.ti1; ti++ {
				oh := 2 * ti
				for tj := 0; tj < tw; tj += lanes {
					t := (n-un.n0)*rt + (ti-un.ti0)*tw + tj
					wt.output(&w.mb[m*tb+t], M*tb, &yp[oh*p.OutW+2*tj], p.OutW,
						min(lanes, tw-tj), min(2, p.OutH-oh), min(2*lanes, p.OutW-2*tj), b, w.flags, w.lo, w.hi)
				}
			}
		}
	}
}

// winoUnit is a share of convForwardWinograd's tiles: tile rows [ti0, ti1) of images
// [n0, n1).
type winoUnit struct {
	n0, n1, ti0, ti1 int
}

// FilterCache keeps what a convolution derives from its weights alone from call to
// call while they stay the same: the Winograd filter transform of frozen or inference
// weights, which is most of a forward pass at batch 1 on small maps otherwise (40% of
// ResNet-18's at 224), or, for trusted calls (Conv2DForwardConstant), the weights
// packed for the products (cacheKind). A checked call compares a fingerprint of the
// weights, so weights changed in any way are transformed again; a trusted call does
// not. A program passes a cache only for weights it does not train. The zero value is
// ready to use; not for concurrent calls.
type FilterCache struct {
	u    []float32
	kern *gemmKernel
	kind cacheKind
	sum  uint64
	off  bool
}

// filterUse is how one call uses a FilterCache: none (cache nil, or disabled), checked
// (the weights' fingerprint compared), or trusted (Conv2DForwardConstant: the weights
// are those the cache was filled from, the caller's promise, so the fingerprint is
// skipped).
type filterUse struct {
	cache   *FilterCache
	trusted bool
}

// on reports whether the call uses its cache.
func (f filterUse) on() bool { return f.cache != nil && !f.cache.off }

// cacheKind says what a FilterCache holds.
type cacheKind int

const (
	cacheWinograd   cacheKind = iota // transformed filters (winoFilters)
	cachePacked                      // the weights packed as sgemmInPlace reads A (packAInPlace)
	cachePackedCols                  // the weights packed as sgemmByCols reads A (packAByCols)
	cachePackedB                     // a Gemm's weights packed as the products read B (packBWhole)
)

// Disable lets the cache's memory go and makes the calls given it transform the
// filters every time: for weights that change between calls (trained by another
// program), whose cache would only hold memory.
func (c *FilterCache) Disable() {
	c.u, c.kern, c.sum, c.off = nil, nil, 0, true
}

// get returns the n values of the given kind derived from the weights w by fill, from
// the cache (f.on()) when they were derived from these weights (by fingerprint, or
// trusted) with kern.
func (f filterUse) get(kern *gemmKernel, kind cacheKind, n int, w []float32, fill func(u []float32)) []float32 {
	c := f.cache
	held := c.kern == kern && c.kind == kind && len(c.u) == n
	if held && f.trusted {
		return c.u
	}
	sum := fingerprint(w)
	if held && c.sum == sum {
		return c.u
	}
	if cap(c.u) < n {
		c.u = make([]float32, n)
	}
	c.u = c.u[:n]
	fill(c.u)
	c.kern, c.kind, c.sum = kern, kind, sum
	return c.u
}

// Disabled reports whether Disable was called.
func (c *FilterCache) Disabled() bool { return c.off }

// fingerprint is a 64-bit hash of the bits of w (four multiply-xor lanes,
// mixed at the end): a change anywhere in w changes it but with probability
// about 2⁻⁶⁴.
func fingerprint(w []float32) uint64 {
	const k = 0x9e3779b97f4a7c15
	h := [4]uint64{1, 2, 3, uint64(len(w))}
	i := 0
	for ; i+8 <= len(w); i += 8 {
		q := (*[8]float32)(w[i:])
		h[0] = (h[0] ^ (uint64(math.Float32bits(q[0])) | uint64(math.Float32bits(q[1]))<<32)) * k
		h[1] = (h[1] ^ (uint64(math.Float32bits(q[2])) | uint64(math.Float32bits(q[3]))<<32)) * k
		h[2] = (h[2] ^ (uint64(math.Float32bits(q[4])) | uint64(math.Float32bits(q[5]))<<32)) * k
		h[3] = (h[3] ^ (uint64(math.Float32bits(q[6])) | uint64(math.Float32bits(q[7]))<<32)) * k
	}
	for ; i < len(w); i++ {
		h[0] = (h[0] ^ uint64(math.Float32bits(w[i]))) * k
	}
	x := h[0]
	for _, v := range h[1:] {
		x = (x ^ (v >> 29) ^ v) * k
		x ^= x >> 32
	}
	return x
}
