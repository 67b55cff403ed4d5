package finetune

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotCurves draws the training and validation loss and accuracy (in percent, as the
// console prints it) per epoch into a PNG at path, with a dashed line at each stage
// boundary and the legend in a column of its own beside the plots, never on the data.
func PlotCurves(path string, history []EpochMetrics) error {
	if len(history) == 0 {
		return nil
	}
	img, _, err := drawCurves(history)
	if err != nil {
		return err
	}
	return writeFileWith(path, func(f *os.File) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		return err
	})
}

// curvesLegendWidth is the width of the legend's column beside the plots.
const curvesLegendWidth = 1.3 * vg.Inch

// drawCurves draws the curves and returns the image and where things went: the data
// areas of the two plots, then the legend's rectangle.
func drawCurves(history []EpochMetrics) (*vgimg.Canvas, []vg.Rectangle, error) {
	legend := plot.NewLegend()
	loss, err := curvePlot("Loss", "cross-entropy", history, &legend, func(m EpochMetrics) (float64, *float64) { return m.TrainLoss, m.ValLoss })
	if err != nil {
		return nil, nil, err
	}
	percent := func(v *float64) *float64 {
		if v == nil {
			return nil
		}
		p := 100 * *v
		return &p
	}
	acc, err := curvePlot("Accuracy", "%", history, nil, func(m EpochMetrics) (float64, *float64) { return 100 * m.TrainAcc, percent(m.ValAcc) })
	if err != nil {
		return nil, nil, err
	}
	const w, h = 10*vg.Inch + curvesLegendWidth, 4 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	plots := draw.Crop(dc, 0, -curvesLegendWidth, 0, 0)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{{loss, acc}}, tiles, plots)
	loss.Draw(canvases[0][0])
	acc.Draw(canvases[0][1])
	areas := []vg.Rectangle{loss.DataCanvas(canvases[0][0]).Rectangle, acc.DataCanvas(canvases[0][1]).Rectangle}
	// The legend's column, its top level with the top of the data.
	column := draw.Crop(dc, w-curvesLegendWidth+vg.Millimeter*2, 0, 0, -(h - areas[0].Max.Y))
	legend.Top, legend.Left = true, true
	legend.Draw(column)
	return img, append(areas, legend.Rectangle(column)), nil
}

// curvePlot makes one plot of the curves, adding their entries to legend when it is
// not nil.
func curvePlot(title, unit string, history []EpochMetrics, legend *plot.Legend, get func(EpochMetrics) (float64, *float64)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = unit
	var train, val plotter.XYs
	lo, hi := 0.0, 0.0
	for i, m := range history {
		tv, vv := get(m)
		train = append(train, plotter.XY{X: float64(m.Epoch), Y: tv})
		if i == 0 {
			lo, hi = tv, tv
		}
		lo, hi = min(lo, tv), max(hi, tv)
		if vv != nil {
			val = append(val, plotter.XY{X: float64(m.Epoch), Y: *vv})
			lo, hi = min(lo, *vv), max(hi, *vv)
		}
	}
	add := func(name string, xys plotter.XYs, c color.Color) error {
		if len(xys) == 0 {
			return nil
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("curves: %w", err)
		}
		l.Color, s.Color = c, c
		p.Add(l, s)
		if legend != nil {
			legend.Add(name, l, s)
		}
		return nil
	}
	if err := add("train", train, color.RGBA{R: 31, G: 119, B: 180, A: 255}); err != nil {
		return nil, err
	}
	if err := add("validation", val, color.RGBA{R: 255, G: 127, B: 14, A: 255}); err != nil {
		return nil, err
	}
	if hi == lo {
		hi = lo + 1
	}
	for i := 1; i < len(history); i++ {
		if history[i].StageIndex != history[i-1].StageIndex {
			x := float64(history[i-1].Epoch) + 0.5
			line, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
			if err != nil {
				return nil, fmt.Errorf("curves: %w", err)
			}
			line.Color = color.Gray{Y: 128}
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(line)
			label, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: hi}}, Labels: []string{" " + history[i].Stage}})
			if err != nil {
				return nil, fmt.Errorf("curves: %w", err)
			}
			p.Add(label)
		}
	}
	return p, nil
}
