package crosscheck

import (
	"math"
	"testing"
)

// TestDiff checks the comparison every cross-check rests on, on values whose answer is
// known: an infinity both sides agree on leaves the other differences as they are (it
// used to make the scale infinite and every later relative error 0).
func TestDiff(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, c := range []struct {
		name          string
		got, want     []float32
		wantRel, wAbs float64
	}{
		{"equal", []float32{1, -2, 3}, []float32{1, -2, 3}, 0, 0},
		{"relative to the largest reference", []float32{1, 2, 4}, []float32{1, 2, 3}, 1.0 / 3, 1},
		{"an agreed infinity first", []float32{inf, 1, 4}, []float32{inf, 1, 3}, 1.0 / 3, 1},
		{"an agreed infinity last", []float32{1, 4, inf}, []float32{1, 3, inf}, 1.0 / 3, 1},
		{"an infinity on one side", []float32{1, 3}, []float32{inf, 3}, math.Inf(1), math.Inf(1)},
		{"all-zero reference: the absolute difference", []float32{0, 0.5}, []float32{0, 0}, 0.5, 0.5},
		{"agreed NaN", []float32{nan, 2}, []float32{nan, 2}, 0, 0},
	} {
		rel, abs := diff(c.got, c.want)
		if rel != c.wantRel && !(math.Abs(rel-c.wantRel) < 1e-12) || abs != c.wAbs {
			t.Errorf("%s: rel %v, abs %v; want %v, %v", c.name, rel, abs, c.wantRel, c.wAbs)
		}
	}
	if rel, abs := diff([]float32{nan, 1}, []float32{1, 1}); !math.IsNaN(rel) || !math.IsNaN(abs) {
		t.Errorf("a NaN against a number: %v, %v; want NaN", rel, abs)
	}
}
