package kernels

import "runtime"

// GemmOpParams describes the ONNX Gemm operator (a fully connected layer
// as PyTorch exports it): Y = Alpha * A' · B' + Beta * C, where A' is A
// ([M, K]) or, with TransA, Aᵀ (A stored [K, M]); B' is B ([K, N]) or, with
// TransB, Bᵀ (B stored [N, K]); Y is [M, N]; and the optional C broadcasts
// to [M, N] (unidirectionally: shapes [], [N], [1, N], [M, 1], [M, N]).
type GemmOpParams struct {
	M, N, K        int
	TransA, TransB bool
	Alpha, Beta    float64 // ONNX defaults are 1 and 1
}

func (p GemmOpParams) lda() int {
	if p.TransA {
		return p.M
	}
	return p.K
}

func (p GemmOpParams) ldb() int {
	if p.TransB {
		return p.K
	}
	return p.N
}

// GemmOpForward computes y = Alpha * A'·B' + Beta * c. c may be nil (no
// bias); cShape is its shape. y is overwritten.
func GemmOpForward[T Float](p GemmOpParams, a, b []T, cShape []int, c []T, y []T) {
	const name = "GemmOpForward"
	need(name, "a", a, p.M*p.K)
	need(name, "b", b, p.K*p.N)
	need(name, "y", y, p.M*p.N)
	beta := T(gemmOpBias(name, p, cShape, c, y))
	Gemm(p.TransA, p.TransB, p.M, p.N, p.K, T(p.Alpha), a, p.lda(), b, p.ldb(), beta, y, p.N)
}

// gemmOpBias sets y to C broadcast to [M, N] and returns the beta of the product that
// adds alpha·A'·B' to it, or returns 0 without C.
func gemmOpBias[T Float](name string, p GemmOpParams, cShape []int, c, y []T) float64 {
	if c == nil || p.Beta == 0 {
		return 0
	}
	out, err := BroadcastShape(cShape, []int{p.M, p.N})
	if err != nil || len(out) != 2 || out[0] != p.M || out[1] != p.N {
		panic("kernels: " + name + ": C of shape " + shapeString(cShape) + " does not broadcast to [M, N]")
	}
	// y = C broadcast, then y = alpha*A'B' + beta*y.
	BroadcastTo(cShape, c, []int{p.M, p.N}, y)
	return p.Beta
}

// gemmPackedBMax is the largest B (in values: 64 MB) GemmOpForwardConstant keeps
// packed whatever its rows. The packed copy doubles the weights' memory; for a
// classifier of a few million weights it buys a batch-1 product that reads them once
// instead of three times (packing reads and writes them): MobileNet-V2's forward at
// batch 1 5.34-5.37 to 5.18-5.23 ms on the Zen 4. A larger B (AlexNet's and VGG's first
// classifier layers, 38 and 103 million) is kept packed only in products of at most
// gemmPackedBigRows rows (predict at batch 1), where the packing, a transposing read of
// the whole of B on every run, was most of the product: AlexNet's forward at batch 1
// 14.5-15 to 12-12.5 ms on a Zen 5. Wider products (evaluate's batches) leave it alone.
const (
	gemmPackedBMax    = 1 << 24
	gemmPackedBigRows = 8
)

// keepsPackedB reports whether GemmOpForwardConstant keeps p's B packed.
func (p GemmOpParams) keepsPackedB() bool {
	return p.K*p.N <= gemmPackedBMax || p.M <= gemmPackedBigRows
}

