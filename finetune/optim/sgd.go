package optim

import (
	"fmt"
)

// SGDConfig holds the hyperparameters of SGD.
type SGDConfig struct {
	Momentum    float64 // in [0, 1); 0 is plain SGD; one-cycle changes it between steps
	Nesterov    bool    // Nesterov momentum; needs Momentum > 0
	WeightDecay float64 // >= 0, L2 added to the gradient
}

func (c SGDConfig) validate() error {
	if err := checkMomentum("momentum", c.Momentum); err != nil {
		return err
	}
	if c.Nesterov && c.Momentum == 0 {
		return fmt.Errorf("optim: nesterov needs momentum > 0")
	}
	return checkDecay(c.WeightDecay)
}

// SGD is PyTorch's torch.optim.SGD with dampening 0. With g the gradient and p the
// parameter, all element operations in float32:
//
//	g = g + wd*p
//	b = g on a parameter's first step with momentum, else b = momentum*b + g
//	g = g + momentum*b (Nesterov), or g = b (classic momentum)
//	p = p - lr*g
//
// With Momentum 0 there is no buffer and the update is p - lr*(g + wd*p).
type SGD struct {
	cfg   SGDConfig
	state map[string]*sgdState
}

type sgdState struct {
	step int64
	buf  []float32 // nil until the first step with momentum
	n    int       // parameter length
}

// NewSGD returns an SGD optimizer.
func NewSGD(c SGDConfig) (*SGD, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &SGD{cfg: c, state: map[string]*sgdState{}}, nil
}

// Name returns "sgd".
func (o *SGD) Name() string { return "sgd" }

// Config returns the hyperparameters in force.
func (o *SGD) Config() SGDConfig { return o.cfg }

// Momentum returns the momentum.
func (o *SGD) Momentum() float64 { return o.cfg.Momentum }

// SetMomentum sets the momentum.
func (o *SGD) SetMomentum(m float64) error {
	c := o.cfg
	c.Momentum = m
	if err := c.validate(); err != nil {
		return err
	}
	o.cfg = c
	return nil
}

type sgdCoef struct {
	wd, mom, negLR float32
	first          bool // the buffer starts as a copy of the gradient
	useBuf         bool
	nesterov       bool
}

// Step implements Optimizer.
func (o *SGD) Step(params []Param, lr float64) error {
	err := checkStep(params, lr, func(name string) int {
		if s, ok := o.state[name]; ok {
			return s.n
		}
		return -1
	})
	if err != nil {
		return err
	}
	coefs := make([]sgdCoef, len(params))
	states := make([]*sgdState, len(params))
	for i, p := range params {
		s, ok := o.state[p.Name]
		if !ok {
			s = &sgdState{n: len(p.Value)}
			o.state[p.Name] = s
		}
		s.n = len(p.Value)
		s.step++
		states[i] = s
		c := sgdCoef{
			wd:       float32(o.cfg.WeightDecay),
			mom:      float32(o.cfg.Momentum),
			negLR:    float32(-lr),
			useBuf:   o.cfg.Momentum != 0,
			nesterov: o.cfg.Nesterov,
		}
		if p.NoDecay {
			c.wd = 0
		}
		if c.useBuf && s.buf == nil {
			s.buf = make([]float32, len(p.Value))
			c.first = true
		}
		coefs[i] = c
	}
	ss, total := spans(params)
	forSpans(ss, total, func(_ int, sp span) {
		p, s := params[sp.p], states[sp.p]
		var buf []float32
		if s.buf != nil {
			buf = s.buf[sp.lo:sp.hi]
		}
		sgdKernel(p.Value[sp.lo:sp.hi], p.Grad[sp.lo:sp.hi], buf, &coefs[sp.p])
	})
	return nil
}

func sgdKernel(p, g, buf []float32, c *sgdCoef) {
	g = g[:len(p)]
	wd, mom, negLR := c.wd, c.mom, c.negLR
	if !c.useBuf {
		for i := range p {
			d := g[i]
			if wd != 0 {
				d += wd * p[i]
			}
			p[i] += negLR * d
		}
		return
	}
	buf = buf[:len(p)]
	for i := range p {
		d := g[i]
		if wd != 0 {
			d += wd * p[i]
		}
		b := d
		if !c.first {
			b = buf[i]*mom + d
		}
		buf[i] = b
		if c.nesterov {
			d += mom * b
		} else {
			d = b
		}
		p[i] += negLR * d
	}
}

// State implements Optimizer.
func (o *SGD) State() *State { return o.state2(clone) }

// StateView implements Optimizer.
func (o *SGD) StateView() *State { return o.state2(share) }

func (o *SGD) state2(copyOf func([]float32) []float32) *State {
	s := &State{
		Optimizer: o.Name(),
		Hyper:     Hyper{Momentum: o.cfg.Momentum, Nesterov: o.cfg.Nesterov, WeightDecay: o.cfg.WeightDecay},
		Params:    make(map[string]ParamState, len(o.state)),
	}
	for name, st := range o.state {
		s.Params[name] = ParamState{Step: st.step, MomentumBuffer: copyOf(st.buf)}
	}
	return s
}

// Load implements Optimizer. A parameter stored without a momentum buffer starts one, from
// its next gradient, on its next step with momentum, as in PyTorch.
func (o *SGD) Load(s *State) error {
	if err := checkKind(s, o.Name()); err != nil {
		return err
	}
	cfg := SGDConfig{Momentum: s.Hyper.Momentum, Nesterov: s.Hyper.Nesterov, WeightDecay: s.Hyper.WeightDecay}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("loading state: %w", err)
	}
	state := make(map[string]*sgdState, len(s.Params))
	for name, ps := range s.Params {
		if ps.ExpAvg != nil || ps.ExpAvgSq != nil {
			return fmt.Errorf("optim: state of %q has Adam moments, which sgd does not use", name)
		}
		n := -1 // length unknown until the parameter is stepped, if there is no buffer
		if ps.MomentumBuffer != nil {
			n = len(ps.MomentumBuffer)
		}
		state[name] = &sgdState{step: ps.Step, buf: clone(ps.MomentumBuffer), n: n}
	}
	o.cfg, o.state = cfg, state
	return nil
}
