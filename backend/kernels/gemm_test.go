package kernels

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// naiveGemm64 is the defining triple loop in float64.
func naiveGemm64(transA, transB bool, m, n, k int, alpha float64, a []float32, lda int, b []float32, ldb int, beta float64, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for l := 0; l < k; l++ {
				var av, bv float32
				if transA {
					av = a[l*lda+i]
				} else {
					av = a[i*lda+l]
				}
				if transB {
					bv = b[j*ldb+l]
				} else {
					bv = b[l*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * s
			if beta != 0 {
				v += beta * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

// allKernels returns the packed GEMM's micro-kernels this machine runs:
// the assembly ones its CPU has and the portable one.
func allKernels() []*gemmKernel { return append(asmKernels(), kernelGo) }

// forEachImplementation runs f once with each GEMM of Implementations in
// use, restoring the original afterwards, and logs which ran.
func forEachImplementation(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	orig := Current()
	defer func() {
		if err := Use(orig); err != nil {
			t.Error(err)
		}
	}()
	for _, name := range Implementations() {
		if err := Use(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
	t.Logf("ran on %v", Implementations())
}

// TestSgemm checks the packed GEMM on every micro-kernel (serial and split
// across goroutines) and every implementation Gemm can dispatch to against
// the triple loop, over shapes that hit every fringe (rows mod 6 and 8,
// columns mod 16 and 32, k mod 4) and cross the kc, mc and nc blocking
// boundaries, with leading dimensions larger than the matrices, every
// transposition, and alpha/beta combinations (beta == 0 must ignore NaN
// in C), one row of A among them.
func TestSgemm(t *testing.T) {
	rng := newRNG(81)
	type shape struct{ m, n, k int }
	shapes := []shape{
		{1, 1, 1}, {6, 16, 4}, {8, 32, 4}, {5, 15, 3}, {7, 17, 5}, {9, 33, 9}, {13, 33, 9}, {12, 32, 257},
		{263, 40, 30}, {20, 4117, 3}, {31, 70, 515}, {64, 300, 27},
		{3, 500, 40}, {500, 3, 40}, {150, 130, 300},
		{13, 4150, 20}, {400, 50, 300}, {31, 4000, 9},
		{1, 300, 257}, {1, 1100, 37}, {1, 9, 1000}, // one row of A
	}
	type impl struct {
		name string
		f    gemmFunc[float32]
	}
	var impls []impl
	for _, kern := range allKernels() {
		for _, nw := range []int{1, 3} {
			impls = append(impls, impl{fmt.Sprintf("%s/%d goroutines", kern.name, nw), func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				sgemm(kern, nw, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			}})
		}
		impls = append(impls, impl{kern.name + "/parallelGemm", func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
			parallelGemm(func(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				sgemm(kern, 1, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			}, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}})
	}
	for _, name := range Implementations() {
		b, err := blasNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		impls = append(impls, impl{"Gemm(" + b.Name() + ")", b.Sgemm})
	}
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
				m, n, k := s.m, s.n, s.k
				lda, ldb, ldc := k+3, n+1, n+5
				if tr[0] {
					lda = m + 2
				}
				if tr[1] {
					ldb = k + 4
				}
				ar, br := m, k
				if tr[0] {
					ar = k
				}
				if tr[1] {
					br = n
				}
				a, b := to32(randn(rng, ar*lda)), to32(randn(rng, br*ldb))
				c0 := to32(randn(rng, m*ldc))
				if ab[1] == 0 {
					for i := range c0 {
						c0[i] = float32(math.NaN())
					}
				}
				want := naiveGemm64(tr[0], tr[1], m, n, k, float64(ab[0]), a, lda, b, ldb, float64(ab[1]), c0, ldc)
				for _, im := range impls {
					c := append([]float32(nil), c0...)
					im.f(tr[0], tr[1], m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					name := fmt.Sprintf("%s %dx%dx%d trans %v alpha %g beta %g", im.name, m, n, k, tr, ab[0], ab[1])
					tol := 1e-5 * math.Sqrt(float64(k))
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							got, w := float64(c[i*ldc+j]), want[i*n+j]
							if d := math.Abs(got - w); !(d <= tol*(1+math.Abs(w))) {
								t.Fatalf("%s: C[%d][%d] = %g, want %g", name, i, j, got, w)
							}
						}
						// Padding past column n is never written.
						for j := n; j < ldc && i*ldc+j < len(c); j++ {
							if g, w := c[i*ldc+j], c0[i*ldc+j]; g != w && !(math.IsNaN(float64(g)) && math.IsNaN(float64(w))) {
								t.Fatalf("%s: C[%d][%d] past n changed to %g", name, i, j, g)
							}
						}
					}
				}
			}
		}
	}
	var names []string
	for _, im := range impls {
		names = append(names, im.name)
	}
	t.Logf("ran %v", names)
}

// TestMicroKernels checks each micro-kernel's tile against the portable
// loops for k from 1 to 9 (every remainder of the four-step unrolling),
// full and fringe tiles (fewer rows, the first n columns) and sparse
// column masks (stored one after another), alpha 1 and not, with and
// without bias, beta 0 with NaN in C (never read), and no clamp, a Relu's
// and a two-sided one (a Clip's: NaN kept).
func TestMicroKernels(t *testing.T) {
	rng := newRNG(82)
	for _, kern := range allKernels() {
		mr, nr := kern.mr, kern.nr
		full := uint32(1)<<nr - 1
		ref := microKernelGo(mr, nr)
		for kc := 1; kc <= 9; kc++ {
			for _, beta := range []float32{0, 1, -0.5} {
				for _, alpha := range []float32{1, 1.5} {
					for _, cl := range tileClamps {
						flags, lo, hi := cl.flags, cl.lo, cl.hi
						for _, rows := range []int{mr, mr - 1, 1} {
							masks := []uint32{full, full >> 3, 1, uint32(rng.Uint64()) & full, 0x5 & full}
							for _, mask := range masks {
								if mask == 0 {
									continue
								}
								var bias []float32
								if kc%2 == 1 {
									bias = to32(randn(rng, mr))
								}
								a, b := to32(randn(rng, kc*mr)), to32(randn(rng, kc*nr))
								if kc == 5 {
									a[1] = float32(math.NaN()) // row 1 is NaN: the Relu keeps it NaN
								}
								ldc := nr + 3
								c0 := to32(randn(rng, mr*ldc))
								if beta == 0 {
									for i := range c0 {
										c0[i] = float32(math.NaN())
									}
								}
								got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
								kern.tile(kc, a, b, got, ldc, alpha, beta, bias, rows, mask, flags, lo, hi)
								ref(kc, a, b, want, ldc, alpha, beta, bias, rows, mask, flags, lo, hi)
								for i := range got {
									g, w := float64(got[i]), float64(want[i])
									if math.IsNaN(g) && math.IsNaN(w) {
										continue
									}
									if math.IsNaN(g) != math.IsNaN(w) {
										t.Fatalf("%s kc %d flags %d rows %d mask %#x: c[%d] = %g, want %g", kern.name, kc, flags, rows, mask, i, g, w)
									}
									if d := math.Abs(g - w); !(d <= 1e-5*(1+math.Abs(w))) {
										t.Fatalf("%s kc %d beta %g alpha %g flags %d rows %d mask %#x: c[%d] = %g, want %g", kern.name, kc, beta, alpha, flags, rows, mask, i, g, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// tileClamps are the stores the micro-kernel tests try: plain, a Relu's, a Clip's.
var tileClamps = []struct {
	flags  uint32
	lo, hi float32
}{{0, 0, 0}, {tileClamp, 0, float32(math.Inf(1))}, {tileClamp, -0.5, 0.75}}

// TestMicroKernelsInPlace checks the micro-kernels that read B in place
// (tileRows) against the packed ones, with rows of B scattered through a
// buffer and read up to the panel's full width whatever the mask.
func TestMicroKernelsInPlace(t *testing.T) {
	rng := newRNG(86)
	for _, kern := range allKernels() {
		if kern.tileRows == nil {
			continue
		}
		mr, nr := kern.mr, kern.nr
		for _, kc := range []int{1, 3, 4, 7, 288} {
			for _, mask := range []uint32{1<<nr - 1, 0x7fff, 0xf0f0f0f} {
				for _, cl := range tileClamps {
					flags, lo, hi := cl.flags, cl.lo, cl.hi
					src := to32(randn(rng, 4000))
					koff := make([]int32, kc)
					bp := make([]float32, kc*nr)
					for p := range koff {
						koff[p] = int32(rng.IntN(4000 - nr))
						copy(bp[p*nr:(p+1)*nr], src[koff[p]:])
					}
					a := to32(randn(rng, kc*mr))
					bias := to32(randn(rng, mr))
					ldc := nr + 1
					got, want := to32(randn(rng, mr*ldc)), make([]float32, mr*ldc)
					copy(want, got)
					kern.tileRows(kc, a, src, koff, got, ldc, 1, 0.5, bias, mr, mask, flags, lo, hi)
					kern.tile(kc, a, bp, want, ldc, 1, 0.5, bias, mr, mask, flags, lo, hi)
					assertBits(t, fmt.Sprintf("%s tileRows kc %d mask %#x flags %d", kern.name, kc, mask, flags), got, want)
				}
			}
		}
	}
}

// TestPackPanels checks each kernel's panel packers (copy and gather, full
// and partial panels, scattered offsets) against the portable ones.
func TestPackPanels(t *testing.T) {
	rng := newRNG(83)
	for _, kern := range allKernels() {
		for _, w := range []int{kern.mr, kern.nr} {
			for _, kc := range []int{1, 2, 7, 256} {
				for _, n := range []int{w, w - 1, 1, w / 2} {
					src := to32(randn(rng, 5000))
					koff := make([]int32, kc)
					lane := make([]int32, w)
					for p := range koff {
						koff[p] = int32(rng.IntN(2000))
						if p%3 == 0 {
							koff[p] = int32(37 * p % 2000) // even spacing now and then
						}
					}
					for l := range lane {
						lane[l] = int32(rng.IntN(2000))
					}
					for _, spacing := range []int{0, 11, 1, -1} {
						switch spacing {
						case 1: // consecutive
							for p := range koff {
								koff[p] = int32(37 + p)
							}
						case -1: // consecutive in runs broken now and then (image boundaries)
							for p := range koff {
								koff[p] = int32(37 + p + p/13*50)
							}
						case 11:
							for p := range koff {
								koff[p] = int32(11 * p)
							}
						}
						got, want := make([]float32, kc*w), make([]float32, kc*w)
						for i := range got {
							got[i] = float32(math.NaN())
						}
						kern.packCopy(w, src, koff, n, got)
						packCopyGo(w, src, koff, n, want)
						assertBits(t, fmt.Sprintf("%s packCopy w %d kc %d n %d", kern.name, w, kc, n), got, want)
						for i := range got {
							got[i] = float32(math.NaN())
						}
						kern.packGather(w, src, koff, lane, n, got)
						packGatherGo(w, src, koff, lane, n, want)
						assertBits(t, fmt.Sprintf("%s packGather w %d kc %d n %d", kern.name, w, kc, n), got, want)
					}
				}
			}
		}
	}
}

func assertBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %g, want %g", name, i, got[i], want[i])
		}
	}
}

// TestSgemmColMap checks products whose columns lie on a padded grid
// (colMap): the columns on the padding are dropped and the others stored
// compactly, on every kernel that stores sparse masks.
func TestSgemmColMap(t *testing.T) {
	rng := newRNG(85)
	for _, kern := range allKernels() {
		for _, s := range [][5]int{{9, 3, 5, 34, 32}, {16, 40, 300, 18, 16}, {7, 10, 20, 4, 2}, {64, 12, 27, 226, 224}} {
			m, rowsOut, k, wp, ow := s[0], s[1], s[2], s[3], s[4]
			n := (rowsOut-1)*wp + ow
			for _, beta := range []float32{0, 1} {
				a, b := to32(randn(rng, m*k)), to32(randn(rng, k*n))
				bias := to32(randn(rng, m))
				ldc := rowsOut * ow
				c := to32(randn(rng, m*ldc))
				c0 := append([]float32(nil), c...)
				full := naiveGemm64(false, false, m, n, k, 1, a, k, b, n, 0, make([]float32, m*n), n)
				sgemmPacked(kern, 2, gemmArgs{m: m, n: n, k: k, alpha: 1, beta: beta, a: dense(a, k, false),
					b: dense(b, n, false), c: c, ldc: ldc, bias: bias, cmap: &colMap{wp: wp, ow: ow}})
				for i := 0; i < m; i++ {
					for r := 0; r < rowsOut; r++ {
						for j := 0; j < ow; j++ {
							w := full[i*n+r*wp+j] + float64(bias[i]) + float64(beta)*float64(c0[i*ldc+r*ow+j])
							g := float64(c[i*ldc+r*ow+j])
							if d := math.Abs(g - w); !(d <= 1e-4*(1+math.Abs(w))) {
								t.Fatalf("%s %v beta %g: C[%d][%d][%d] = %g, want %g", kern.name, s, beta, i, r, j, g, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestSgemmRowsApart checks that a row of C does not depend on the other rows of A (the
// feature cache's outputs are those of a run without it only if a layer's output does
// not depend on the batch it is computed in): each row computed alone, as at batch 1,
// gives the bits of the same row in a product of nine rows, on every micro-kernel,
// serial and split, with B plain and transposed, depths within one k block and across
// several.
func TestSgemmRowsApart(t *testing.T) {
	rng := newRNG(17)
	for _, kern := range allKernels() {
		for _, nw := range []int{1, 3} {
			for _, k := range []int{37, 300, 1280} {
				for _, transB := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {0.75, 1.5}} { // alpha, beta
						const m, n = 9, 100
						a, b := to32(randn(rng, m*k)), to32(randn(rng, k*n))
						c := to32(randn(rng, m*n))
						ldb := n
						if transB {
							ldb = k
						}
						all := slices.Clone(c)
						sgemm(kern, nw, false, transB, m, n, k, ab[0], a, k, b, ldb, ab[1], all, n)
						for i := range m {
							row := slices.Clone(c[i*n : (i+1)*n])
							sgemm(kern, nw, false, transB, 1, n, k, ab[0], a[i*k:(i+1)*k], k, b, ldb, ab[1], row, n)
							assertBits(t, fmt.Sprintf("%s, %d goroutines, k %d, transB %v, alpha and beta %v: row %d alone against among %d rows",
								kern.name, nw, k, transB, ab, i, m), row, all[i*n:(i+1)*n])
						}
					}
				}
			}
		}
	}
}
