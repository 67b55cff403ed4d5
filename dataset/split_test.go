package dataset

import (
	"fmt"
	"image"
	"math"
	"slices"
	"testing"
)

// fakeExamples is an in-memory collection: example i is a 4x4 grey image filled with i%256
// (and i/256 in its first pixel), labelled labels[i].
type fakeExamples struct{ labels []int }

func (f fakeExamples) Len() int          { return len(f.labels) }
func (f fakeExamples) Label(i int) int   { return f.labels[i] }
func (f fakeExamples) Name(i int) string { return fmt.Sprintf("fake[%d]", i) }
func (f fakeExamples) Image(i int) (image.Image, error) {
	g := image.NewGray(image.Rect(0, 0, 4, 4))
	for k := range g.Pix {
		g.Pix[k] = uint8(i)
	}
	g.Pix[0] = uint8(i / 256)
	return g, nil
}

// unbalanced labels: class c has 10*(c+1) + c examples, interleaved.
func unbalanced() fakeExamples {
	var l []int
	for c := range 5 {
		for range 10*(c+1) + c {
			l = append(l, c)
		}
	}
	// Interleave deterministically so that classes are not contiguous.
	out := make([]int, len(l))
	for i := range l {
		out[(i*37)%len(l)] = l[i]
	}
	return fakeExamples{out}
}

func TestSplit(t *testing.T) {
	src := unbalanced()
	tr, va := Split(src, 0.2, 7)
	tr2, va2 := Split(src, 0.2, 7)
	if !slices.Equal(tr.Indices(), tr2.Indices()) || !slices.Equal(va.Indices(), va2.Indices()) {
		t.Fatal("same seed, different split")
	}
	// Disjoint, complete, each in source order.
	all := append(tr.Indices(), va.Indices()...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("train and val are not a partition of the source (at %d: %d)", i, v)
		}
	}
	if !slices.IsSorted(tr.Indices()) || !slices.IsSorted(va.Indices()) {
		t.Fatal("views are not in source order")
	}
	// Stratified: each class contributes round(0.2 * its size).
	counts := map[int]int{}
	for i := range va.Len() {
		counts[va.Label(i)]++
	}
	for c := range 5 {
		n := 10*(c+1) + c
		if want := int(math.Floor(0.2*float64(n) + 0.5)); counts[c] != want {
			t.Errorf("class %d: %d in validation, want %d of %d", c, counts[c], want, n)
		}
	}
	// View access goes through to the source.
	if va.Label(0) != src.Label(va.Indices()[0]) || va.Name(0) != src.Name(va.Indices()[0]) {
		t.Fatal("view does not map to its source")
	}
	// Another seed gives another split of the same sizes.
	_, va3 := Split(src, 0.2, 8)
	if slices.Equal(va.Indices(), va3.Indices()) {
		t.Fatal("seeds 7 and 8 gave the same split")
	}
	if va3.Len() != va.Len() {
		t.Fatal("split size depends on the seed")
	}
	// Splitting a view splits the view.
	a, b := Split(tr, 0.5, 1)
	if a.Len()+b.Len() != tr.Len() {
		t.Fatal("split of a view lost examples")
	}
}

func TestSplitEdges(t *testing.T) {
	src := unbalanced()
	tr, va := Split(src, 0, 1)
	if tr.Len() != src.Len() || va.Len() != 0 {
		t.Fatalf("fraction 0: %d/%d", tr.Len(), va.Len())
	}
	tr, va = Split(src, 1, 1)
	if tr.Len() != 0 || va.Len() != src.Len() {
		t.Fatalf("fraction 1: %d/%d", tr.Len(), va.Len())
	}
	for _, f := range []float64{-0.1, 1.5, math.NaN()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("fraction %v accepted", f)
				}
			}()
			Split(src, f, 1)
		}()
	}
	v := NewView(src, []int{5, 3})
	if v.Len() != 2 || v.Label(1) != src.Label(3) {
		t.Fatal("NewView")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewView accepted an out-of-range index")
			}
		}()
		NewView(src, []int{src.Len()})
	}()
}

// TestSplitStabilityPin is a change detector, not a correctness check: the validation
// indices of one split, recorded from this implementation, so that a change of
// algorithm (which would change every user's split) is noticed. TestSplitUniform checks
// the split against a reference distribution.
func TestSplitStabilityPin(t *testing.T) {
	src := fakeExamples{make([]int, 20)}
	_, va := Split(src, 0.25, 42)
	got := va.Indices()
	if len(got) != 5 {
		t.Fatalf("%d validation examples, want 5", len(got))
	}
	want := []int{3, 4, 11, 13, 16} // recorded from this implementation
	if !slices.Equal(got, want) {
		t.Fatalf("split of 20 with seed 42: %v, want %v (the split changed: users' validation sets change with it)", got, want)
	}
}

// TestSplitUniform checks that a split draws its validation examples uniformly: over
// 4,000 seeds, each of 20 examples of a class must be held out a quarter of the time.
// Pearson's statistic of the counts is compared with the 0.999 quantile of the
// chi-square distribution with 19 degrees of freedom, 43.82 (scipy.stats.chi2.ppf(0.999,
// 19); the counts of a draw without replacement vary less than a multinomial's, so the
// test errs on the side of passing a fair split). A shuffle that favours or never picks
// some positions fails it.
func TestSplitUniform(t *testing.T) {
	const n, seeds, frac = 20, 4000, 0.25
	src := fakeExamples{make([]int, n)}
	counts := make([]float64, n)
	for seed := range uint64(seeds) {
		_, va := Split(src, frac, seed)
		for _, i := range va.Indices() {
			counts[i]++
		}
	}
	expected := seeds * frac
	var chi2 float64
	for _, c := range counts {
		chi2 += (c - expected) * (c - expected) / expected
	}
	const critical = 43.82
	if chi2 > critical {
		t.Errorf("held-out counts %v: chi-square %.1f above %.2f: the split is not uniform", counts, chi2, critical)
	}
	t.Logf("chi-square %.1f (19 degrees of freedom)", chi2)
}
