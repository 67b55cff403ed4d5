package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKeepAndUpdateNorms checks Keep and UpdateNorms, split into many spans across the
// cores, against a plain float64 loop over the same values.
func TestKeepAndUpdateNorms(t *testing.T) {
	c, s := chunk, serialBelow
	chunk, serialBelow = 100, 0
	defer func() { chunk, serialBelow = c, s }()
	rng := rand.New(rand.NewPCG(1, 2))
	var params []Param
	for i, n := range []int{1000, 7, 2345} {
		v := make([]float32, n)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		params = append(params, Param{Name: string(rune('a' + i)), Value: v})
	}
	kept := map[string][]float32{"b": make([]float32, 3)} // a buffer too short to reuse
	Keep(kept, params)
	for _, p := range params {
		if !slices.Equal(kept[p.Name], p.Value) {
			t.Fatalf("Keep: %s differs", p.Name)
		}
	}
	var du, w float64
	for _, p := range params {
		for j := range p.Value {
			old := float64(p.Value[j])
			p.Value[j] += float32(1e-3 * rng.NormFloat64())
			d := float64(p.Value[j]) - old
			du += d * d
			w += float64(p.Value[j]) * float64(p.Value[j])
		}
	}
	gotU, gotW := UpdateNorms(params, kept)
	if math.Abs(gotU-math.Sqrt(du)) > 1e-12*math.Sqrt(du) || math.Abs(gotW-math.Sqrt(w)) > 1e-12*math.Sqrt(w) {
		t.Errorf("UpdateNorms = %v, %v; want %v, %v", gotU, gotW, math.Sqrt(du), math.Sqrt(w))
	}
}
