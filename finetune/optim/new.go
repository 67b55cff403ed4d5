package optim

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Names lists the optimizer names New accepts.
func Names() []string { return []string{"adam", "adamw", "sgd"} }

// Option is one hyperparameter that New takes by name, with its default for each
// optimizer that takes it. Options is the one table of them: New, the recipe's
// optimizer section and its documentation all read it.
type Option struct {
	Key      string             // as New and the recipe write it
	Defaults map[string]float64 // by optimizer name: the optimizers that take it
}

// Options lists the hyperparameters, their takers and their defaults: PyTorch's
// (torch.optim.SGD, Adam, AdamW), but for SGD's momentum, fastai's 0.9 (PyTorch's is 0).
// nesterov is 0 or 1.
var Options = []Option{
	{"weight_decay", map[string]float64{"sgd": 0, "adam": 0, "adamw": 1e-2}},
	{"momentum", map[string]float64{"sgd": 0.9}},
	{"nesterov", map[string]float64{"sgd": 0}},
	{"beta1", map[string]float64{"adam": 0.9, "adamw": 0.9}},
	{"beta2", map[string]float64{"adam": 0.999, "adamw": 0.999}},
	{"eps", map[string]float64{"adam": 1e-8, "adamw": 1e-8}},
}

// Takers lists the optimizers that take the option key, sorted (none for an unknown key).
func Takers(key string) []string {
	for _, o := range Options {
		if o.Key == key {
			var out []string
			for name := range o.Defaults {
				out = append(out, name)
			}
			sort.Strings(out)
			return out
		}
	}
	return nil
}

// Defaults returns the options the optimizer called name takes, with their defaults (nil
// for an unknown name).
func Defaults(name string) map[string]float64 {
	if !slices.Contains(Names(), name) {
		return nil
	}
	out := map[string]float64{}
	for _, o := range Options {
		if v, ok := o.Defaults[name]; ok {
			out[o.Key] = v
		}
	}
	return out
}

// keys lists the options of name in the table's order.
func keys(name string) []string {
	var out []string
	for _, o := range Options {
		if _, ok := o.Defaults[name]; ok {
			out = append(out, o.Key)
		}
	}
	return out
}

// New returns the optimizer called name with the given options; options left out take
// their defaults from Options:
//
//	sgd    momentum 0.9 (fastai's default; PyTorch's is 0), nesterov 0 (0 or 1),
//	       weight_decay 0
//	adam   beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0
//	adamw  beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 1e-2
//
// Errors name the option and list the valid names or options.
func New(name string, opts map[string]float64) (Optimizer, error) {
	c := Defaults(name)
	if c == nil {
		return nil, fmt.Errorf("unknown optimizer %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	given := make([]string, 0, len(opts))
	for k := range opts {
		given = append(given, k)
	}
	sort.Strings(given)
	for _, k := range given {
		if _, ok := c[k]; !ok {
			return nil, fmt.Errorf("optimizer %q: unknown option %q (valid options: %s)", name, k, strings.Join(sorted(keys(name)), ", "))
		}
		if math.IsNaN(opts[k]) {
			return nil, fmt.Errorf("optimizer %q: option %q is NaN", name, k)
		}
		c[k] = opts[k]
	}
	var (
		o   Optimizer
		err error
	)
	switch name {
	case "sgd":
		if v := c["nesterov"]; v != 0 && v != 1 {
			return nil, fmt.Errorf("optimizer %q: option %q = %v: must be 0 or 1", name, "nesterov", v)
		}
		o, err = NewSGD(SGDConfig{Momentum: c["momentum"], Nesterov: c["nesterov"] == 1, WeightDecay: c["weight_decay"]})
	case "adam", "adamw":
		ac := AdamConfig{Beta1: c["beta1"], Beta2: c["beta2"], Eps: c["eps"], WeightDecay: c["weight_decay"]}
		if name == "adam" {
			o, err = NewAdam(ac)
		} else {
			o, err = NewAdamW(ac)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("optimizer %q: %w", name, err)
	}
	return o, nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
