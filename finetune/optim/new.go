package optim

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Names lists the optimizer names New accepts.
func Names() []string { return []string{"adam", "adamw", "sgd"} }

var newKeys = map[string][]string{
	"sgd":   {"momentum", "nesterov", "weight_decay"},
	"adam":  {"beta1", "beta2", "eps", "weight_decay"},
	"adamw": {"beta1", "beta2", "eps", "weight_decay"},
}

// New returns the optimizer called name with the given options; options left out take
// their defaults:
//
//	sgd    momentum 0.9 (fastai's default; PyTorch's is 0), nesterov 0 (0 or 1),
//	       weight_decay 0
//	adam   beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0
//	adamw  beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 1e-2
//
// Errors name the option and list the valid names or options.
func New(name string, opts map[string]float64) (Optimizer, error) {
	keys, ok := newKeys[name]
	if !ok {
		return nil, fmt.Errorf("unknown optimizer %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	given := make([]string, 0, len(opts))
	for k := range opts {
		given = append(given, k)
	}
	sort.Strings(given)
	for _, k := range given {
		known := false
		for _, v := range keys {
			known = known || k == v
		}
		if !known {
			return nil, fmt.Errorf("optimizer %q: unknown option %q (valid options: %s)", name, k, strings.Join(keys, ", "))
		}
		if math.IsNaN(opts[k]) {
			return nil, fmt.Errorf("optimizer %q: option %q is NaN", name, k)
		}
	}
	set := func(k string, dst *float64) {
		if v, ok := opts[k]; ok {
			*dst = v
		}
	}
	var (
		o   Optimizer
		err error
	)
	switch name {
	case "sgd":
		c := SGDConfig{Momentum: 0.9}
		set("momentum", &c.Momentum)
		set("weight_decay", &c.WeightDecay)
		if v, ok := opts["nesterov"]; ok {
			if v != 0 && v != 1 {
				return nil, fmt.Errorf("optimizer %q: option %q = %v: must be 0 or 1", name, "nesterov", v)
			}
			c.Nesterov = v == 1
		}
		o, err = NewSGD(c)
	case "adam", "adamw":
		c := DefaultAdam()
		if name == "adamw" {
			c = DefaultAdamW()
		}
		set("beta1", &c.Beta1)
		set("beta2", &c.Beta2)
		set("eps", &c.Eps)
		set("weight_decay", &c.WeightDecay)
		if name == "adam" {
			o, err = NewAdam(c)
		} else {
			o, err = NewAdamW(c)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("optimizer %q: %w", name, err)
	}
	return o, nil
}
