package kernels

import "errors"

// mmPlan is a batched matrix product y[o] = a[aIdx[o]] · b[bIdx[o]] of
// M×K by K×N matrices.
type mmPlan struct {
	M, K, N    int
	out        []int // output shape
	aIdx, bIdx []int // per output batch: matrix index into a and b
	aMats      int   // matrices in a
	bMats      int   // matrices in b
}

func matmulPlan(aShape, bShape []int) (mmPlan, error) {
	var pl mmPlan
	if len(aShape) == 0 || len(bShape) == 0 {
		return pl, errors.New("kernels: MatMul: scalar operand")
	}
	a, b := aShape, bShape
	if len(a) == 1 {
		a = []int{1, a[0]}
	}
	if len(b) == 1 {
		b = []int{b[0], 1}
	}
	pl.M, pl.K = a[len(a)-2], a[len(a)-1]
	if b[len(b)-2] != pl.K {
		return pl, errors.New("kernels: MatMul: inner dimensions of " + shapeString(aShape) + " and " + shapeString(bShape) + " differ")
	}
	pl.N = b[len(b)-1]
	ab, bb := a[:len(a)-2], b[:len(b)-2]
	batch, err := BroadcastShape(ab, bb)
	if err != nil {
		return pl, errors.New("kernels: MatMul: batch dimensions of " + shapeString(aShape) + " and " + shapeString(bShape) + " do not broadcast")
	}
	pl.out = append([]int{}, batch...)
	if len(aShape) > 1 {
		pl.out = append(pl.out, pl.M)
	}
	if len(bShape) > 1 {
		pl.out = append(pl.out, pl.N)
	}
	pl.aMats, pl.bMats = Size(ab), Size(bb)
	bp := makePlan("MatMul", ab, bb)
	pl.aIdx = make([]int, 0, bp.size)
	pl.bIdx = make([]int, 0, bp.size)
	bp.each(func(_, ia, ib, n, sa, sb int) {
		for i := 0; i < n; i++ {
			pl.aIdx = append(pl.aIdx, ia+i*sa)
			pl.bIdx = append(pl.bIdx, ib+i*sb)
		}
	})
	return pl, nil
}

// MatMulShape returns the output shape of ONNX MatMul (numpy.matmul): a
// 1-D first operand [K] is treated as [1, K] and a 1-D second operand as
// [K, 1], the added axis being removed from the result; leading (batch)
// axes broadcast.
func MatMulShape(aShape, bShape []int) ([]int, error) {
	pl, err := matmulPlan(aShape, bShape)
	return pl.out, err
}

func mmCheck[T Float](name string, aShape []int, a []T, bShape []int, b []T) mmPlan {
	pl, err := matmulPlan(aShape, bShape)
	if err != nil {
		panic(err.Error() + " (in " + name + ")")
	}
	if a != nil {
		need(name, "a", a, Size(aShape))
	}
	if b != nil {
		need(name, "b", b, Size(bShape))
	}
	return pl
}

// foldA reports whether every output batch multiplies a distinct, in-order
// matrix of a by b's only matrix, so that the batch folds into the rows of
// one product: a [B*M, K] · b [K, N].
func (pl *mmPlan) foldA() bool {
	return pl.bMats == 1 && pl.aMats == len(pl.aIdx)
}

// MatMul computes y = a · b with ONNX MatMul semantics (see [MatMulShape])
// through [Gemm]. y is overwritten.
func MatMul[T Float](aShape []int, a []T, bShape []int, b []T, y []T) {
	const name = "MatMul"
	pl := mmCheck(name, aShape, a, bShape, b)
	M, K, N := pl.M, pl.K, pl.N
	need(name, "y", y, len(pl.aIdx)*M*N)
	if pl.foldA() {
		Gemm(false, false, pl.aMats*M, N, K, 1, a, K, b, N, 0, y, N)
		return
	}
	forBatches(len(pl.aIdx), true, func(o int) gemmCall[T] {
		ia, ib := pl.aIdx[o], pl.bIdx[o]
		return gemmCall[T]{m: M, n: N, k: K, alpha: 1, a: a[ia*M*K : (ia+1)*M*K], lda: K, b: b[ib*K*N : (ib+1)*K*N], ldb: N, c: y[o*M*N : (o+1)*M*N], ldc: N}
	})
}

