package extract

import (
	"errors"
	"fmt"
	"slices"

	"toolkit/backend"
	"toolkit/dataset"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// Extractor is a base model ready to compute features.
type Extractor struct {
	// Name is what the extractor was made from, as the command line names it: the model
	// file, or the recipe.
	Name string
	// Preprocess turns an image into the base's input.
	Preprocess dataset.Preprocess
	// Output is the tensor whose values are the features, Shape one image's features'
	// shape (the output's without its batch dimension).
	Output string
	Shape  []int
	// Notes say what Load had to do or assume.
	Notes []string

	model    *backend.Model
	programs map[int]*backend.Program
}

// Load reads a model file for extraction: a base, whose output is the features, or a
// full classifier, whose head is cut off (onnx.FindHead: the features are what its
// head's pooling reads). The preprocessing is the model's metadata's (toolkit.preprocess,
// which toolkit finetune stores), else PyTorch's ImageNet normalisation (mode torch) at
// the input's size, with a note saying so.
func Load(path string) (*Extractor, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return nil, err
	}
	meta, err := modelmeta.Get(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var notes []string
	if !onnx.IsHeadless(m) {
		h, err := onnx.FindHead(m)
		if err != nil && !errors.Is(err, onnx.ErrHeadless) {
			return nil, fmt.Errorf("%s: %w; cut the model with toolkit import %s --cut-at NODE -o base.onnx, or extract with its recipe (-c)", path, err, path)
		}
		if err == nil {
			if m, err = onnx.Cut(m, h.Cut); err != nil {
				return nil, fmt.Errorf("%s: cutting its head off at %q: %w", path, h.Cut, err)
			}
			notes = append(notes, fmt.Sprintf("the model's classifier is cut off: the features are %q, what its head reads", h.Cut))
		}
	}
	var pre dataset.Preprocess
	if meta.Preprocess != nil {
		pre = *meta.Preprocess
	} else {
		ins := m.Graph.RealInputs()
		if len(ins) != 1 || len(ins[0].Shape) != 4 {
			return nil, fmt.Errorf("%s: want one image input [N C H W], the model has %d inputs", path, len(ins))
		}
		var size [3]int
		for i, d := range ins[0].Shape[1:] {
			size[i] = int(d.Value)
		}
		if size[0] <= 0 || size[1] <= 0 || size[2] <= 0 {
			return nil, fmt.Errorf("%s: no %s metadata and the input %q has open dimensions: the input size is unknown; extract with the recipe (-c), whose model.input gives it",
				path, modelmeta.Preprocess, ins[0].Name)
		}
		pre = dataset.Preprocess{Mode: dataset.ModeTorch, Channels: size[0], Height: size[1], Width: size[2]}
		notes = append(notes, fmt.Sprintf("the model has no preprocessing metadata (%s): using mode torch (ImageNet mean and std) at %dx%d",
			modelmeta.Preprocess, size[2], size[1]))
	}
	e, err := New(path, m, pre)
	if err != nil {
		return nil, err
	}
	e.Notes = append(notes, e.Notes...)
	return e, nil
}

// New makes an extractor of the base m, whose first output is the features, with the
// preprocessing pre; name names it in messages and in the parts of a sharded extraction.
func New(name string, m *onnx.Model, pre dataset.Preprocess) (*Extractor, error) {
	if err := pre.Validate(); err != nil {
		return nil, fmt.Errorf("%s: preprocessing: %w", name, err)
	}
	bm, err := backend.NewModel(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ins := bm.Inputs()
	if len(ins) != 1 || len(ins[0].Shape) != 4 {
		return nil, fmt.Errorf("%s: want one image input [N C H W], the model has %d inputs %v", name, len(ins), ins)
	}
	e := &Extractor{Name: name, Preprocess: pre, model: bm, programs: map[int]*backend.Program{}}
	p, err := e.program(1)
	if err != nil {
		return nil, err
	}
	if p.NumOutputs() == 0 {
		return nil, fmt.Errorf("%s computes no float output", name)
	}
	e.Output, e.Shape = p.OutputNames()[0], slices.Clone(p.OutputShape(0)[1:])
	return e, nil
}

// program is the base's program for batches of n images.
func (e *Extractor) program(n int) (*backend.Program, error) {
	if p, ok := e.programs[n]; ok {
		return p, nil
	}
	pre := e.Preprocess
	in := e.model.Inputs()[0].Name
	p, err := e.model.Program(backend.Options{InputShapes: map[string][]int{in: {n, pre.Channels, pre.Height, pre.Width}}})
	if err != nil {
		return nil, fmt.Errorf("%s at %dx%dx%d: %w", e.Name, pre.Channels, pre.Height, pre.Width, err)
	}
	e.programs[n] = p
	return p, nil
}

// Size is the number of values of one image's features.
func (e *Extractor) Size() int {
	n := 1
	for _, d := range e.Shape {
		n *= d
	}
	return n
}

// Features runs n preprocessed images (n x C x H x W values) and returns their n x
// Size() features (valid until the next call).
func (e *Extractor) Features(images []float32, n int) ([]float32, error) {
	p, err := e.program(n)
	if err != nil {
		return nil, err
	}
	if err := p.Run([][]float32{images[:n*e.Preprocess.Size()]}, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	return p.Output(0)[:n*e.Size()], nil
}
