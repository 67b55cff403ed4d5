// Package pairgen makes the multi-label example set (examples/multilabel): each image
// two Fashion-MNIST items from the demo data (data/fmnist-5to9) placed at random on a
// dark square canvas, where they may overlap (the brighter pixel wins), its labels the
// set of their classes (one label when both items are of one class), listed in a CSV
// of file,labels that data.format: csv reads.
package pairgen

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"toolkit/dataset"
)

// Split is one CSV of the set: Images pairs drawn from the image folder Source.
type Split struct {
	Name   string // the CSV's name without .csv, and its images' folder
	Source string // an image folder of 28x28 grey items, one subfolder per class
	Images int
}

// Write writes each split as dir/<name>.csv and its images dir/<name>/NNNNN.png, the
// canvas size x size pixels (at least 28), every draw a function of seed and the split.
func Write(dir string, splits []Split, size int, seed uint64) error {
	if size < 28 {
		return fmt.Errorf("pairgen: size %d; want at least 28 (an item's)", size)
	}
	for si, sp := range splits {
		src, err := dataset.OpenImageFolder(sp.Source, dataset.Options{})
		if err != nil {
			return err
		}
		classes := src.Classes()
		if err := os.MkdirAll(filepath.Join(dir, sp.Name), 0o755); err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(seed, uint64(si)))
		f, err := os.Create(filepath.Join(dir, sp.Name+".csv"))
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		w.Write([]string{"file", "labels"})
		for i := range sp.Images {
			canvas := image.NewGray(image.Rect(0, 0, size, size))
			var labels []string
			for range 2 {
				ix := rng.IntN(src.Len())
				img, err := src.Image(ix)
				if err != nil {
					f.Close()
					return err
				}
				x0, y0 := rng.IntN(size-27), rng.IntN(size-27)
				b := img.Bounds()
				for y := range 28 {
					for x := range 28 {
						g, _, _, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
						v := uint8(g >> 8)
						if p := canvas.GrayAt(x0+x, y0+y).Y; v > p {
							canvas.SetGray(x0+x, y0+y, color.Gray{Y: v})
						}
					}
				}
				if c := classes[src.Label(ix)]; !slices.Contains(labels, c) {
					labels = append(labels, c)
				}
			}
			slices.Sort(labels)
			name := fmt.Sprintf("%s/%05d.png", sp.Name, i)
			out, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				f.Close()
				return err
			}
			err = png.Encode(out, canvas)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				f.Close()
				return err
			}
			w.Write([]string{name, strings.Join(labels, dataset.LabelDelimiter)})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
