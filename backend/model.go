package backend

import (
	"fmt"
	"slices"
	"sync"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// Model is an ONNX model ready to be built into programs: its float initializers are
// the parameters, held as float32 and keyed by their ONNX names.
type Model struct {
	ir        *onnx.Model
	params    map[string][]float32
	shapes    map[string][]int
	order     []string
	trainable map[string]bool
	// paramUses counts the nodes that read each parameter.
	paramUses map[string]int
	// grads are the parameters' gradient buffers, shared by the training programs.
	gradMu sync.Mutex
	grads  map[string][]float32
	// arena holds the planned values of the model's programs, which run one at a time.
	arena *arena[float32]
	// filters are the convolutions' caches of transformed frozen weights, by weight,
	// shared by the programs.
	filterMu sync.Mutex
	filters  map[string]*kernels.FilterCache
}

// filterCache returns the model's cache of the transformed filters of a weight. A
// weight some training program trains changes at every step: its cache is disabled
// (trainedWeight).
func (m *Model) filterCache(weight string) *kernels.FilterCache {
	m.filterMu.Lock()
	defer m.filterMu.Unlock()
	if m.filters == nil {
		m.filters = map[string]*kernels.FilterCache{}
	}
	c, ok := m.filters[weight]
	if !ok {
		c = new(kernels.FilterCache)
		m.filters[weight] = c
	}
	return c
}

// trainedWeights disables the filter caches of weights a training program trains.
func (m *Model) trainedWeights(names []string) {
	for _, n := range names {
		m.filterCache(n).Disable()
	}
}

// NewModel checks that the backend supports every node of m and takes its float
// initializers as parameters. The parameters are copied: m is not changed by training.
func NewModel(m *onnx.Model) (*Model, error) {
	return newModel(m, false)
}

// AdoptModel is NewModel without the copy, for a model that is the caller's alone (a
// clone, a model just read): the values of the large float initializers (over adoptMin
// elements) become the parameters, and m's initializers are left without them (Floats
// nil), so the weights are held once. Small ones, which shape inference may read as
// constants (a Dropout ratio, say), are copied as NewModel does. Export gives the model
// with the current values.
func AdoptModel(m *onnx.Model) (*Model, error) {
	return newModel(m, true)
}

// adoptMin is the size from which AdoptModel takes an initializer's values over (shape
// inference folds nothing computed from a float initializer, so it never needs them).
const adoptMin = 1 << 16

func newModel(m *onnx.Model, adopt bool) (*Model, error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("model has no graph")
	}
	if err := CheckSupported(m); err != nil {
		return nil, err
	}
	bm := &Model{
		ir:        m,
		params:    map[string][]float32{},
		shapes:    map[string][]int{},
		trainable: map[string]bool{},
		paramUses: map[string]int{},
		grads:     map[string][]float32{},
		arena:     newArena[float32](),
	}
	for _, t := range m.Graph.Initializers {
		if t.DataType != onnx.Float {
			continue
		}
		if adopt && len(t.Floats) > adoptMin {
			bm.params[t.Name] = t.Floats
			t.Floats = nil
		} else {
			bm.params[t.Name] = append([]float32(nil), t.Floats...)
		}
		bm.shapes[t.Name] = intsOf(t.Dims)
		bm.order = append(bm.order, t.Name)
	}
	for _, n := range m.Graph.Nodes {
		for _, in := range n.Inputs {
			if _, ok := bm.params[in]; ok {
				bm.paramUses[in]++
			}
		}
		for _, i := range schemaOf(n).DifferentiableInputs(n) {
			if _, ok := bm.params[n.Inputs[i]]; ok {
				bm.trainable[n.Inputs[i]] = true
			}
		}
	}
	return bm, nil
}

// IR returns the ONNX model the backend model was made from, with its original
// initializer values (none for the float ones under AdoptModel). Use Export for the
// trained values.
func (m *Model) IR() *onnx.Model { return m.ir }

// ParamNames returns the names of all float parameters in the graph's initializer order.
func (m *Model) ParamNames() []string { return append([]string(nil), m.order...) }

