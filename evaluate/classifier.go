package evaluate

import (
	"fmt"
	"image"
	"math"
	"os"
	"strconv"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/internal/multilabel"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// Classifier is a model ready to classify images.
type Classifier struct {
	Path string
	// Classes are the class names in logit order; without class metadata, the indices
	// ("0", "1", ...) and HasNames is false.
	Classes  []string
	HasNames bool
	// Preprocess turns an image into the model's input.
	Preprocess dataset.Preprocess
	// MultiLabel says that the model is a multi-label one (metadata toolkit.task):
	// each output's sigmoid is a label's probability, and Thresholds the probability
	// from which each label is predicted (metadata toolkit.thresholds, else 0.5).
	MultiLabel bool
	Thresholds []float64
	// Notes say what Load had to assume.
	Notes []string

	model    *backend.Model
	programs map[int]*backend.Program
}

// Load reads a classifier from an ONNX file.
func Load(path string) (*Classifier, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return nil, err
	}
	bm, err := backend.NewModel(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ins := bm.Inputs()
	if len(ins) != 1 || len(ins[0].Shape) != 4 {
		return nil, fmt.Errorf("%s: want one image input [N C H W], the model has %d inputs %v", path, len(ins), ins)
	}
	c := &Classifier{Path: path, model: bm, programs: map[int]*backend.Program{}}
	meta, err := modelmeta.Get(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	shape := ins[0].Shape
	if meta.Preprocess != nil {
		c.Preprocess = *meta.Preprocess
	} else {
		if shape[1] <= 0 || shape[2] <= 0 || shape[3] <= 0 {
			return nil, fmt.Errorf("%s: no %s metadata and the input %q has open dimensions %v: the input size is unknown",
				path, modelmeta.Preprocess, ins[0].Name, shape)
		}
		c.Preprocess = dataset.Preprocess{Mode: dataset.ModeTorch, Channels: shape[1], Height: shape[2], Width: shape[3]}
		c.Notes = append(c.Notes, fmt.Sprintf("the model has no preprocessing metadata (%s): using mode torch (ImageNet mean and std) at %dx%d",
			modelmeta.Preprocess, shape[3], shape[2]))
	}
	if err := c.Preprocess.Validate(); err != nil {
		return nil, fmt.Errorf("%s: metadata %s: %w", path, modelmeta.Preprocess, err)
	}
	prog, err := c.program(1)
	if err != nil {
		return nil, err
	}
	out := prog.OutputShape(0)
	if len(out) != 2 {
		return nil, fmt.Errorf("%s: the output %q has shape %v; a classifier gives [N classes]", path, prog.OutputNames()[0], out)
	}
	k := out[1]
	if meta.Classes != nil {
		c.Classes = meta.Classes
		if len(c.Classes) != k {
			return nil, fmt.Errorf("%s: metadata %s names %d classes, the model outputs %d", path, modelmeta.Classes, len(c.Classes), k)
		}
		c.HasNames = true
	} else {
		for i := 0; i < k; i++ {
			c.Classes = append(c.Classes, strconv.Itoa(i))
		}
		c.Notes = append(c.Notes, fmt.Sprintf("the model has no class names (metadata %s): classes are shown as indices 0-%d", modelmeta.Classes, k-1))
	}
	if c.MultiLabel = meta.Task == modelmeta.TaskMultilabel; c.MultiLabel {
		c.Thresholds = meta.Thresholds
		if c.Thresholds == nil {
			c.Thresholds = multilabel.Halves(k)
			c.Notes = append(c.Notes, fmt.Sprintf("the multi-label model has no thresholds (metadata %s): each label is predicted from 0.5", modelmeta.Thresholds))
		}
		if len(c.Thresholds) != k {
			return nil, fmt.Errorf("%s: metadata %s holds %d thresholds, the model outputs %d", path, modelmeta.Thresholds, len(c.Thresholds), k)
		}
	}
	return c, nil
}

// Probabilities returns one image's probabilities from its logits: their softmax, or
// for a multi-label model each one's sigmoid.
func (c *Classifier) Probabilities(logits []float32) []float64 {
	return probabilities(logits, c.MultiLabel)
}

// probabilities is the softmax of logits, or with multi each one's sigmoid.
func probabilities(logits []float32, multi bool) []float64 {
	if !multi {
		return Probabilities(logits)
	}
	out := make([]float64, len(logits))
	for i, z := range logits {
		out[i] = 1 / (1 + math.Exp(-float64(z)))
	}
	return out
}

func (c *Classifier) program(batch int) (*backend.Program, error) {
	if p, ok := c.programs[batch]; ok {
		return p, nil
	}
	// The classifier's model is its own and never trained: its programs keep what the
	// kernels derive from the weights without checking them at every run.
	p, err := c.model.Program(backend.Options{Batch: batch, ConstantWeights: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	c.programs[batch] = p
	return p, nil
}

// Logits runs n preprocessed images (n x C x H x W values) and returns n x classes
// logits (valid until the next call).
func (c *Classifier) Logits(images []float32, n int) ([]float32, error) {
	p, err := c.program(n)
	if err != nil {
		return nil, err
	}
	if err := p.Run([][]float32{images[:n*c.Preprocess.Size()]}, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	return p.Output(0)[:n*len(c.Classes)], nil
}

// Probabilities returns the softmax of one image's logits.
func Probabilities(logits []float32) []float64 {
	p := make([]float32, len(logits))
	kernels.SoftmaxForward(1, len(logits), logits, p)
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = float64(v)
	}
	return out
}

// decodeImage reads an image file, saying so plainly when it is not one.
func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an image the toolkit reads (PNG or JPEG): %v", path, err)
	}
	return img, nil
}
