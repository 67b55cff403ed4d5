package kernels

import "runtime"

// Float32 convolutions on the toolkit's own GEMM ([goBLAS]) use two things
// the BLAS interface cannot express: the bias added in the micro-kernel
// (no separate pass over the output to fill it in first), and, for the
// weight gradient, a B operand packed straight from the images into the
// GEMM's panels without an im2col buffer (im2colTPacker). The latter saves
// one write and one read of the unfolded images: measured on VGG19's
// layers it is worth it when the output rows are at least 12 wide (about
// 1.4x on the 32×32 and 16×16 layers at batch 8) and a loss on 2×2 to 8×8
// maps, where the per-row work is too small to amortise. (Packing the
// forward operand the same way lost to im2col plus the assembly panel
// copy on every VGG19 layer shape: copying runs of 16 values costs more
// per value than long row copies.)

// packedConv reports whether convolutions over T can use the packed GEMM.
func packedConv[T Float]() bool {
	_, ok := blasImpl.(goBLAS)
	return ok && is32[T]()
}

// packedWeightGrad reports whether Conv2DBackwardWeight takes the packed
// path for p.
func packedWeightGrad[T Float](p Conv2DParams) bool {
	return packedConv[T]() && p.OutW >= 12
}

// gemmBias computes c = a·b + bias[i] on row i (bias may be nil) for
// row-major a [m, k], b [k, n] and c [m, n], overwriting c. On the packed
// GEMM the bias is added by the micro-kernel; otherwise c is filled with
// the bias first and the product added to it.
func gemmBias[T Float](m, n, k int, a []T, lda int, b []T, ldb int, bias []T, c []T, ldc int) {
	if bias != nil && packedConv[T]() {
		checkGemm(false, false, m, n, k, a, lda, b, ldb, c, ldc)
		sgemmPacked(runtime.GOMAXPROCS(0), gemmArgs{
			m: m, n: n, k: k, alpha: 1, a: as32(a), lda: lda,
			b: denseB{b: as32(b), ldb: ldb}, c: as32(c), ldc: ldc, bias: as32(bias),
		})
		return
	}
	var beta T
	if bias != nil {
		for i := 0; i < m; i++ {
			fill(c[i*ldc:i*ldc+n], bias[i])
		}
		beta = 1
	}
	Gemm(false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

// runRange returns the positions [lo, hi) of a run of n consecutive
// columns, starting at column iw of a row of length w, that fall inside
// the row.
func runRange(iw, w, n int) (lo, hi int) {
	lo = min(n, max(0, -iw))
	hi = max(lo, min(n, w-iw))
	return lo, hi
}

// im2colTPacker is the transposed im2col matrix of images [n0, n0+g) (all
// output rows), as the B operand of the weight-gradient product dW = dY ·
// colᵀ: row r = i*P + oh*OutW + ow (an output position), column j =
// (c*KH+kh)*KW+kw (a tap).
type im2colTPacker struct {
	p  Conv2DParams
	x  []float32
	n0 int
}

func (s *im2colTPacker) packB(p0, j0, kc, nc int, dst []float32) {
	p := s.p
	HW, OW, KHW, P := p.H*p.W, p.OutW, p.KH*p.KW, p.OutH*p.OutW
	xs := p.C * HW
	for jr := 0; jr < nc; jr += gemmNR {
		nr := min(gemmNR, nc-jr)
		d := dst[jr*kc : jr*kc+kc*gemmNR]
		if nr < gemmNR {
			clear(d)
		}
		for jj := 0; jj < nr; jj++ {
			tap := j0 + jr + jj
			c, kh, kw := tap/KHW, tap%KHW/p.KW, tap%p.KW
			hoff, woff := kh*p.DilH-p.PadTop, kw*p.DilW-p.PadLeft
			for r := 0; r < kc; {
				pos := p0 + r
				i, q := pos/P, pos%P
				oh, ow := q/OW, q%OW
				run := min(kc-r, OW-ow)
				dp := d[r*gemmNR+jj:]
				ih := oh*p.StrideH + hoff
				if ih < 0 || ih >= p.H {
					for t := 0; t < run; t++ {
						dp[t*gemmNR] = 0
					}
					r += run
					continue
				}
				row := s.x[(s.n0+i)*xs+c*HW+ih*p.W : (s.n0+i)*xs+c*HW+(ih+1)*p.W]
				iw := ow*p.StrideW + woff
				if p.StrideW == 1 {
					lo, hi := runRange(iw, p.W, run)
					for t := 0; t < lo; t++ {
						dp[t*gemmNR] = 0
					}
					src := row[iw+lo : iw+hi]
					for t, v := range src {
						dp[(lo+t)*gemmNR] = v
					}
					for t := hi; t < run; t++ {
						dp[t*gemmNR] = 0
					}
				} else {
					for t := 0; t < run; t++ {
						var v float32
						if x := iw + t*p.StrideW; x >= 0 && x < p.W {
							v = row[x]
						}
						dp[t*gemmNR] = v
					}
				}
				r += run
			}
		}
	}
}

// conv2DBackwardWeightPacked is Conv2DBackwardWeight on the packed path:
// the whole batch in one product when its output gradient fits in a
// scratch buffer of 4M values, else one image at a time.
func conv2DBackwardWeightPacked(p Conv2DParams, x, dy, dw []float32) {
	K, P := p.C*p.KH*p.KW, p.OutH*p.OutW
	ys := p.M * P
	nb := 1
	if p.N > 1 && p.M*p.N*P <= 1<<22 {
		nb = p.N
	}
	var tmp []float32
	if nb > 1 {
		tmp = getBuf[float32](p.M * nb * P)
		defer putBuf(tmp)
	}
	nw := runtime.GOMAXPROCS(0)
	var beta float32
	for n0 := 0; n0 < p.N; n0 += nb {
		g := min(nb, p.N-n0)
		args := gemmArgs{
			m: p.M, n: K, k: g * P, alpha: 1, beta: beta,
			b: &im2colTPacker{p: p, x: x, n0: n0},
			c: dw, ldc: K,
		}
		if g == 1 {
			args.a, args.lda = dy[n0*ys:(n0+1)*ys], P
		} else {
			gatherGroup(p.M, P, dy, tmp, n0, g)
			args.a, args.lda = tmp, g*P
		}
		sgemmPacked(nw, args)
		beta = 1
	}
}
