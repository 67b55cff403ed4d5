package finetune

import (
	"os"
	"testing"

	"toolkit/internal/testref"
)

func TestOpenIDXData(t *testing.T) {
	images := "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
	if _, err := os.Stat(images); err != nil {
		testref.Missing(t, "Fashion-MNIST (Debian dataset-fashion-mnist): %v", err)
	}
	c := Default().Data
	c.Format, c.Train, c.ValSplit = "idx", images, 0.1
	c.Preprocess = PreprocessConfig{Mode: "torch", Mean: []float64{0.286}, Std: []float64{0.353}}
	d, err := OpenData(c, InputConfig{Channels: 3, Height: 32, Width: 32}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Classes) != 10 || d.Train.Len() != 9000 || d.Val.Len() != 1000 {
		t.Errorf("classes %v, %d training and %d validation images; want 10 classes, 9000 and 1000", d.Classes, d.Train.Len(), d.Val.Len())
	}
	c.ValSplit, c.Val = 0.1, images
	if _, err := OpenData(c, InputConfig{Channels: 3, Height: 32, Width: 32}, 1); err == nil {
		t.Error("val and val_split together were accepted")
	}
}
