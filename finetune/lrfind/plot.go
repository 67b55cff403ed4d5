package lrfind

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"toolkit/internal/atomicfile"
)

// Plot draws the smoothed loss against the rate (log scale) into a PNG at path, the
// last 5 points left out as fastai's plot does, with the suggestions marked and named
// in a legend beside the plot (never on the curve); it writes through a temporary file
// and gives the file the mode os.Create would.
func Plot(path, title string, r *Recorder, marks ...Suggestion) error {
	img, _, err := draw2(title, r, marks)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(f *os.File) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(f)
		return err
	})
}

// legendWidth is the width of the legend's column beside the plot.
const legendWidth = 1.4 * vg.Inch

// draw2 draws the plot and returns the image, the data area and the legend's rectangle.
func draw2(title string, r *Recorder, marks []Suggestion) (*vgimg.Canvas, [2]vg.Rectangle, error) {
	var rects [2]vg.Rectangle
	n := len(r.LRs)
	if n > 10 {
		n -= 5
	}
	if n < 2 {
		return nil, rects, fmt.Errorf("lr-find plot: %d points", n)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "learning rate"
	p.Y.Label.Text = "loss (smoothed)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decades{}
	xys := make(plotter.XYs, n)
	for i := 0; i < n; i++ {
		xys[i] = plotter.XY{X: r.LRs[i], Y: r.Losses[i]}
	}
	line, err := plotter.NewLine(xys)
	if err != nil {
		return nil, rects, err
	}
	line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	p.Add(line)
	legend := plot.NewLegend()
	legend.Add("smoothed loss", line)
	colors := []color.Color{color.RGBA{R: 214, G: 39, B: 40, A: 255}, color.RGBA{R: 44, G: 160, B: 44, A: 255}}
	for i, s := range marks {
		pts, err := plotter.NewScatter(plotter.XYs{{X: s.LR, Y: s.Loss}})
		if err != nil {
			return nil, rects, err
		}
		pts.Color = colors[i%len(colors)]
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(4)
		p.Add(pts)
		legend.Add(fmt.Sprintf("%s %.2g", s.Name, s.LR), pts)
	}
	const w, h = 6*vg.Inch + legendWidth, 4 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	area := draw.Crop(dc, 0, -legendWidth, 0, 0)
	p.Draw(area)
	rects[0] = p.DataCanvas(area).Rectangle
	column := draw.Crop(dc, w-legendWidth+vg.Millimeter*2, 0, 0, -(h - rects[0].Max.Y))
	legend.Top, legend.Left = true, true
	legend.Draw(column)
	rects[1] = legend.Rectangle(column)
	return img, rects, nil
}

// decades marks every power of ten, labelled 1e-05 and so on.
type decades struct{}

func (decades) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		v := math.Pow(10, e)
		if v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.0e", v)})
		}
	}
	return ticks
}
