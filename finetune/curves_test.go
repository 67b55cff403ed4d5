package finetune

import (
	"path/filepath"
	"testing"

	"gonum.org/v1/plot/vg"
)

// TestCurvesLegendBesideTheData draws the curves of a run whose points fill the plots'
// corners (where a legend inside the plot would sit) and checks that the legend lies
// outside both data areas and inside the image.
func TestCurvesLegendBesideTheData(t *testing.T) {
	var history []EpochMetrics
	for i := 1; i <= 8; i++ {
		vl, va := 2.0-0.2*float64(i), 0.1*float64(i)
		history = append(history, EpochMetrics{Epoch: i, StageEpoch: i, Stage: "head", StageIndex: (i - 1) / 4,
			TrainLoss: 2.2 - 0.25*float64(i), ValLoss: &vl, TrainAcc: 0.11 * float64(i), ValAcc: &va})
	}
	img, rects, err := drawCurves(history)
	if err != nil {
		t.Fatal(err)
	}
	legend := rects[2]
	if legend.Size().X <= 0 || legend.Size().Y <= 0 {
		t.Fatalf("the legend has no extent: %+v", legend)
	}
	for i, area := range rects[:2] {
		if overlap(legend, area) {
			t.Errorf("the legend %+v lies on the data area of plot %d %+v", legend, i, area)
		}
	}
	w, h := img.Size()
	if legend.Min.X < 0 || legend.Max.X > w || legend.Min.Y < 0 || legend.Max.Y > h {
		t.Errorf("the legend %+v is outside the image %vx%v", legend, w, h)
	}
	if err := PlotCurves(filepath.Join(t.TempDir(), "curves.png"), history); err != nil {
		t.Fatal(err)
	}
}

func overlap(a, b vg.Rectangle) bool {
	return a.Min.X < b.Max.X && b.Min.X < a.Max.X && a.Min.Y < b.Max.Y && b.Min.Y < a.Max.Y
}
