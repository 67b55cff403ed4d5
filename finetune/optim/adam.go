package optim

import (
	"fmt"
	"math"

	"toolkit/backend/kernels"
)

// AdamConfig holds the hyperparameters of Adam and AdamW.
type AdamConfig struct {
	Beta1       float64 // first-moment decay, in [0, 1); one-cycle changes it between steps
	Beta2       float64 // second-moment decay, in [0, 1)
	Eps         float64 // added to the denominator, > 0
	WeightDecay float64 // >= 0: L2 (added to the gradient) for Adam, decoupled for AdamW
}

// DefaultAdam returns PyTorch's Adam defaults (Options): betas (0.9, 0.999), eps 1e-8,
// no weight decay.
func DefaultAdam() AdamConfig { return adamDefaults("adam") }

// DefaultAdamW returns PyTorch's AdamW defaults (Options): as Adam's, with weight decay
// 1e-2.
func DefaultAdamW() AdamConfig { return adamDefaults("adamw") }

func adamDefaults(name string) AdamConfig {
	d := Defaults(name)
	return AdamConfig{Beta1: d["beta1"], Beta2: d["beta2"], Eps: d["eps"], WeightDecay: d["weight_decay"]}
}

func (c AdamConfig) validate() error {
	if err := checkMomentum("beta1", c.Beta1); err != nil {
		return err
	}
	if err := checkMomentum("beta2", c.Beta2); err != nil {
		return err
	}
	if !(c.Eps > 0) || math.IsInf(c.Eps, 0) {
		return fmt.Errorf("optim: eps %v: must be finite and > 0", c.Eps)
	}
	return checkDecay(c.WeightDecay)
}

// Adam is PyTorch's Adam (amsgrad off), or with decoupled weight decay PyTorch's AdamW.
// With g the gradient, p the parameter, t the parameter's own step count after the
// increment, all element operations in float32:
//
//	Adam:   g = g + wd*p
//	AdamW:  p = p * (1 - lr*wd)
//	m = beta1*m + (1-beta1)*g
//	v = beta2*v + (1-beta2)*g*g
//	p = p - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//
// The last line is computed as p - (lr*s/(1-beta1^t)) * m / (sqrt(v) + eps*s) with
// s = sqrt(1-beta2^t), the same value with one division per element instead of two (the
// "efficient version" of Kingma & Ba's algorithm, with eps scaled so the result is
// PyTorch's): about twice as fast, and within float32 rounding of PyTorch.
type Adam struct {
	cfg       AdamConfig
	decoupled bool
	state     map[string]*adamState
}

type adamState struct {
	step int64
	m, v []float32
}

// NewAdam returns PyTorch's Adam with L2 weight decay added to the gradient.
func NewAdam(c AdamConfig) (*Adam, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Adam{cfg: c, state: map[string]*adamState{}}, nil
}

// NewAdamW returns PyTorch's AdamW: weight decay applied to the parameters, decoupled from
// the gradient.
func NewAdamW(c AdamConfig) (*Adam, error) {
	a, err := NewAdam(c)
	if a != nil {
		a.decoupled = true
	}
	return a, err
}

// Name returns "adam" or "adamw".
func (a *Adam) Name() string {
	if a.decoupled {
		return "adamw"
	}
	return "adam"
}

// Config returns the hyperparameters in force.
func (a *Adam) Config() AdamConfig { return a.cfg }

// Momentum returns beta1.
func (a *Adam) Momentum() float64 { return a.cfg.Beta1 }

// SetMomentum sets beta1.
func (a *Adam) SetMomentum(m float64) error {
	if err := checkMomentum("beta1", m); err != nil {
		return err
	}
	a.cfg.Beta1 = m
	return nil
}

// adamCoef are one parameter's float32 constants for one step.
type adamCoef struct {
	b1, omb1, b2, omb2 float32 // beta1, 1-beta1, beta2, 1-beta2
	wd                 float32 // coupled weight decay (Adam), 0 for AdamW
	decay              float32 // 1 - lr*wd (AdamW), 1 for Adam
	negStep            float32 // -lr*sqrt(1-beta2^t)/(1-beta1^t)
	eps                float32 // eps*sqrt(1-beta2^t)
	// fresh: the parameter's first step, its moments just made.
	fresh bool
}