// GemmOpForwardConstant is GemmOpForward for a B that stays the same from call to call
// (the caller's promise, as for Conv2DForwardConstant): on the toolkit's float32
// kernels, B is packed once into cache and the products read it from there, with the
// same arithmetic (the bits of GemmOpForward). The cache must be the caller's for this
// B, TransB and shape alone: a trusted cache of the right length is not checked. A nil
// or disabled cache, a B keepsPackedB declines or another kernel takes
// GemmOpForward.
func GemmOpForwardConstant[T Float](cache *FilterCache, p GemmOpParams, a, b []T, cShape []int, c []T, y []T) {
	kern, f := packedKernel[T](), filterUse{cache: cache, trusted: true}
	if kern == nil || !f.on() || p.M == 0 || p.N == 0 || p.K == 0 || float32(p.Alpha) == 0 || !p.keepsPackedB() {
		GemmOpForward(p, a, b, cShape, c, y)
		return
	}
	const name = "GemmOpForwardConstant"
	need(name, "a", a, p.M*p.K)
	need(name, "b", b, p.K*p.N)
	need(name, "y", y, p.M*p.N)
	beta := float32(gemmOpBias(name, p, cShape, c, y))
	nw := runtime.GOMAXPROCS(0)
	bv := dense(as32(b), p.ldb(), p.TransB)
	bp := f.get(kern, cachePackedB, packedBLen(kern, p.K, p.N), as32(b), func(u []float32) {
		packBWhole(kern, nw, bv, p.K, p.N, u)
	})
	a32, y32 := as32(a), as32(y)
	checkGemm(p.TransA, p.TransB, p.M, p.N, p.K, a32, p.lda(), as32(b), p.ldb(), y32, p.N)
	sgemmPacked(kern, nw, gemmArgs{m: p.M, n: p.N, k: p.K, alpha: float32(p.Alpha), beta: beta,
		a: dense(a32, p.lda(), p.TransA), b: bv, c: y32, ldc: p.N, bp: bp})
}

// GemmOpBackwardA computes da (A's shape) for [GemmOpForward]:
// dA' = Alpha * dy · B'ᵀ, transposed back when TransA. da is overwritten.
func GemmOpBackwardA[T Float](p GemmOpParams, b, dy, da []T) {
	const name = "GemmOpBackwardA"
	need(name, "b", b, p.K*p.N)
	need(name, "dy", dy, p.M*p.N)
	need(name, "da", da, p.M*p.K)
	alpha := T(p.Alpha)
	if !p.TransA {
		// da [M, K] = dy [M, N] · B'ᵀ; B'ᵀ is Bᵀ (B [K, N]) or B (B [N, K]).
		Gemm(false, !p.TransB, p.M, p.K, p.N, alpha, dy, p.N, b, p.ldb(), 0, da, p.K)
		return
	}
	// da [K, M] = B' · dyᵀ; B' is B (B [K, N]) or Bᵀ (B [N, K]).
	Gemm(p.TransB, true, p.K, p.M, p.N, alpha, b, p.ldb(), dy, p.N, 0, da, p.M)
}

// GemmOpBackwardB computes db (B's shape) for [GemmOpForward]:
// dB' = Alpha * A'ᵀ · dy, transposed back when TransB. db is overwritten.
func GemmOpBackwardB[T Float](p GemmOpParams, a, dy, db []T) {
	const name = "GemmOpBackwardB"
	need(name, "a", a, p.M*p.K)
	need(name, "dy", dy, p.M*p.N)
	need(name, "db", db, p.K*p.N)
	alpha := T(p.Alpha)
	if !p.TransB {
		// db [K, N] = A'ᵀ · dy; A'ᵀ is Aᵀ (A [M, K]) or A (A [K, M]).
		Gemm(!p.TransA, false, p.K, p.N, p.M, alpha, a, p.lda(), dy, p.N, 0, db, p.N)
		return
	}
	// db [N, K] = dyᵀ · A'; A' is A (A [M, K]) or Aᵀ (A [K, M]).
	Gemm(true, p.TransA, p.N, p.K, p.M, alpha, dy, p.N, a, p.lda(), 0, db, p.K)
}

// GemmOpBackwardC computes dc (of cShape) = Beta * ReduceToShape(dy) for
// [GemmOpForward]. dc is overwritten.
func GemmOpBackwardC[T Float](p GemmOpParams, cShape []int, dy, dc []T) {
	ReduceToShape([]int{p.M, p.N}, dy, cShape, dc)
	if p.Beta != 1 {
		beta := T(p.Beta)
		for i := range dc[:Size(cShape)] {
			dc[i] *= beta
		}
	}
}
