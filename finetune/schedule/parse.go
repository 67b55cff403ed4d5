package schedule

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Names lists the schedule names Parse accepts, sorted.
func Names() []string {
	names := make([]string, 0, len(parsers))
	for n := range parsers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// kind is the kind of value an option takes.
type kind int

const (
	number kind = iota // any number
	whole              // a whole number
	yesNo              // true or false; 1 or 0 in Parse's options
)

// option is one option of a schedule: its key, kind, default (NaN: none, it must be
// given or left out as the schedule says) and meaning.
type option struct {
	key  string
	kind kind
	def  float64
	doc  string
}

// parser builds one kind of schedule from options; doc says what it does and options
// lists its options with their defaults, which Parse shows in errors and Spec's
// JSONSchema in editors.
type parser struct {
	doc     string
	options []option
	build   func(o opts) (Schedule, error)
}

var none = math.NaN()

var parsers = map[string]parser{
	"constant": {"the stage's rates at every step", nil, func(opts) (Schedule, error) { return Constant{}, nil }},
	"onecycle": {
		"fastai's fit_one_cycle: a cosine warm-up from rate/div to the rate, then cosine annealing to rate/(div*div_final); momentum (or Adam's beta1) cycles the other way",
		[]option{
			{"div", number, 25, "the first rate is the rate divided by div"},
			{"div_final", number, 1e4, "the last rate is the first divided by div_final"},
			{"pct_start", number, 0.25, "the fraction of the steps spent warming up"},
			{"mom_max", number, 0.95, "the momentum at the start and the end"},
			{"mom_min", number, 0.85, "the momentum at the peak rate"},
			{"cycle_momentum", yesNo, 1, "whether the momentum cycles"},
		},
		func(o opts) (Schedule, error) {
			s := DefaultOneCycle()
			o.float("div", &s.Div)
			o.float("div_final", &s.DivFinal)
			o.float("pct_start", &s.PctStart)
			o.float("mom_max", &s.MomMax)
			o.float("mom_min", &s.MomMin)
			if err := o.bool("cycle_momentum", &s.CycleMomentum); err != nil {
				return nil, err
			}
			return s, s.Validate()
		},
	},
	"stlr": {
		"ULMFiT's slanted triangle: a short linear climb to the rate, then a long linear descent",
		[]option{
			{"cut_frac", number, 0.1, "the fraction of the steps spent climbing, in (0, 1)"},
			{"ratio", number, 32, "how much smaller the lowest rate is than the peak, at least 1"},
		},
		func(o opts) (Schedule, error) {
			s := DefaultSlantedTriangular()
			o.float("cut_frac", &s.CutFrac)
			o.float("ratio", &s.Ratio)
			return s, s.Validate()
		},
	},
	"cosine": {
		"cosine annealing from the rate at the first step to floor times the rate at the last",
		[]option{{"floor", number, 0, "the last rate as a fraction of the rate, in [0, 1]"}},
		func(o opts) (Schedule, error) {
			var s Cosine
			o.float("floor", &s.Floor)
			return s, s.Validate()
		},
	},
	"warmup": {
		"a linear warm-up from start times the rate, then the rate; the warm-up's length is warmup_steps or warmup_pct",
		warmupOptions,
		func(o opts) (Schedule, error) { return warmup(o, false) },
	},
	"plateau": {
		"PyTorch's ReduceLROnPlateau: the rates multiplied by factor when the monitored validation metric (output.best) has not improved for patience epochs",
		[]option{
			{"factor", number, 0.1, "the rates are multiplied by it at each reduction, in (0, 1)"},
			{"patience", whole, 10, "the epochs without improvement before a reduction"},
			{"cooldown", whole, 0, "the epochs after a reduction before bad epochs count again"},
			{"min_lr", number, 0, "no group's rate goes below it"},
			{"threshold", number, 1e-4, "the relative improvement that counts, in [0, 1)"},
		},
		func(o opts) (Schedule, error) {
			s := DefaultPlateau()
			o.float("factor", &s.Reduce)
			if err := o.int("patience", &s.Patience); err != nil {
				return nil, err
			}
			if err := o.int("cooldown", &s.Cooldown); err != nil {
				return nil, err
			}
			o.float("min_lr", &s.MinLR)
			o.float("threshold", &s.Threshold)
			return s, s.Validate()
		},
	},
	"warmup_cosine": {
		"a linear warm-up as warmup, then cosine annealing to floor times the rate",
		append(warmupOptions[:len(warmupOptions):len(warmupOptions)], option{"floor", number, 0, "the last rate as a fraction of the rate, in [0, 1]"}),
		func(o opts) (Schedule, error) { return warmup(o, true) },
	},
}

var warmupOptions = []option{
	{"warmup_steps", whole, none, "the warm-up's length in steps (or warmup_pct)"},
	{"warmup_pct", number, none, "the warm-up's length as a fraction of the steps, in (0, 1] (or warmup_steps)"},
	{"start", number, 0, "the first rate as a fraction of the rate, in [0, 1]"},
}

func warmup(o opts, cosine bool) (Schedule, error) {
	s := Warmup{Cosine: cosine}
	if err := o.int("warmup_steps", &s.Steps); err != nil {
		return nil, err
	}
	o.float("warmup_pct", &s.Pct)
	o.float("start", &s.Start)
	o.float("floor", &s.Floor)
	return s, s.Validate()
}

// Parse returns the schedule called name with the given options; options left out take
// their defaults. Names and options:
//
//	constant
//	onecycle       div 25, div_final 1e4, pct_start 0.25, mom_max 0.95, mom_min 0.85,
//	               cycle_momentum 1 (0 or 1)
//	stlr           cut_frac 0.1, ratio 32
//	cosine         floor 0 (fraction of the base rate)
//	warmup         warmup_steps (whole number) or warmup_pct (fraction), start 0
//	warmup_cosine  as warmup, and floor 0
//	plateau        factor 0.1, patience 10, cooldown 0, min_lr 0, threshold 1e-4
//
// Errors name the schedule and the option, and list the valid names or options.
func Parse(name string, options map[string]float64) (Schedule, error) {
	p, ok := parsers[name]
	if !ok {
		return nil, fmt.Errorf("unknown schedule %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	valid := map[string]bool{}
	for _, o := range p.options {
		valid[o.key] = true
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !valid[k] {
			list := "none"
			if len(p.options) > 0 {
				list = strings.Join(p.optionKeys(), ", ")
			}
			return nil, fmt.Errorf("schedule %q: unknown option %q (valid options: %s)", name, k, list)
		}
		if v := options[k]; math.IsNaN(v) {
			return nil, fmt.Errorf("schedule %q: option %q is NaN", name, k)
		}
	}
	s, err := p.build(opts(options))
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", name, err)
	}
	return s, nil
}

// optionKeys returns the keys of the options, sorted.
func (p parser) optionKeys() []string {
	keys := make([]string, len(p.options))
	for i, o := range p.options {
		keys[i] = o.key
	}
	sort.Strings(keys)
	return keys
}

type opts map[string]float64

func (o opts) float(key string, dst *float64) {
	if v, ok := o[key]; ok {
		*dst = v
	}
}

func (o opts) int(key string, dst *int) error {
	v, ok := o[key]
	if !ok {
		return nil
	}
	if v != math.Trunc(v) || math.Abs(v) > 1<<40 {
		return fmt.Errorf("option %q = %v: must be a whole number", key, v)
	}
	*dst = int(v)
	return nil
}

func (o opts) bool(key string, dst *bool) error {
	v, ok := o[key]
	if !ok {
		return nil
	}
	switch v {
	case 0:
		*dst = false
	case 1:
		*dst = true
	default:
		return fmt.Errorf("option %q = %v: must be 0 or 1", key, v)
	}
	return nil
}
