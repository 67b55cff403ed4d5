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

// parser builds one kind of schedule from options; keys lists its options with their
// defaults, which Parse shows in errors.
type parser struct {
	keys  []string
	build func(o opts) (Schedule, error)
}

var parsers = map[string]parser{
	"constant": {nil, func(opts) (Schedule, error) { return Constant{}, nil }},
	"onecycle": {
		[]string{"div", "div_final", "pct_start", "mom_max", "mom_min", "cycle_momentum"},
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
		[]string{"cut_frac", "ratio"},
		func(o opts) (Schedule, error) {
			s := DefaultSlantedTriangular()
			o.float("cut_frac", &s.CutFrac)
			o.float("ratio", &s.Ratio)
			return s, s.Validate()
		},
	},
	"cosine": {
		[]string{"floor"},
		func(o opts) (Schedule, error) {
			var s Cosine
			o.float("floor", &s.Floor)
			return s, s.Validate()
		},
	},
	"warmup": {
		[]string{"warmup_steps", "warmup_pct", "start"},
		func(o opts) (Schedule, error) { return warmup(o, false) },
	},
	"warmup_cosine": {
		[]string{"warmup_steps", "warmup_pct", "start", "floor"},
		func(o opts) (Schedule, error) { return warmup(o, true) },
	},
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
//
// Errors name the schedule and the option, and list the valid names or options.
func Parse(name string, options map[string]float64) (Schedule, error) {
	p, ok := parsers[name]
	if !ok {
		return nil, fmt.Errorf("unknown schedule %q (valid: %s)", name, strings.Join(Names(), ", "))
	}
	valid := map[string]bool{}
	for _, k := range p.keys {
		valid[k] = true
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !valid[k] {
			list := "none"
			if len(p.keys) > 0 {
				sorted := append([]string(nil), p.keys...)
				sort.Strings(sorted)
				list = strings.Join(sorted, ", ")
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
