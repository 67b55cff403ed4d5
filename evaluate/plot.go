package evaluate

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"toolkit/internal/atomicfile"
)

// confusionGrid is the confusion matrix as a heat-map grid: column j (predicted) at
// x = j, row i (true) at y = -i so that the first class is at the top.
type confusionGrid [][]int

func (g confusionGrid) Dims() (c, r int)   { return len(g), len(g) }
func (g confusionGrid) Z(c, r int) float64 { return float64(g[len(g)-1-r][c]) }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// PlotConfusion draws the report's confusion matrix (rows the true class, columns the
// predicted one, each cell with its count) into a PNG at path, the predicted classes'
// names slanted so that they do not run together, written through a temporary file
// with the mode os.Create would give it.
func PlotConfusion(path string, r *Report) error {
	p, w, h, err := confusionPlot(r)
	if err != nil {
		return err
	}
	img := vgimg.New(w, h)
	p.Draw(draw.New(img))
	return atomicfile.Write(path, func(f *os.File) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		return err
	})
}

// confusionPlot makes the plot of the confusion matrix and the image size it is drawn at.
func confusionPlot(r *Report) (*plot.Plot, vg.Length, vg.Length, error) {
	k := len(r.Classes)
	if k == 0 {
		return nil, 0, 0, fmt.Errorf("confusion plot: no classes")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Confusion matrix (accuracy %.1f%%)", 100*r.Accuracy)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	// Light for few images, dark for many.
	cmap, err := moreland.NewLuminance([]color.Color{color.RGBA{R: 8, G: 48, B: 107, A: 255}, color.RGBA{R: 247, G: 251, B: 255, A: 255}})
	if err != nil {
		return nil, 0, 0, err
	}
	pal := palette.Reverse(cmap)
	hi := 1.0
	for _, row := range r.Confusion {
		for _, n := range row {
			hi = max(hi, float64(n))
		}
	}
	pal.SetMin(0)
	pal.SetMax(hi)
	hm := plotter.NewHeatMap(confusionGrid(r.Confusion), pal.Palette(64))
	hm.Min, hm.Max = 0, hi
	p.Add(hm)
	var xys plotter.XYLabels
	for i, row := range r.Confusion {
		for j, n := range row {
			xys.XYs = append(xys.XYs, plotter.XY{X: float64(j), Y: float64(k - 1 - i)})
			xys.Labels = append(xys.Labels, fmt.Sprint(n))
		}
	}
	labels, err := plotter.NewLabels(xys)
	if err != nil {
		return nil, 0, 0, err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].XAlign, labels.TextStyle[i].YAlign = -0.5, -0.5
		row, col := i/k, i%k
		if float64(r.Confusion[row][col]) > hi/2 {
			labels.TextStyle[i].Color = color.White
		}
	}
	p.Add(labels)
	var xt, yt []plot.Tick
	for i, c := range r.Classes {
		xt = append(xt, plot.Tick{Value: float64(i), Label: c})
		yt = append(yt, plot.Tick{Value: float64(k - 1 - i), Label: c})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(xt), plot.ConstantTicks(yt)
	// The class names under the columns slant, so that long ones do not run together.
	p.X.Tick.Label.Rotation = xLabelAngle
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5
	size := vg.Length(120+40*k) * vg.Millimeter / 4
	return p, size + vg.Inch, size + vg.Inch/2, nil
}

// xLabelAngle is the slant of the class names under the columns (counter-clockwise).
const xLabelAngle = math.Pi / 4
