package lrfind

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot draws the smoothed loss against the rate (log scale) into a PNG at path, the
// last 5 points left out as fastai's plot does, with the suggestions marked; it writes
// through a temporary file.
func Plot(path, title string, r *Recorder, marks ...Suggestion) error {
	n := len(r.LRs)
	if n > 10 {
		n -= 5
	}
	if n < 2 {
		return fmt.Errorf("lr-find plot: %d points", n)
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
		return err
	}
	line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	p.Add(line)
	colors := []color.Color{color.RGBA{R: 214, G: 39, B: 40, A: 255}, color.RGBA{R: 44, G: 160, B: 44, A: 255}}
	for i, s := range marks {
		pts, err := plotter.NewScatter(plotter.XYs{{X: s.LR, Y: s.Loss}})
		if err != nil {
			return err
		}
		pts.Color = colors[i%len(colors)]
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(4)
		p.Add(pts)
		p.Legend.Add(fmt.Sprintf("%s %.2g", s.Name, s.LR), pts)
	}
	p.Legend.Top = true
	img := vgimg.New(6*vg.Inch, 4*vg.Inch)
	p.Draw(draw.New(img))
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
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
