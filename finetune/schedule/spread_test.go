package schedule

import (
	"math"
	"strings"
	"testing"
)

var six = []string{"g0", "g1", "g2", "g3", "g4", "head"}

func checkRates(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rates, want %d", name, len(got), len(want))
	}
	for i := range want {
		if !approx(got[i], want[i], 1e-12) {
			t.Errorf("%s: group %d rate %.17g, want %.17g", name, i, got[i], want[i])
		}
	}
}

func TestULMFiTSixGroups(t *testing.T) {
	// 1e-3 / 2.6^k for k = 5..0, worked out by hand (to 30 digits).
	want := []float64{
		8.41653357321576221474684413657e-6,
		2.18829872903609817583417947551e-5,
		5.68957669549385525716886663632e-5,
		1.47928994082840236686390532544e-4,
		3.84615384615384615384615384615e-4,
		1e-3,
	}
	got, err := ULMFiT{Max: 1e-3, Factor: 2.6}.Rates(six, six)
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "ulmfit all", got, want)

	// Gradual unfreezing: positions count over the whole model, untrained groups get 0.
	got, err = ULMFiT{Max: 1e-3, Factor: 2.6}.Rates(six, []string{"head", "g4"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "ulmfit top two", got, []float64{0, 0, 0, 0, want[4], want[5]})
	got, err = ULMFiT{Max: 1e-3, Factor: 2.6}.Rates(six, []string{"g1"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "ulmfit g1 only", got, []float64{0, want[1], 0, 0, 0, 0})
}

func TestSliceSixGroups(t *testing.T) {
	// 1e-5 * 100^(i/5) = 10^(-5 + 0.4 i).
	want := []float64{1e-5, 2.5118864315095822e-05, 6.309573444801929e-05, 1.5848931924611142e-4,
		3.9810717055349735e-4, 1e-3}
	got, err := Slice{Lo: 1e-5, Hi: 1e-3}.Rates(six, six)
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "slice all", got, want)
	// fastai spreads over all groups, whatever the stage trains.
	got, err = Slice{Lo: 1e-5, Hi: 1e-3}.Rates(six, []string{"g2", "g3", "g4", "head"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "slice top four", got, []float64{0, 0, want[2], want[3], want[4], want[5]})
	// fastai's slice(hi).
	got, err = Slice{Hi: 1e-3}.Rates(six, six)
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "slice(hi)", got, []float64{1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-3})
	// One group gets hi.
	got, err = Slice{Lo: 1e-5, Hi: 1e-3}.Rates([]string{"head"}, []string{"head"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "slice one group", got, []float64{1e-3})
	// lo == hi is allowed.
	got, err = Slice{Lo: 1e-4, Hi: 1e-4}.Rates(six[:3], six[:3])
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "slice flat", got, []float64{1e-4, 1e-4, 1e-4})
}

func TestScalarAndPerGroup(t *testing.T) {
	groups := []string{"early", "late", "head"}
	got, err := Scalar(1e-3).Rates(groups, []string{"head"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "scalar head", got, []float64{0, 0, 1e-3})
	got, err = PerGroup{"early": 1e-5, "late": 1e-4, "head": 1e-3}.Rates(groups, []string{"late", "head"})
	if err != nil {
		t.Fatal(err)
	}
	checkRates(t, "per group", got, []float64{0, 1e-4, 1e-3})
}

func TestSpreadErrors(t *testing.T) {
	groups := []string{"early", "late", "head"}
	cases := []struct {
		name    string
		s       Spread
		groups  []string
		trained []string
		msg     []string
	}{
		{"scalar zero", Scalar(0), groups, groups, []string{"> 0"}},
		{"scalar nan", Scalar(math.NaN()), groups, groups, []string{"finite"}},
		{"scalar inf", Scalar(math.Inf(1)), groups, groups, []string{"finite"}},
		{"ulmfit max", ULMFiT{Max: -1, Factor: 2.6}, groups, groups, []string{"max"}},
		{"ulmfit factor", ULMFiT{Max: 1e-3}, groups, groups, []string{"factor"}},
		{"ulmfit underflow", ULMFiT{Max: 1e-300, Factor: 1e300}, groups, groups, []string{`group "early"`}},
		{"slice order", Slice{Lo: 1e-3, Hi: 1e-5}, groups, groups, []string{"lo must be <= hi"}},
		{"slice lo", Slice{Lo: -1e-5, Hi: 1e-3}, groups, groups, []string{"lo"}},
		{"slice hi", Slice{Lo: 1e-5}, groups, groups, []string{"hi"}},
		{"per group unknown", PerGroup{"early": 1e-5, "late": 1e-4, "head": 1e-3, "middle": 1},
			groups, groups, []string{`unknown group "middle"`, "early, late, head"}},
		{"per group missing", PerGroup{"early": 1e-5, "head": 1e-3}, groups, groups,
			[]string{`"late" has no rate`}},
		{"per group bad rate", PerGroup{"early": 1e-5, "late": 0, "head": 1e-3}, groups, groups,
			[]string{`group "late"`}},
		{"unknown trained", Scalar(1e-3), groups, []string{"body"}, []string{`"body" is not a layer group`, "early, late, head"}},
		{"duplicate trained", Scalar(1e-3), groups, []string{"head", "head"}, []string{"twice"}},
		{"no trained", Scalar(1e-3), groups, nil, []string{"trains no group"}},
		{"no groups", Scalar(1e-3), nil, []string{"head"}, []string{"no layer groups"}},
		{"duplicate group", Scalar(1e-3), []string{"a", "a"}, []string{"a"}, []string{`"a" appears twice`}},
	}
	for _, c := range cases {
		_, err := c.s.Rates(c.groups, c.trained)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, frag := range c.msg {
			if !strings.Contains(err.Error(), frag) {
				t.Errorf("%s: error %q lacks %q", c.name, err, frag)
			}
		}
	}
}