// TrainableNames returns the parameters a gradient can reach (weights, biases,
// BatchNormalization scales and shifts; not running statistics), in initializer order.
func (m *Model) TrainableNames() []string {
	var names []string
	for _, n := range m.order {
		if m.trainable[n] {
			names = append(names, n)
		}
	}
	return names
}

// UpdatesRunningStatistics reports whether a training program's forward pass changes
// parameters of the model in place: the running mean and variance of its
// BatchNormalization layers.
func (m *Model) UpdatesRunningStatistics() bool {
	return slices.ContainsFunc(m.ir.Graph.Nodes, isBatchNorm)
}

func isBatchNorm(n *onnx.Node) bool {
	return n.OpType == "BatchNormalization" && (n.Domain == "" || n.Domain == "ai.onnx")
}

// BatchNormParams returns the scales and shifts of the model's BatchNormalization
// layers (not their running statistics), in initializer order: what fastai's train_bn
// keeps training in frozen layer groups.
func (m *Model) BatchNormParams() []string {
	bn := map[string]bool{}
	for _, n := range m.ir.Graph.Nodes {
		if isBatchNorm(n) {
			for _, i := range []int{1, 2} {
				if i < len(n.Inputs) {
					bn[n.Inputs[i]] = true
				}
			}
		}
	}
	var names []string
	for _, name := range m.order {
		if bn[name] && m.trainable[name] {
			names = append(names, name)
		}
	}
	return names
}

// Param returns the live values of a parameter (nil if there is none of that name).
// Writing to the slice changes the model.
func (m *Model) Param(name string) []float32 { return m.params[name] }

// ParamShape returns a parameter's shape.
func (m *Model) ParamShape(name string) []int { return append([]int(nil), m.shapes[name]...) }

// NumParams returns the number of float parameter elements.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += len(p)
	}
	return n
}

// Input describes a real (non-initializer) input of the model.
type Input struct {
	Name string
	// Shape has -1 for a dimension the file leaves open (the batch, usually).
	Shape []int
}

// Inputs returns the model's real inputs.
func (m *Model) Inputs() []Input {
	var ins []Input
	for _, vi := range m.ir.Graph.RealInputs() {
		in := Input{Name: vi.Name}
		for _, d := range vi.Shape {
			if d.Value > 0 {
				in.Shape = append(in.Shape, int(d.Value))
			} else {
				in.Shape = append(in.Shape, -1)
			}
		}
		ins = append(ins, in)
	}
	return ins
}

// Export returns a copy of the ONNX model whose initializers hold the current
// parameter values. The rest of the graph is shared with the model m was made from.
func (m *Model) Export() *onnx.Model {
	return m.export(true)
}

// ExportShared is Export with the initializers holding the parameters themselves, not
// copies: for writing the model out at once (onnx.Write), without a second copy of the
// weights in memory. The result changes with the parameters.
func (m *Model) ExportShared() *onnx.Model {
	return m.export(false)
}

func (m *Model) export(copyValues bool) *onnx.Model {
	out := *m.ir
	g := *m.ir.Graph
	g.Initializers = make([]*onnx.Tensor, len(m.ir.Graph.Initializers))
	for i, t := range m.ir.Graph.Initializers {
		if p, ok := m.params[t.Name]; ok {
			c := *t
			c.Floats = p
			if copyValues {
				c.Floats = append([]float32(nil), p...)
			}
			t = &c
		}
		g.Initializers[i] = t
	}
	out.Graph = &g
	return &out
}

func intsOf(dims []int64) []int {
	out := make([]int, len(dims))
	for i, d := range dims {
		out[i] = int(d)
	}
	return out
}

func int64sOf(dims []int) []int64 {
	out := make([]int64, len(dims))
	for i, d := range dims {
		out[i] = int64(d)
	}
	return out
}

