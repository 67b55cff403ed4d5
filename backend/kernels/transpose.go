package kernels

import "errors"

// MaxTransposeRank is the largest rank [Transpose] accepts.
const MaxTransposeRank = 8

// TransposeShape returns the shape of x's transpose: out[i] = shape[perm[i]].
func TransposeShape(shape, perm []int) []int {
	checkPerm("TransposeShape", shape, perm)
	out := make([]int, len(perm))
	for i, a := range perm {
		out[i] = shape[a]
	}
	return out
}

// InversePerm returns the permutation q with q[perm[i]] = i, which undoes
// perm.
func InversePerm(perm []int) []int {
	q := make([]int, len(perm))
	for i, a := range perm {
		q[a] = i
	}
	return q
}

func checkPerm(name string, shape, perm []int) {
	if err := PermutationError(perm, len(shape)); err != nil {
		panic("kernels: " + name + ": " + err.Error())
	}
}

// PermutationError says why perm is not a permutation of r axes that [Transpose] takes,
// or returns nil.
func PermutationError(perm []int, r int) error {
	if len(perm) != r {
		return errors.New("permutation of length " + itoa(len(perm)) + " for rank " + itoa(r))
	}
	if r > MaxTransposeRank {
		return errors.New("rank " + itoa(r) + " exceeds MaxTransposeRank")
	}
	var seen [MaxTransposeRank]bool
	for _, a := range perm {
		if a < 0 || a >= r || seen[a] {
			return errors.New(shapeString(perm) + " is not a permutation of 0.." + itoa(r-1))
		}
		seen[a] = true
	}
	return nil
}

// Transpose writes into y the transpose of x, whose shape is shape: y's axis
// i is x's axis perm[i] (ONNX Transpose, numpy.transpose). Axes of length 1
// are dropped and runs of axes that stay adjacent are merged before the
// copy, so the work is a plain copy, a tiled 2-D transpose, or a loop whose
// innermost axis is contiguous in y. Any rank up to [MaxTransposeRank].
func Transpose[T any](shape, perm []int, x, y []T) {
	const name = "Transpose"
	checkPerm(name, shape, perm)
	size := 1
	for _, d := range shape {
		size *= d
	}
	need(name, "x", x, size)
	need(name, "y", y, size)
	if size == 0 {
		return
	}

	// Simplify: drop unit axes, then merge input axes that stay adjacent.
	var dims [MaxTransposeRank]int // input dims after dropping unit axes
	var newIdx [MaxTransposeRank]int
	r := 0
	for a, d := range shape {
		if d != 1 {
			newIdx[a] = r
			dims[r] = d
			r++
		} else {
			newIdx[a] = -1
		}
	}
	var p [MaxTransposeRank]int // permutation over the r kept axes
	k := 0
	for _, a := range perm {
		if newIdx[a] >= 0 {
			p[k] = newIdx[a]
			k++
		}
	}
	// Merge: output axes i, i+1 with p[i+1] == p[i]+1 form one input run.
	var mdims [MaxTransposeRank]int // merged input dims, in input order
	var mperm [MaxTransposeRank]int
	// group[j] = merged id of input axis j
	var start [MaxTransposeRank]bool // input axis j starts a merged run
	for i := 0; i < r; i++ {
		if i == 0 || p[i] != p[i-1]+1 {
			start[p[i]] = true
		}
	}
	var gid [MaxTransposeRank]int
	mr := 0
	for j := 0; j < r; j++ {
		if start[j] {
			mdims[mr] = dims[j]
			mr++
		} else {
			mdims[mr-1] *= dims[j]
		}
		gid[j] = mr - 1
	}
	mk := 0
	for i := 0; i < r; i++ {
		if start[p[i]] {
			mperm[mk] = gid[p[i]]
			mk++
		}
	}

	switch {
	case mr <= 1:
		copy(y[:size], x[:size])
		return
	case mr == 2: // mperm is [1 0]
		// Bands of the input's rows, a tile's height each, split across the cores: each
		// band writes its own columns of y.
		rows, cols := mdims[0], mdims[1]
		const tile = 32
		bands := (rows + tile - 1) / tile
		parallelFor(bands, workers(bands, tile*cols), func(_, lo, hi int) {
			transpose2DRows(rows, cols, lo*tile, min(hi*tile, rows), x, y)
		})
		return
	}

	// General case: odometer over the output axes but the last.
	var istr [MaxTransposeRank]int
	s := 1
	for j := mr - 1; j >= 0; j-- {
		istr[j] = s
		s *= mdims[j]
	}
	var odims, ostr [MaxTransposeRank]int
	for i := 0; i < mr; i++ {
		odims[i] = mdims[mperm[i]]
		ostr[i] = istr[mperm[i]]
	}
	inner, innerStride := odims[mr-1], ostr[mr-1]
	// The output's rows (of inner values) split across the cores: each part starts its
	// odometer at its first row.
	rows := size / inner
	parallelFor(rows, workers(rows, inner), func(_, lo, hi int) {
		var idx [MaxTransposeRank]int
		src := 0
		for a, rem := mr-2, lo; a >= 0; a-- {
			idx[a] = rem % odims[a]
			rem /= odims[a]
			src += idx[a] * ostr[a]
		}
		for o := lo * inner; o < hi*inner; o += inner {
			dst := y[o : o+inner]
			si := src
			for i := range dst {
				dst[i] = x[si]
				si += innerStride
			}
			// Advance the odometer over axes mr-2 .. 0.
			for a := mr - 2; a >= 0; a-- {
				idx[a]++
				src += ostr[a]
				if idx[a] < odims[a] {
					break
				}
				src -= ostr[a] * odims[a]
				idx[a] = 0
			}
		}
	})
}

// transpose2DRows is transpose2D of an r x c matrix a into t for a's rows [i0, i1).
func transpose2DRows[T any](r, c, i0, i1 int, a, t []T) {
	const tile = 32
	for b0 := i0; b0 < i1; b0 += tile {
		b1 := min(b0+tile, i1)
		for j0 := 0; j0 < c; j0 += tile {
			j1 := min(j0+tile, c)
			for i := b0; i < b1; i++ {
				row := a[i*c : i*c+c]
				for j := j0; j < j1; j++ {
					t[j*r+i] = row[j]
				}
			}
		}
	}
}

// TransposeBackward computes dx from dy for y = Transpose(shape, perm, x):
// the transpose of dy by the inverse permutation. shape is x's shape.
func TransposeBackward[T any](shape, perm []int, dy, dx []T) {
	Transpose(TransposeShape(shape, perm), InversePerm(perm), dy, dx)
}
