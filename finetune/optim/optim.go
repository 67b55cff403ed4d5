package optim

import (
	"fmt"
	"math"
)

// Param is one parameter tensor, flattened: its values, updated in place by Step, and the
// gradient of the loss with respect to them. Name identifies the parameter's state (an ONNX
// initializer name, say) and must be unique across everything one Optimizer sees.
type Param struct {
	Name  string
	Value []float32
	Grad  []float32
	// NoDecay exempts the parameter from the optimizer's weight decay, as a PyTorch
	// parameter group with weight_decay 0 is (timm's and fastai's biases and
	// normalisation layers).
	NoDecay bool
}

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Name is "sgd", "adam" or "adamw".
	Name() string
	// Step applies one update with learning rate lr to every parameter of params, creating
	// the state of parameters it has not seen. It checks everything first (lr finite and
	// >= 0, names non-empty and distinct, len(Grad) == len(Value), lengths matching the
	// stored state) and on error changes nothing.
	Step(params []Param, lr float64) error
	// Momentum returns SGD's momentum or Adam's beta1.
	Momentum() float64
	// SetMomentum sets SGD's momentum or Adam's beta1 for the following steps.
	SetMomentum(m float64) error
	// State returns a deep copy of the optimizer's state.
	State() *State
	// StateView returns the optimizer's state as State does, but sharing the live
	// buffers: for writing it out, valid until the next Step or Load.
	StateView() *State
	// Load replaces the optimizer's state and hyperparameters with a copy of s, which must
	// come from an optimizer of the same Name.
	Load(s *State) error
}

// State is everything an Optimizer keeps: its kind, its hyperparameters as they stood, and
// the state of every parameter it has stepped, by name. It is made for encoding/gob and
// encoding/json.
type State struct {
	Optimizer string                `json:"optimizer"`
	Hyper     Hyper                 `json:"hyper"`
	Params    map[string]ParamState `json:"params"`
}

// Hyper holds an optimizer's hyperparameters (learning rates are passed to Step instead).
type Hyper struct {
	Momentum    float64 `json:"momentum"` // SGD's momentum, or Adam's beta1
	Nesterov    bool    `json:"nesterov,omitempty"`
	Beta2       float64 `json:"beta2,omitempty"`
	Eps         float64 `json:"eps,omitempty"`
	WeightDecay float64 `json:"weight_decay"`
}

// ParamState is the state of one parameter: how many steps it has taken, and its buffers
// (SGD: MomentumBuffer, absent while momentum is 0; Adam and AdamW: ExpAvg and ExpAvgSq,
// PyTorch's exp_avg and exp_avg_sq).
type ParamState struct {
	Step           int64     `json:"step"`
	MomentumBuffer []float32 `json:"momentum_buffer,omitempty"`
	ExpAvg         []float32 `json:"exp_avg,omitempty"`
	ExpAvgSq       []float32 `json:"exp_avg_sq,omitempty"`
}

// share returns x itself (nil when empty, as clone gives it).
func share(x []float32) []float32 {
	if len(x) == 0 {
		return nil
	}
	return x
}

// clone copies x; empty slices come back nil, as gob and omitempty JSON give them.
func clone(x []float32) []float32 {
	if len(x) == 0 {
		return nil
	}
	return append(make([]float32, 0, len(x)), x...)
}

// checkStep validates the arguments common to every optimizer's Step. length returns the
// length of a parameter's stored state, or -1 if it has none.
func checkStep(params []Param, lr float64, length func(name string) int) error {
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("optim: learning rate %v: must be finite and >= 0", lr)
	}
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p.Name == "" {
			return fmt.Errorf("optim: parameter %d has no name", i)
		}
		if seen[p.Name] {
			return fmt.Errorf("optim: parameter %q passed twice", p.Name)
		}
		seen[p.Name] = true
		if len(p.Grad) != len(p.Value) {
			return fmt.Errorf("optim: parameter %q has %d values but %d gradients", p.Name, len(p.Value), len(p.Grad))
		}
		if n := length(p.Name); n >= 0 && n != len(p.Value) {
			return fmt.Errorf("optim: parameter %q has %d values but its optimizer state has %d", p.Name, len(p.Value), n)
		}
	}
	return nil
}

func checkMomentum(field string, m float64) error {
	if !(m >= 0 && m < 1) {
		return fmt.Errorf("optim: %s %v: must be in [0, 1)", field, m)
	}
	return nil
}

func checkDecay(wd float64) error {
	if !(wd >= 0) || math.IsInf(wd, 0) {
		return fmt.Errorf("optim: weight_decay %v: must be finite and >= 0", wd)
	}
	return nil
}

func checkKind(s *State, want string) error {
	if s == nil {
		return fmt.Errorf("optim: nil state")
	}
	if s.Optimizer != want {
		return fmt.Errorf("optim: state of a %q optimizer cannot load into %q", s.Optimizer, want)
	}
	for name, ps := range s.Params {
		if name == "" {
			return fmt.Errorf("optim: state has a parameter without a name")
		}
		if ps.Step < 0 {
			return fmt.Errorf("optim: state of %q: step %d < 0", name, ps.Step)
		}
	}
	return nil
}