// Program is a model built for one set of input shapes, in inference or training mode,
// with gradients for the parameters it trains. Programs are not safe for concurrent use,
// and the programs of one model share the buffers of the parameters' gradients and the
// arena of their activations: run them one at a time (a parameter's gradient and an
// output are valid until the next Run of any of them).
type Program struct {
	p *program[float32]
}

// Program builds the model into a program. Build one per batch size: a last partial
// batch needs a program of its own.
func (m *Model) Program(opts Options) (*Program, error) {
	p, err := newProgram(m, opts, m.params)
	if err != nil {
		return nil, err
	}
	return &Program{p: p}, nil
}

// Run computes the outputs for the inputs, given in the order of Model.Inputs. target
// is the loss target (nil for a program without a loss); with a loss, Run also computes
// the loss and the gradients.
func (p *Program) Run(inputs [][]float32, target []float32) error {
	return p.p.run(inputs, target)
}

// Output returns the values of output i after Run. The slice is valid until the next Run
// of a program of the model (the outputs are in the arena the programs share).
func (p *Program) Output(i int) []float32 { return p.p.output(i) }

// OutputShape returns the shape of output i.
func (p *Program) OutputShape(i int) []int { return []int(p.p.outputs[i].Shape()) }

// NumOutputs returns the number of float outputs the program computes.
func (p *Program) NumOutputs() int { return len(p.p.outputs) }

// OutputNames returns the ONNX names of the outputs.
func (p *Program) OutputNames() []string { return append([]string(nil), p.p.outNames...) }

// Loss returns the loss computed by the last Run.
func (p *Program) Loss() float64 { return p.p.lossValue() }

// Grad returns the gradient of a trained parameter (or of an input, with InputGrads)
// computed by the last Run, or nil. The slice is valid until the next Run of a program
// of the model.
func (p *Program) Grad(name string) []float32 { return p.p.grad(name) }

// Memory is what a program holds for its runs, in bytes.
type Memory struct {
	// Arena is the program's planned activations and gradients. The model's programs
	// share one arena, as large as the largest of theirs (Model.ArenaBytes).
	Arena int64
	// Own is the program's own buffers: the loss and the gradients of inputs and of
	// parameters that several nodes read.
	Own int64
}

// Memory returns what the program holds for its runs beyond the model's parameters and
// the buffers of their gradients.
func (p *Program) Memory() Memory { return p.p.memory() }

// ArenaBytes returns the size of the arena the model's float32 programs share: the
// largest of their plans.
func (m *Model) ArenaBytes() int64 { return int64(m.arena.want) * 4 }

// GradBytes returns the size of the parameters' gradient buffers the model's programs
// have made (one per trained parameter, shared by the programs).
func (m *Model) GradBytes() int64 {
	m.gradMu.Lock()
	defer m.gradMu.Unlock()
	n := 0
	for _, g := range m.grads {
		n += len(g)
	}
	return int64(n) * 4
}

// Probe sets fn to be told, during the following runs, the values of each of the
// program's probes (Options.Probes) as soon as a run computes them; v is valid only
// during the call. nil stops it.
func (p *Program) Probe(fn func(name string, shape []int, v []float32)) { p.p.probe = fn }

// OnGradient has fn told each parameter's name as soon as a run of the program has
// finished its gradient, on the goroutine that runs the program, while the rest of the
// backward pass goes on: Grad(name) then holds its final values, which stay until the
// next run. A data-parallel step starts the sum of a layer group's gradients over the
// ranks as soon as the group is complete. A gradient finished by a step that runs
// beside the following ones is told when that step has ended; a parameter the loss
// does not depend on, at the start of the run. nil: not told.
func (p *Program) OnGradient(fn func(name string)) { p.p.gradDone = fn }

// Trace sets fn to be told the time of every step of the following runs (nil stops
// it): where a run's time goes, op by op.
func (p *Program) Trace(fn func(StepTime)) { p.p.trace = fn }

// Reseed restarts the dropout generator: a training loop reseeds from (run seed, step)
// so that a resumed run draws the same masks.
func (p *Program) Reseed(seed uint64) { p.p.rngSrc.Seed(seed, 0x9e3779b97f4a7c15) }
