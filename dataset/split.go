package dataset

import (
	"fmt"
	"image"
	"math"
	"slices"
)

// View is a subset of an Examples collection, in a fixed order: a split, or any selection of
// indices. It implements Examples. The zero View is empty.
type View struct {
	base Examples
	idx  []int
}

// NewView selects base's examples at indices, in that order (for instance a split saved with
// a checkpoint: see Indices). It panics if an index is out of range.
func NewView(base Examples, indices []int) View {
	n := base.Len()
	for _, i := range indices {
		if i < 0 || i >= n {
			panic(fmt.Sprintf("dataset: NewView: index %d out of range [0, %d)", i, n))
		}
	}
	return View{base: base, idx: slices.Clone(indices)}
}

// Len is the number of examples in the view.
func (v View) Len() int { return len(v.idx) }

// Label is the label of the view's example i.
func (v View) Label(i int) int { return v.base.Label(v.idx[i]) }

// Image decodes the view's example i.
func (v View) Image(i int) (image.Image, error) { return v.base.Image(v.idx[i]) }

// Name names the view's example i.
func (v View) Name(i int) string { return v.base.Name(v.idx[i]) }

// File is the file of the view's example i when the collection is made of files (see
// Files), else "".
func (v View) File(i int) string {
	if f, ok := v.base.(Files); ok {
		return f.File(v.idx[i])
	}
	return ""
}

// Base is the collection the view selects from.
func (v View) Base() Examples { return v.base }

// Indices are the base indices of the view's examples, in view order.
func (v View) Indices() []int { return slices.Clone(v.idx) }

// Split divides src into a training and a validation view, stratified by label: within each
// class, the examples are shuffled with a PCG stream derived from seed and the first
// round(fraction x class size) of them go to validation (so a class of n examples gives
// validation round(fraction*n), rounding halves up). Both views list their examples in src
// order. The result depends only on src's labels, fraction and seed.
//
// fraction must be in [0, 1]; 0 gives an empty validation view, 1 an empty training view.
// Split panics otherwise: validate val_split when reading the config.
func Split(src Examples, fraction float64, seed uint64) (train, val View) {
	if !(fraction >= 0 && fraction <= 1) {
		panic(fmt.Sprintf("dataset: Split fraction %v out of range [0, 1]", fraction))
	}
	byClass := map[int][]int{}
	var labels []int
	for i := range src.Len() {
		l := src.Label(i)
		if _, ok := byClass[l]; !ok {
			labels = append(labels, l)
		}
		byClass[l] = append(byClass[l], i)
	}
	slices.Sort(labels)
	var tr, va []int
	for _, l := range labels {
		idx := byClass[l]
		r := newPCG(deriveKey(seed, purposeSplit, uint64(int64(l))))
		shuffleInts(r, idx)
		k := int(math.Floor(fraction*float64(len(idx)) + 0.5))
		va = append(va, idx[:k]...)
		tr = append(tr, idx[k:]...)
	}
	slices.Sort(tr)
	slices.Sort(va)
	return View{base: src, idx: tr}, View{base: src, idx: va}
}
