package kernels

import (
	"errors"
	"slices"
)

// TransposedMatMul is a batched matrix product read and written through transposes
// of the tensors stored, without copying them: the product of
// Transpose(a, PermA) and Transpose(b, PermB), scaled by Alpha and stored as
// Transpose(product, PermY), as in an attention layer's
//
//	Transpose(MatMul(Transpose(q)/√d, Transpose(k)), perm)
//
// Each matrix of the batch is read in place from the stored tensor: a transpose of a
// contiguous tensor is a strided view, and a matrix in it is one the products read
// directly when one of its two axes is contiguous (row-major with a leading dimension,
// or column-major read as the transpose of one). Both factors have the same batch axes
// (no broadcasting). Build it with [NewTransposedMatMul]; the passes are
// [TransposedMatMulForward], [TransposedMatMulBackwardA] and [TransposedMatMulBackwardB].
type TransposedMatMul struct {
	// AShape, BShape and YShape are the stored tensors' shapes: the factors before
	// their transposes, the output after its own.
	AShape, BShape, YShape []int
	// M, K, N are each product's dimensions; Alpha scales it.
	M, K, N int
	Alpha   float64
	a, b, y stridedMats
}

// stridedMats is a batch of matrices in a tensor: element (r, c) of matrix o at
// off[o] + r·rs + c·cs.
type stridedMats struct {
	off                []int
	rows, cols, rs, cs int
}

// t is the batch of the transposed matrices.
func (s stridedMats) t() stridedMats {
	return stridedMats{off: s.off, rows: s.cols, cols: s.rows, rs: s.cs, cs: s.rs}
}

// layout returns how the products read the matrices in place: row-major with leading
// dimension ld, or (trans) column-major, read as the transpose of a row-major matrix;
// ok is false when neither axis is contiguous.
func (s stridedMats) layout() (ld int, trans, ok bool) {
	if (s.cs == 1 || s.cols <= 1) && (s.rows <= 1 || s.rs >= s.cols) {
		if s.rows <= 1 {
			return max(s.cols, 1), false, true
		}
		return s.rs, false, true
	}
	if (s.rs == 1 || s.rows <= 1) && (s.cols <= 1 || s.cs >= s.rows) {
		if s.cols <= 1 {
			return max(s.rows, 1), true, true
		}
		return s.cs, true, true
	}
	return 0, false, false
}

// operand returns matrix o as a product's operand: its elements from the first, the
// leading dimension and whether the product reads it transposed.
func operand[T Float](s stridedMats, data []T, o int) (m []T, ld int, trans bool) {
	ld, trans, _ = s.layout()
	end := s.off[o] + (s.rows-1)*s.rs + (s.cols-1)*s.cs + 1
	return data[s.off[o]:end], ld, trans
}

// stridedProduct is the product c = alpha·x·y on matrix o of each batch, as a gemmCall
// (which writes row-major outputs: a column-major c is computed as cᵀ = yᵀ·xᵀ).
func stridedProduct[T Float](alpha T, c stridedMats, cd []T, x stridedMats, xd []T, y stridedMats, yd []T, o int) gemmCall[T] {
	if _, trans, _ := c.layout(); trans {
		c, x, y = c.t(), y.t(), x.t()
		xd, yd = yd, xd
	}
	a, lda, ta := operand(x, xd, o)
	b, ldb, tb := operand(y, yd, o)
	cm, ldc, _ := operand(c, cd, o)
	return gemmCall[T]{transA: ta, transB: tb, m: c.rows, n: c.cols, k: x.cols, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: cm, ldc: ldc}
}

// NewTransposedMatMul plans the product of Transpose(a, permA) and Transpose(b, permB)
// (a of aShape, b of bShape, contiguous), scaled by alpha, stored as
// Transpose(product, permY). A nil permutation is none. It fails unless the two
// transposed factors have the same rank (at least 2) and batch axes, inner dimensions
// that agree, and every matrix one contiguous axis.
func NewTransposedMatMul(aShape, permA, bShape, permB, permY []int, alpha float64) (*TransposedMatMul, error) {
	r := len(aShape)
	if r < 2 || len(bShape) != r {
		return nil, errors.New("kernels: TransposedMatMul: factors of shapes " + shapeString(aShape) + " and " + shapeString(bShape) + ": want the same rank, at least 2")
	}
	if r > MaxTransposeRank {
		return nil, errors.New("kernels: TransposedMatMul: factors of rank " + itoa(r) + ": above MaxTransposeRank")
	}
	for _, p := range [][]int{permA, permB, permY} {
		if p == nil {
			continue
		}
		if err := PermutationError(p, r); err != nil {
			return nil, errors.New("kernels: TransposedMatMul: " + err.Error())
		}
	}
	la, sa := transposedView(aShape, permA)
	lb, sb := transposedView(bShape, permB)
	if !slices.Equal(la[:r-2], lb[:r-2]) || la[r-1] != lb[r-2] {
		return nil, errors.New("kernels: TransposedMatMul: transposed factors " + shapeString(la) + " and " + shapeString(lb) + " do not multiply without broadcasting")
	}
	t := &TransposedMatMul{AShape: slices.Clone(aShape), BShape: slices.Clone(bShape), M: la[r-2], K: la[r-1], N: lb[r-1], Alpha: alpha}
	product := append(slices.Clone(la[:r-1]), t.N)
	sy := contiguousStrides(product) // the product's strides in the stored output
	t.YShape = product
	if permY != nil {
		t.YShape = TransposeShape(product, permY)
		ys := contiguousStrides(t.YShape)
		for i, p := range permY {
			sy[p] = ys[i]
		}
	}
	batch := la[:r-2]
	t.a = matsOf(batch, la, sa)
	t.b = matsOf(batch, lb, sb)
	t.y = matsOf(batch, product, sy)
	for i, m := range []stridedMats{t.a, t.b, t.y} {
		if _, _, ok := m.layout(); !ok {
			return nil, errors.New("kernels: TransposedMatMul: " + [3]string{"A", "B", "the output"}[i] + " of " + shapeString(la) + " · " + shapeString(lb) + " stored as " + shapeString(t.YShape) + ": its matrices have no contiguous axis")
		}
	}
	return t, nil
}

