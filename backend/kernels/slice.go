package kernels

import "fmt"

// Strided selection and repetition: ONNX Slice (and Split, a slice per output) and
// Tile.

// SliceParams describes a strided sub-tensor: output index i along axis d reads input
// index Start[d] + i*Step[d] (Step may be negative).
type SliceParams struct {
	In, Out     []int
	Start, Step []int
}

// Validate checks that every index the slice reads lies inside the input.
func (p SliceParams) Validate() error {
	r := len(p.In)
	if len(p.Out) != r || len(p.Start) != r || len(p.Step) != r {
		return fmt.Errorf("kernels: Slice: ranks of In %v, Out %v, Start %v, Step %v differ", p.In, p.Out, p.Start, p.Step)
	}
	for d := 0; d < r; d++ {
		if p.Out[d] == 0 {
			continue
		}
		last := p.Start[d] + (p.Out[d]-1)*p.Step[d]
		if p.Start[d] < 0 || p.Start[d] >= p.In[d] || last < 0 || last >= p.In[d] {
			return fmt.Errorf("kernels: Slice: axis %d reads %d..%d of %d", d, p.Start[d], last, p.In[d])
		}
	}
	return nil
}

// walk calls f(inOffset, outOffset, n, inStep) for every run along the last axis.
func (p SliceParams) walk(f func(io, oo, n, step int)) {
	r := len(p.In)
	if Size(p.Out) == 0 {
		return
	}
	if r == 0 {
		f(0, 0, 1, 1)
		return
	}
	inStride := make([]int, r)
	s := 1
	for d := r - 1; d >= 0; d-- {
		inStride[d] = s
		s *= p.In[d]
	}
	base := 0
	for d := 0; d < r; d++ {
		base += p.Start[d] * inStride[d]
	}
	idx := make([]int, r)
	inner := p.Out[r-1]
	innerStep := p.Step[r-1] * inStride[r-1]
	io := base
	for oo := 0; oo < Size(p.Out); oo += inner {
		f(io, oo, inner, innerStep)
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			io += p.Step[d] * inStride[d]
			if idx[d] < p.Out[d] {
				break
			}
			io -= p.Step[d] * inStride[d] * p.Out[d]
			idx[d] = 0
		}
	}
}

// SliceForward copies the sub-tensor p selects from x into y.
func SliceForward[T any](p SliceParams, x, y []T) {
	need("SliceForward", "x", x, Size(p.In))
	need("SliceForward", "y", y, Size(p.Out))
	p.walk(func(io, oo, n, step int) {
		if step == 1 {
			copy(y[oo:oo+n], x[io:io+n])
			return
		}
		for i := 0; i < n; i++ {
			y[oo+i] = x[io+i*step]
		}
	})
}

// SliceBackward sets dx to dy at the positions the slice read and 0 elsewhere (a slice
// reads each input element at most once).
func SliceBackward[T Float](p SliceParams, dy, dx []T) {
	need("SliceBackward", "dy", dy, Size(p.Out))
	need("SliceBackward", "dx", dx, Size(p.In))
	n := Size(p.In)
	parallelFor(n, workers(n, 1), func(_, lo, hi int) { clear(dx[lo:hi]) })
	p.walk(func(io, oo, n, step int) {
		if step == 1 {
			copy(dx[io:io+n], dy[oo:oo+n])
			return
		}
		for i := 0; i < n; i++ {
			dx[io+i*step] = dy[oo+i]
		}
	})
}

// TileShape returns the shape of x tiled repeats times along each axis.
func TileShape(shape, repeats []int) []int {
	out := make([]int, len(shape))
	for i := range shape {
		out[i] = shape[i] * repeats[i]
	}
	return out
}

// tileWalk calls f(inOffset, outOffset, n) for every run of the last axis of the
// output, which copies the input's last axis (n = its length).
func tileWalk(shape, repeats []int, f func(io, oo, n int)) {
	r := len(shape)
	out := TileShape(shape, repeats)
	total := Size(out)
	if total == 0 {
		return
	}
	if r == 0 {
		f(0, 0, 1)
		return
	}
	inStride := make([]int, r)
	s := 1
	for d := r - 1; d >= 0; d-- {
		inStride[d] = s
		s *= shape[d]
	}
	n := shape[r-1]
	idx := make([]int, r) // output index, last axis in steps of n
	for oo := 0; oo < total; oo += n {
		io := 0
		for d := 0; d < r-1; d++ {
			io += (idx[d] % shape[d]) * inStride[d]
		}
		f(io, oo, n)
		idx[r-1] += n
		for d := r - 1; d > 0 && idx[d] >= out[d]; d-- {
			idx[d] = 0
			idx[d-1]++
		}
	}
}

// TileForward sets y to x repeated repeats[d] times along each axis d.
func TileForward[T any](shape, repeats []int, x, y []T) {
	need("TileForward", "x", x, Size(shape))
	need("TileForward", "y", y, Size(TileShape(shape, repeats)))
	tileWalk(shape, repeats, func(io, oo, n int) { copy(y[oo:oo+n], x[io:io+n]) })
}

// TileBackward sets dx to the sum of dy over the tiles.
func TileBackward[T Float](shape, repeats []int, dy, dx []T) {
	need("TileBackward", "dy", dy, Size(TileShape(shape, repeats)))
	need("TileBackward", "dx", dx, Size(shape))
	clear(dx[:Size(shape)])
	tileWalk(shape, repeats, func(io, oo, n int) { addTo(dx[io:io+n], dy[oo:oo+n]) })
}