// Step implements Optimizer.
func (a *Adam) Step(params []Param, lr float64) error {
	err := checkStep(params, lr, func(name string) int {
		if s, ok := a.state[name]; ok {
			return len(s.m)
		}
		return -1
	})
	if err != nil {
		return err
	}
	coefs := make([]adamCoef, len(params))
	states := make([]*adamState, len(params))
	for i, p := range params {
		s, ok := a.state[p.Name]
		if !ok {
			s = &adamState{m: make([]float32, len(p.Value)), v: make([]float32, len(p.Value))}
			a.state[p.Name] = s
		}
		s.step++
		states[i] = s
		t := float64(s.step)
		bc1 := 1 - math.Pow(a.cfg.Beta1, t)
		bc2sqrt := math.Sqrt(1 - math.Pow(a.cfg.Beta2, t))
		c := adamCoef{
			b1: float32(a.cfg.Beta1), omb1: float32(1 - a.cfg.Beta1),
			b2: float32(a.cfg.Beta2), omb2: float32(1 - a.cfg.Beta2),
			decay:   1,
			negStep: float32(-lr * bc2sqrt / bc1),
			eps:     float32(a.cfg.Eps * bc2sqrt),
			fresh:   s.step == 1,
		}
		switch {
		case p.NoDecay:
		case a.decoupled:
			c.decay = float32(1 - lr*a.cfg.WeightDecay)
		default:
			c.wd = float32(a.cfg.WeightDecay)
		}
		coefs[i] = c
	}
	ss, total := spans(params)
	kernel := adamKernel()
	forSpans(ss, total, func(_ int, sp span) {
		p, s := params[sp.p], states[sp.p]
		if coefs[sp.p].fresh {
			// Written before the kernel reads them: the first access to fresh memory
			// being a read maps the shared zero page, and the writes that follow then
			// fault a 4 KB page at a time (VGG19's first Adam step: 2.0 s instead of
			// 0.1 s for 143M parameters; a write first takes whole huge pages).
			clear(s.m[sp.lo:sp.hi])
			clear(s.v[sp.lo:sp.hi])
		}
		kernel(p.Value[sp.lo:sp.hi], p.Grad[sp.lo:sp.hi], s.m[sp.lo:sp.hi], s.v[sp.lo:sp.hi], &coefs[sp.p])
	})
	return nil
}

// namedAdamKernel is one implementation of the Adam update of a span.
type namedAdamKernel struct {
	name string
	fn   func(p, g, m, v []float32, c *adamCoef)
}

// adamKernelList is adamKernels, made once.
var adamKernelList = adamKernels()

// adamKernel returns the Adam update that goes with the convolution kernels in use
// (kernels.Current): the AVX2 assembly beside the AVX2 micro-kernels
// (TOOLKIT_KERNELS=avx2 on an AVX-512 CPU, what an AVX2-only machine runs), the Go
// loop beside the portable ones, else the fastest the CPU runs. All give the same bits.
func adamKernel() func(p, g, m, v []float32, c *adamCoef) {
	switch cur := kernels.Current(); cur {
	case "avx2", "go":
		for _, k := range adamKernelList {
			if k.name == cur {
				return k.fn
			}
		}
	}
	return adamKernelList[0].fn
}

// adamKernelGo is the Adam update of one span of a parameter.
func adamKernelGo(p, g, m, v []float32, c *adamCoef) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	b1, omb1, b2, omb2, wd, decay := c.b1, c.omb1, c.b2, c.omb2, c.wd, c.decay
	negStep, eps := c.negStep, c.eps
	for i := range p {
		x := p[i]
		gi := g[i]
		if wd != 0 {
			gi += wd * x
		}
		if decay != 1 {
			x *= decay
		}
		mi := m[i]*b1 + omb1*gi
		vi := v[i]*b2 + omb2*gi*gi
		m[i], v[i] = mi, vi
		p[i] = x + negStep*mi/(float32(math.Sqrt(float64(vi)))+eps)
	}
}

// State implements Optimizer.
func (a *Adam) State() *State { return a.state2(clone) }

// StateView implements Optimizer.
func (a *Adam) StateView() *State { return a.state2(share) }

func (a *Adam) state2(copyOf func([]float32) []float32) *State {
	s := &State{
		Optimizer: a.Name(),
		Hyper:     Hyper{Momentum: a.cfg.Beta1, Beta2: a.cfg.Beta2, Eps: a.cfg.Eps, WeightDecay: a.cfg.WeightDecay},
		Params:    make(map[string]ParamState, len(a.state)),
	}
	for name, st := range a.state {
		s.Params[name] = ParamState{Step: st.step, ExpAvg: copyOf(st.m), ExpAvgSq: copyOf(st.v)}
	}
	return s
}

// Load implements Optimizer.
func (a *Adam) Load(s *State) error {
	if err := checkKind(s, a.Name()); err != nil {
		return err
	}
	cfg := AdamConfig{Beta1: s.Hyper.Momentum, Beta2: s.Hyper.Beta2, Eps: s.Hyper.Eps, WeightDecay: s.Hyper.WeightDecay}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("loading state: %w", err)
	}
	state := make(map[string]*adamState, len(s.Params))
	for name, ps := range s.Params {
		if len(ps.ExpAvg) != len(ps.ExpAvgSq) {
			return fmt.Errorf("optim: state of %q: exp_avg has %d values, exp_avg_sq %d", name, len(ps.ExpAvg), len(ps.ExpAvgSq))
		}
		if ps.MomentumBuffer != nil {
			return fmt.Errorf("optim: state of %q has a momentum buffer, which %s does not use", name, a.Name())
		}
		m, v := clone(ps.ExpAvg), clone(ps.ExpAvgSq)
		if m == nil {
			m, v = []float32{}, []float32{}
		}
		state[name] = &adamState{step: ps.Step, m: m, v: v}
	}
	a.cfg, a.state = cfg, state
	return nil
}
