package kernels

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
	beta := T(0)
	if c != nil && p.Beta != 0 {
		out, err := BroadcastShape(cShape, []int{p.M, p.N})
		if err != nil || len(out) != 2 || out[0] != p.M || out[1] != p.N {
			panic("kernels: " + name + ": C of shape " + shapeString(cShape) + " does not broadcast to [M, N]")
		}
		// y = C broadcast, then y = alpha*A'B' + beta*y.
		BroadcastTo(cShape, c, []int{p.M, p.N}, y)
		beta = T(p.Beta)
	}
	Gemm(p.TransA, p.TransB, p.M, p.N, p.K, T(p.Alpha), a, p.lda(), b, p.ldb(), beta, y, p.N)
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
