package lrfind

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestRatesAreExponential(t *testing.T) {
	o := Defaults()
	if got := o.Rate(0); got != 1e-7 {
		t.Errorf("Rate(0) = %v, want 1e-7", got)
	}
	if got := o.Rate(100); math.Abs(got-10)/10 > 1e-12 {
		t.Errorf("Rate(100) = %v, want 10", got)
	}
	// Equal ratios between neighbours: 1e8^(1/100).
	want := math.Pow(1e8, 0.01)
	for i := 0; i < 100; i++ {
		if r := o.Rate(i+1) / o.Rate(i); math.Abs(r-want) > 1e-9 {
			t.Fatalf("Rate(%d)/Rate(%d) = %v, want %v", i+1, i, r, want)
		}
	}
}

func TestSmoothingIsDebiased(t *testing.T) {
	// A debiased moving average of a constant is that constant from the first step.
	r := NewRecorder(Defaults())
	for i := 0; i < 10; i++ {
		r.Add(Defaults().Rate(i), 2.5)
	}
	for i, l := range r.Losses {
		if math.Abs(l-2.5) > 1e-12 {
			t.Errorf("smoothed loss %d = %v, want 2.5", i, l)
		}
	}
}

func TestStopsAtDivergenceAndNaN(t *testing.T) {
	o := Defaults()
	o.Beta = 0 // no smoothing: the stop is exact
	r := NewRecorder(o)
	for i, l := range []float64{2, 1, 1.5, 3.9} {
		if r.Add(o.Rate(i), l) {
			t.Fatalf("stopped at loss %v, below 4x the best 1", l)
		}
	}
	if !r.Add(o.Rate(4), 4.1) || r.Stopped == "" {
		t.Error("did not stop at 4.1x the best loss")
	}
	r = NewRecorder(Defaults())
	r.Add(1e-7, 2)
	if !r.Add(1e-6, math.NaN()) || len(r.Losses) != 1 {
		t.Errorf("a NaN loss: stopped %q, %d losses recorded, want a stop and the NaN left out", r.Stopped, len(r.Losses))
	}
}

// curve records loss(lr) over the default sweep without smoothing.
func curve(f func(lr float64) float64) *Recorder {
	o := Defaults()
	o.Beta, o.StopFactor = 0, 0
	r := NewRecorder(o)
	for i := 0; i < o.Steps; i++ {
		r.Add(o.Rate(i), f(o.Rate(i)))
	}
	return r
}

func TestSteepestDescent(t *testing.T) {
	// -tanh(log(lr/1e-3)) falls fastest at lr = 1e-3.
	r := curve(func(lr float64) float64 { return 1 - math.Tanh(math.Log(lr/1e-3)) })
	_, steep, err := r.Suggest()
	if err != nil {
		t.Fatal(err)
	}
	step := math.Pow(1e8, 0.01)
	if steep.LR < 1e-3/step/step || steep.LR > 1e-3*step {
		t.Errorf("steep suggests %v, want within a step of 1e-3", steep.LR)
	}
}

func TestValleyIsTwoThirdsDownTheFall(t *testing.T) {
	// Flat to 1e-5, falling linearly in log(lr) to 1e-2, then rising.
	r := curve(func(lr float64) float64 {
		x := math.Log10(lr)
		switch {
		case x < -5:
			return 1
		case x < -2:
			return 1 - 0.8*(x+5)/3
		}
		return 0.2 + (x + 2)
	})
	valley, _, err := r.Suggest()
	if err != nil {
		t.Fatal(err)
	}
	// The fall spans log10 -5 to -2; fastai's index is start + len/3 + len/6, half way.
	if x := math.Log10(valley.LR); x < -3.8 || x > -3.2 {
		t.Errorf("valley suggests %v (log10 %.2f), want about 10^-3.5, half way down the fall", valley.LR, x)
	}
}

func TestTooShortASweep(t *testing.T) {
	r := NewRecorder(Defaults())
	r.Add(1e-7, 1)
	r.Add(1e-6, 10)
	if _, _, err := r.Suggest(); err == nil {
		t.Error("suggested a rate from two points")
	}
}

func TestPlot(t *testing.T) {
	r := curve(func(lr float64) float64 { return 1 - math.Tanh(math.Log(lr/1e-3)) })
	v, s, _ := r.Suggest()
	path := filepath.Join(t.TempDir(), "lr-find.png")
	if err := Plot(path, "test", r, v, s); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("lr-find.png: %v", err)
	}
	// The mode os.Create gives a new file there (0666 less the umask), as every other
	// file the toolkit writes; os.CreateTemp's 0600 would survive the rename.
	probe := filepath.Join(filepath.Dir(path), "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	want, _ := os.Stat(probe)
	if st.Mode().Perm() != want.Mode().Perm() {
		t.Errorf("lr-find.png has mode %04o, want %04o as os.Create gives", st.Mode().Perm(), want.Mode().Perm())
	}
	// The legend lies beside the curve, not on it.
	_, rects, err := draw2("test", r, []Suggestion{v, s})
	if err != nil {
		t.Fatal(err)
	}
	data, legend := rects[0], rects[1]
	if legend.Size().X <= 0 || legend.Min.X < data.Max.X && data.Min.X < legend.Max.X && legend.Min.Y < data.Max.Y && data.Min.Y < legend.Max.Y {
		t.Errorf("the legend %+v lies on the data area %+v", legend, data)
	}
}

// TestValleyOfAShortStretch checks a curve whose longest falling stretch is its first
// two points (fastai's valley indexes one before the stretch, -1 here): the suggestion
// is the stretch's first point, not a panic.
func TestValleyOfAShortStretch(t *testing.T) {
	v := Valley([]float64{1e-3, 1e-2, 1e-1}, []float64{1.0, 0.5, 2.0})
	if v.LR != 1e-3 || v.Loss != 1.0 {
		t.Errorf("valley %+v, want the first point", v)
	}
}
