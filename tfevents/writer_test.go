package tfevents

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"toolkit/tfevents/tfeventstest"
)

// Scalars written by the Writer come back, every CRC right, through TensorBoard's own
// protocol buffers: the file version first, then each scalar's step, tag, value (as a
// float32, TensorBoard's simple_value) and wall time.
func TestScalarsReadBack(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(1_700_000_000, 250_000_000)
	var times []time.Time // every time the writer asked for
	now := func() time.Time {
		clock = clock.Add(1500 * time.Millisecond)
		times = append(times, clock)
		return clock
	}
	w, err := create(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	type scalar struct {
		tag   string
		step  int64
		value float64
	}
	want := []scalar{
		{"train/loss", 0, 2.302585092994046},
		{"train/loss", 1, 1.5},
		{"val/accuracy", 1, 0.875},
		{"lr/block1", 7, 3.0e-5},
		{"lr/head", 1 << 40, -1e-3},
		{"grad_norm/Late group", 12, math.Inf(1)},
		{"étape/perte", 13, 0},
	}
	for _, s := range want {
		if err := w.Scalar(s.tag, s.step, s.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(w.Path()), "events.out.tfevents.1700000001.") {
		t.Errorf("file name %s", w.Path())
	}
	evs := tfeventstest.Read(t, w.Path())
	if len(evs) != len(want)+1 {
		t.Fatalf("%d events, want %d", len(evs), len(want)+1)
	}
	// times[0] named the file; each event then asked once.
	wallOf := func(i int) float64 { return float64(times[1+i].UnixNano()) / 1e9 }
	if evs[0].What != "file_version" || evs[0].FileVersion != FileVersion || math.Abs(evs[0].WallTime-wallOf(0)) > 1e-6 {
		t.Errorf("first event %+v, want the file version at %v", evs[0], wallOf(0))
	}
	for i, s := range want {
		ev := evs[i+1]
		if ev.What != "summary" || ev.Step != s.step || math.Abs(ev.WallTime-wallOf(i+1)) > 1e-6 || len(ev.Values) != 1 {
			t.Errorf("event %d: %+v, want step %d at %v", i+1, ev, s.step, wallOf(i+1))
			continue
		}
		v := ev.Values[0]
		got, err := strconv.ParseFloat(v.SimpleValue, 64)
		if v.Tag != s.tag || v.Kind != "simple_value" || err != nil || got != float64(float32(s.value)) {
			t.Errorf("event %d: %+v, want %s = %v", i+1, v, s.tag, float32(s.value))
		}
	}
	// A second writer in the same folder and second gets a file of its own.
	clock = times[0].Add(-1500 * time.Millisecond)
	w2, err := create(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Path() == w.Path() {
		t.Fatalf("the second writer reuses %s", w.Path())
	}
}