// transposedView returns the shape and strides of Transpose(x, perm) as a view of x
// (contiguous, of the shape given).
func transposedView(shape, perm []int) (view, strides []int) {
	s := contiguousStrides(shape)
	if perm == nil {
		return slices.Clone(shape), s
	}
	view, strides = make([]int, len(perm)), make([]int, len(perm))
	for i, p := range perm {
		view[i], strides[i] = shape[p], s[p]
	}
	return view, strides
}

// matsOf is the batch of matrices of a view (shape, strides): the last two axes, one
// matrix per element of the batch axes, in row-major order of those.
func matsOf(batch, shape, strides []int) stridedMats {
	r := len(shape)
	m := stridedMats{rows: shape[r-2], cols: shape[r-1], rs: strides[r-2], cs: strides[r-1]}
	m.off = make([]int, Size(batch))
	coord := make([]int, len(batch))
	for o := range m.off {
		off := 0
		for i, c := range coord {
			off += c * strides[i]
		}
		m.off[o] = off
		for i := len(coord) - 1; i >= 0; i-- {
			if coord[i]++; coord[i] < batch[i] {
				break
			}
			coord[i] = 0
		}
	}
	return m
}

// contiguousStrides returns the strides of a contiguous tensor of the shape given.
func contiguousStrides(shape []int) []int {
	s := make([]int, len(shape))
	n := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// TransposedMatMulForward computes y (t.YShape) from a (t.AShape) and b (t.BShape).
// y is overwritten.
func TransposedMatMulForward[T Float](t *TransposedMatMul, a, b, y []T) {
	const name = "TransposedMatMulForward"
	need(name, "a", a, Size(t.AShape))
	need(name, "b", b, Size(t.BShape))
	need(name, "y", y, Size(t.YShape))
	stridedProducts(t.y, y[:Size(t.YShape)], t.a, a, t.b, b, T(t.Alpha))
}

// TransposedMatMulBackwardA computes da (t.AShape), the gradient with respect to a,
// from b and the output's gradient dy: dA = Alpha·dY·Bᵀ on each matrix, written where
// the forward pass read it. da is overwritten.
func TransposedMatMulBackwardA[T Float](t *TransposedMatMul, b, dy, da []T) {
	const name = "TransposedMatMulBackwardA"
	need(name, "b", b, Size(t.BShape))
	need(name, "dy", dy, Size(t.YShape))
	need(name, "da", da, Size(t.AShape))
	stridedProducts(t.a, da[:Size(t.AShape)], t.y, dy, t.b.t(), b, T(t.Alpha))
}

// TransposedMatMulBackwardB computes db (t.BShape), the gradient with respect to b,
// from a and dy: dB = Alpha·Aᵀ·dY on each matrix. db is overwritten.
func TransposedMatMulBackwardB[T Float](t *TransposedMatMul, a, dy, db []T) {
	const name = "TransposedMatMulBackwardB"
	need(name, "a", a, Size(t.AShape))
	need(name, "dy", dy, Size(t.YShape))
	need(name, "db", db, Size(t.BShape))
	stridedProducts(t.b, db[:Size(t.BShape)], t.a.t(), a, t.y, dy, T(t.Alpha))
}

// stridedProducts computes c = alpha·x·y for every matrix of the batch, cd being the
// whole tensor the c matrices tile (zeros where the inner dimension is 0). The outputs
// are disjoint (each a transpose's share of one tensor), so the products may run one
// per core.
func stridedProducts[T Float](c stridedMats, cd []T, x stridedMats, xd []T, y stridedMats, yd []T, alpha T) {
	switch {
	case len(cd) == 0:
		return
	case x.cols == 0:
		clear(cd)
		return
	}
	forBatches(len(c.off), true, func(o int) gemmCall[T] {
		return stridedProduct(alpha, c, cd, x, xd, y, yd, o)
	})
}