// gemmCall is one product of a batch: C = alpha·op(A)·op(B) + beta·C.
type gemmCall[T Float] struct {
	transA, transB bool
	m, n, k        int
	alpha          T
	a              []T
	lda            int
	b              []T
	ldb            int
	beta           T
	c              []T
	ldc            int
}

// forBatches runs the products call(o), o < n, one after another. Where they write
// disjoint outputs (disjoint) and there are products enough for every core, on the
// toolkit's own float32 kernels, the products are split across the cores instead, each
// on one core (an attention layer's 192 products of 197×64 by 64×197 at batch 16 kept
// 1.25 cores busy when each product was split across them): each output is computed
// alone, with the same arithmetic, so the bits do not depend on the split.
func forBatches[T Float](n int, disjoint bool, call func(o int) gemmCall[T]) {
	if kern := packedKernel[T](); kern != nil && disjoint {
		eachOnOneCore(n, func(o, nw int) {
			g := call(o)
			sgemm(kern, nw, g.transA, g.transB, g.m, g.n, g.k, float32(g.alpha), as32(g.a), g.lda, as32(g.b), g.ldb, float32(g.beta), as32(g.c), g.ldc)
		})
		return
	}
	for o := range n {
		g := call(o)
		Gemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, g.c, g.ldc)
	}
}

// MatMulBackwardA computes da = dy · bᵀ for y = MatMul(a, b), summed over
// the batches that broadcast a. a's values are not needed (may be nil). da
// is overwritten.
func MatMulBackwardA[T Float](aShape []int, a []T, bShape []int, b []T, dy, da []T) {
	const name = "MatMulBackwardA"
	pl := mmCheck(name, aShape, nil, bShape, b)
	M, K, N := pl.M, pl.K, pl.N
	need(name, "dy", dy, len(pl.aIdx)*M*N)
	need(name, "da", da, pl.aMats*M*K)
	if pl.foldA() {
		Gemm(false, true, pl.aMats*M, K, N, 1, dy, N, b, N, 0, da, K)
		return
	}
	clear(da[:pl.aMats*M*K])
	forBatches(len(pl.aIdx), pl.aMats == len(pl.aIdx), func(o int) gemmCall[T] {
		ia, ib := pl.aIdx[o], pl.bIdx[o]
		return gemmCall[T]{transB: true, m: M, n: K, k: N, alpha: 1, a: dy[o*M*N : (o+1)*M*N], lda: N, b: b[ib*K*N : (ib+1)*K*N], ldb: N, beta: 1, c: da[ia*M*K : (ia+1)*M*K], ldc: K}
	})
}

// MatMulBackwardB computes db = aᵀ · dy for y = MatMul(a, b), summed over
// the batches that broadcast b. b's values are not needed (may be nil). db
// is overwritten.
func MatMulBackwardB[T Float](aShape []int, a []T, bShape []int, b []T, dy, db []T) {
	const name = "MatMulBackwardB"
	pl := mmCheck(name, aShape, a, bShape, nil)
	M, K, N := pl.M, pl.K, pl.N
	need(name, "dy", dy, len(pl.aIdx)*M*N)
	need(name, "db", db, pl.bMats*K*N)
	if pl.foldA() {
		Gemm(true, false, K, N, pl.aMats*M, 1, a, K, dy, N, 0, db, N)
		return
	}
	clear(db[:pl.bMats*K*N])
	forBatches(len(pl.aIdx), pl.bMats == len(pl.bIdx), func(o int) gemmCall[T] {
		ia, ib := pl.aIdx[o], pl.bIdx[o]
		return gemmCall[T]{transA: true, m: K, n: N, k: M, alpha: 1, a: a[ia*M*K : (ia+1)*M*K], lda: K, b: dy[o*M*N : (o+1)*M*N], ldb: N, beta: 1, c: db[ib*K*N : (ib+1)*K*N], ldc: N}
	})
}
