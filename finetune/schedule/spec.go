package schedule

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"toolkit/internal/jsonschema"
	"toolkit/internal/yamlnode"
)

// Spec is a stage's schedule as a recipe gives it: a name (`schedule: onecycle`) or a
// name with options (`schedule: {name: stlr, cut_frac: 0.2}`). Options left out take
// their defaults; the zero Spec is constant.
type Spec struct {
	Name string // one of Names(); "" is constant
	// Options are the options as Parse takes them: a true/false option is 1 or 0.
	Options map[string]float64
}

// Schedule builds the schedule.
func (s Spec) Schedule() (Schedule, error) {
	name := s.Name
	if name == "" {
		name = "constant"
	}
	return Parse(name, s.Options)
}

// IsZero reports whether s is the zero Spec (constant, written as nothing).
func (s Spec) IsZero() bool { return s.Name == "" && len(s.Options) == 0 }

// UnmarshalYAML reads a name or a mapping of name and options, strictly: an unknown
// name or option is an error with the nearest valid one, an option's value must be of
// its kind (a number, a whole number, or true or false), and the options must be valid
// for the schedule.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	var spec Spec
	switch {
	case yamlnode.IsNull(n):
		*s = Spec{}
		return nil
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if err := checkName(n); err != nil {
			return err
		}
		spec.Name = n.Value
	case n.Kind == yaml.MappingNode:
		pairs, err := yamlnode.Pairs(n)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if p.Key.Value == "name" {
				if p.Value.Kind != yaml.ScalarNode || p.Value.ShortTag() != "!!str" {
					return yamlnode.Under(yamlnode.Errorf(p.Value, "%s; want a schedule's name (%s)", yamlnode.Describe(p.Value), strings.Join(Names(), ", ")), p.Value, "name")
				}
				if err := checkName(p.Value); err != nil {
					return yamlnode.Under(err, p.Value, "name")
				}
				spec.Name = p.Value.Value
			}
		}
		if spec.Name == "" {
			return yamlnode.Errorf(n, "the mapping needs a name (one of %s)", strings.Join(Names(), ", "))
		}
		sp := parsers[spec.Name]
		valid := append([]string{"name"}, sp.optionKeys()...)
		for _, p := range pairs {
			if p.Key.Value == "name" {
				continue
			}
			i := slices.IndexFunc(sp.options, func(o option) bool { return o.key == p.Key.Value })
			if i < 0 {
				return yamlnode.Unknown(p.Key, valid)
			}
			v, err := sp.options[i].decode(p.Value)
			if err != nil {
				return yamlnode.Under(err, p.Value, p.Key.Value)
			}
			if spec.Options == nil {
				spec.Options = map[string]float64{}
			}
			spec.Options[p.Key.Value] = v
		}
	default:
		return yamlnode.Errorf(n, "%s; want a schedule's name (%s) or {name: ..., options}", yamlnode.Describe(n), strings.Join(Names(), ", "))
	}
	if _, err := spec.Schedule(); err != nil {
		return yamlnode.Errorf(n, "%v", err)
	}
	*s = spec
	return nil
}

func checkName(n *yaml.Node) error {
	if _, ok := parsers[n.Value]; ok {
		return nil
	}
	return yamlnode.Errorf(n, "unknown schedule %q; did you mean %q? (valid: %s)", n.Value, yamlnode.Nearest(n.Value, Names()), strings.Join(Names(), ", "))
}

// decode reads an option's value by its kind.
func (o option) decode(n *yaml.Node) (float64, error) {
	switch o.kind {
	case whole:
		var i int64
		err := yamlnode.Decode(n, &i)
		return float64(i), err
	case yesNo:
		var b bool
		if err := yamlnode.Decode(n, &b); err != nil {
			return 0, err
		}
		if b {
			return 1, nil
		}
		return 0, nil
	}
	var f float64
	err := yamlnode.Decode(n, &f)
	return f, err
}

// MarshalYAML writes the name alone when there are no options, else a mapping of the
// name and the options in the schedule's order (true/false options as true or false).
func (s Spec) MarshalYAML() (any, error) {
	name := s.Name
	if name == "" {
		name = "constant"
	}
	if len(s.Options) == 0 {
		return name, nil
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v any) error {
		var val yaml.Node
		if err := val.Encode(v); err != nil {
			return err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
		return nil
	}
	if err := add("name", name); err != nil {
		return nil, err
	}
	written := 0
	for _, o := range parsers[name].options {
		v, ok := s.Options[o.key]
		if !ok {
			continue
		}
		written++
		var val any = v
		switch o.kind {
		case whole:
			val = int64(v)
		case yesNo:
			val = v != 0
		}
		if err := add(o.key, val); err != nil {
			return nil, err
		}
	}
	if written != len(s.Options) {
		return nil, fmt.Errorf("schedule %q: options %v are not all its own (valid: %s)", name, s.Options, strings.Join(parsers[name].optionKeys(), ", "))
	}
	return n, nil
}

// MarshalJSON writes the recipe's form as JSON (a checkpoint keeps the stages so).
func (s Spec) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(s) }

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Spec) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, s) }

// JSONSchema describes the recipe's forms of a schedule: a name, or a mapping of a name
// and that schedule's options.
func (Spec) JSONSchema() *jsonschema.Schema {
	names := Names()
	docs := make([]string, len(names))
	for i, name := range names {
		docs[i] = parsers[name].doc
	}
	byName := &jsonschema.Schema{Type: "string", Enum: jsonschema.Strings(names...), EnumDescriptions: docs,
		Description: "a schedule's name: its options at their defaults"}
	s := &jsonschema.Schema{
		Description: "How the rates change over the stage's steps (every group's alike): a name, or {name: ..., options}. Default constant.",
		Default:     "constant",
		OneOf:       []*jsonschema.Schema{byName},
	}
	for _, name := range names {
		p := parsers[name]
		if len(p.options) == 0 {
			continue
		}
		m := &jsonschema.Schema{Type: "object", Description: name + ": " + p.doc, Required: []string{"name"}, AdditionalProperties: false}
		m.Set("name", &jsonschema.Schema{Const: name})
		for _, o := range p.options {
			m.Set(o.key, o.schema())
		}
		s.OneOf = append(s.OneOf, m)
	}
	return s
}

func (o option) schema() *jsonschema.Schema {
	s := &jsonschema.Schema{Description: o.doc}
	switch o.kind {
	case number:
		s.Type = "number"
	case whole:
		s.Type, s.Minimum = "integer", jsonschema.Number(1)
	case yesNo:
		s.Type = "boolean"
	}
	if !math.IsNaN(o.def) {
		s.Default = o.def
		if o.kind == yesNo {
			s.Default = o.def != 0
		}
	}
	return s
}

// Rates is a stage's lr as a recipe gives it, in one of four forms (exactly one is set;
// the zero Rates is missing):
//
//	lr: 1e-3                        Rate: every trained group at that rate
//	lr: {max: 1e-3, factor: 2.6}    Max and Factor: ULMFiT (a Factor of 0 is DefaultFactor)
//	lr: {slice: [1e-5, 1e-3]}       Slice: fastai's slice(lo, hi); [hi] is slice(hi)
//	lr: {early: 1e-5, head: 1e-3}   PerGroup: a rate per group, by the group names as written
//
// Spread turns it into the Spread that gives each group its rate.
type Rates struct {
	Rate     float64
	Max      float64
	Factor   float64
	Slice    []float64
	PerGroup map[string]float64
}

// Reserved returns the keys of Rates' mapping forms, which no layer group may be named.
func Reserved() []string { return []string{"factor", "max", "slice"} }

// IsZero reports whether no form is set (the lr is missing).
func (r Rates) IsZero() bool { return len(r.forms()) == 0 }

func (r Rates) forms() []string {
	var forms []string
	if r.Rate != 0 {
		forms = append(forms, "a rate")
	}
	if r.Max != 0 || r.Factor != 0 {
		forms = append(forms, "{max, factor}")
	}
	if len(r.Slice) > 0 {
		forms = append(forms, "{slice}")
	}
	if len(r.PerGroup) > 0 {
		forms = append(forms, "rates per group")
	}
	return forms
}

// Spread checks the rates on their own (finite and > 0, lo <= hi) and returns the
// Spread they give; Spread.Rates checks the rest against the model's groups.
func (r Rates) Spread() (Spread, error) {
	forms := r.forms()
	switch {
	case len(forms) == 0:
		return nil, fmt.Errorf("lr: missing (a rate such as 1e-3, {max: 1e-3, factor: 2.6}, {slice: [1e-5, 1e-3]} or a rate per group)")
	case len(forms) > 1:
		return nil, fmt.Errorf("lr: %s given together; give one", strings.Join(forms, " and "))
	}
	switch {
	case r.Rate != 0:
		if !validRate(r.Rate) {
			return nil, fmt.Errorf("lr %v: must be finite and > 0", r.Rate)
		}
		return Scalar(r.Rate), nil
	case r.Max != 0 || r.Factor != 0:
		if r.Max == 0 {
			return nil, fmt.Errorf("lr: factor needs max ({max: 1e-3, factor: 2.6})")
		}
		if !validRate(r.Max) {
			return nil, fmt.Errorf("lr max %v: must be finite and > 0", r.Max)
		}
		u := ULMFiT{Max: r.Max, Factor: r.Factor}
		if u.Factor == 0 {
			u.Factor = DefaultFactor
		}
		if !validRate(u.Factor) {
			return nil, fmt.Errorf("lr factor %v: must be finite and > 0", u.Factor)
		}
		return u, nil
	case len(r.Slice) > 0:
		return sliceOf(r.Slice)
	}
	p := PerGroup{}
	for _, g := range sortedKeys(r.PerGroup) {
		if !validRate(r.PerGroup[g]) {
			return nil, fmt.Errorf("lr: group %q rate %v: must be finite and > 0", g, r.PerGroup[g])
		}
		p[g] = r.PerGroup[g]
	}
	return p, nil
}

func sliceOf(fs []float64) (Spread, error) {
	switch len(fs) {
	case 1:
		if !validRate(fs[0]) {
			return nil, fmt.Errorf("lr slice hi %v: must be finite and > 0", fs[0])
		}
		return Slice{Hi: fs[0]}, nil
	case 2:
		if !validRate(fs[0]) {
			return nil, fmt.Errorf("lr slice lo %v: must be finite and > 0", fs[0])
		}
		if !validRate(fs[1]) {
			return nil, fmt.Errorf("lr slice hi %v: must be finite and > 0", fs[1])
		}
		if fs[0] > fs[1] {
			return nil, fmt.Errorf("lr slice [%v, %v]: lo must be <= hi", fs[0], fs[1])
		}
		return Slice{Lo: fs[0], Hi: fs[1]}, nil
	}
	return nil, fmt.Errorf("lr slice: want [lo, hi] or [hi], got %d values", len(fs))
}

// UnmarshalYAML reads the four forms strictly: a number (not a string holding one), a
// mapping of max and factor, of slice alone, or of group names to numbers; group names
// keep their case. The rates are checked as Spread checks them.
func (r *Rates) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	var out Rates
	switch {
	case yamlnode.IsNull(n):
		*r = Rates{}
		return nil
	case n.Kind == yaml.ScalarNode:
		if err := yamlnode.Decode(n, &out.Rate); err != nil {
			return yamlnode.Errorf(n, "%s; want a rate such as 1e-3, {max: 1e-3, factor: 2.6}, {slice: [1e-5, 1e-3]} or a rate per group", yamlnode.Describe(n))
		}
		if out.Rate == 0 {
			return yamlnode.Errorf(n, "lr 0: must be finite and > 0")
		}
	case n.Kind == yaml.MappingNode:
		pairs, err := yamlnode.Pairs(n)
		if err != nil {
			return err
		}
		if len(pairs) == 0 {
			return yamlnode.Errorf(n, "an empty mapping; want a rate such as 1e-3, {max: 1e-3, factor: 2.6}, {slice: [1e-5, 1e-3]} or a rate per group")
		}
		keys := map[string]*yaml.Node{}
		for _, p := range pairs {
			keys[p.Key.Value] = p.Key
		}
		_, hasSlice := keys["slice"]
		_, hasMax := keys["max"]
		_, hasFactor := keys["factor"]
		ulmfit := len(pairs) == b2i(hasMax)+b2i(hasFactor)
		switch {
		case hasSlice && len(pairs) > 1:
			for _, p := range pairs {
				if p.Key.Value != "slice" {
					return yamlnode.Errorf(p.Key, "slice takes no other keys (got %s)", p.Key.Value)
				}
			}
		case hasSlice:
			if err := yamlnode.Decode(pairs[0].Value, &out.Slice); err != nil {
				return yamlnode.Under(err, pairs[0].Value, "slice")
			}
			if len(out.Slice) == 0 {
				return yamlnode.Under(yamlnode.Errorf(pairs[0].Value, "an empty list; want [lo, hi] or [hi]"), pairs[0].Value, "slice")
			}
		case ulmfit:
			for _, p := range pairs {
				dst := &out.Max
				if p.Key.Value == "factor" {
					dst = &out.Factor
				}
				if err := yamlnode.Decode(p.Value, dst); err != nil {
					return yamlnode.Under(err, p.Value, p.Key.Value)
				}
				if *dst == 0 {
					return yamlnode.Under(yamlnode.Errorf(p.Value, "0; want a number > 0"), p.Value, p.Key.Value)
				}
			}
		case hasMax || hasFactor:
			k := keys["max"]
			if k == nil {
				k = keys["factor"]
			}
			return yamlnode.Errorf(k, "%s belongs to ULMFiT's {max, factor}, which takes no group names; a rate per group names only groups", k.Value)
		default:
			out.PerGroup = map[string]float64{}
			for _, p := range pairs {
				var f float64
				if err := yamlnode.Decode(p.Value, &f); err != nil {
					return yamlnode.Under(err, p.Value, p.Key.Value)
				}
				if f == 0 {
					return yamlnode.Under(yamlnode.Errorf(p.Value, "0; want a rate > 0"), p.Value, p.Key.Value)
				}
				out.PerGroup[p.Key.Value] = f
			}
		}
	default:
		return yamlnode.Errorf(n, "%s; want a rate such as 1e-3, {max: 1e-3, factor: 2.6}, {slice: [1e-5, 1e-3]} or a rate per group", yamlnode.Describe(n))
	}
	if _, err := out.Spread(); err != nil {
		return yamlnode.Errorf(n, "%v", err)
	}
	*r = out
	return nil
}

// MarshalYAML writes the form that is set, as a recipe writes it.
func (r Rates) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v any) error {
		var val yaml.Node
		if err := val.Encode(v); err != nil {
			return err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
		return nil
	}
	switch {
	case len(r.forms()) != 1:
		if r.IsZero() {
			return nil, nil
		}
		_, err := r.Spread()
		return nil, err
	case r.Rate != 0:
		return r.Rate, nil
	case r.Max != 0 || r.Factor != 0:
		if err := add("max", r.Max); err != nil {
			return nil, err
		}
		if r.Factor != 0 {
			if err := add("factor", r.Factor); err != nil {
				return nil, err
			}
		}
	case len(r.Slice) > 0:
		if err := add("slice", r.Slice); err != nil {
			return nil, err
		}
	default:
		for _, g := range sortedKeys(r.PerGroup) {
			if err := add(g, r.PerGroup[g]); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// MarshalJSON writes the recipe's form as JSON (a checkpoint keeps the stages so).
func (r Rates) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(r) }

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Rates) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, r) }

// JSONSchema describes the four forms.
func (Rates) JSONSchema() *jsonschema.Schema {
	positive := func(desc string) *jsonschema.Schema {
		return &jsonschema.Schema{Type: "number", ExclusiveMinimum: jsonschema.Number(0), Description: desc}
	}
	ulmfit := &jsonschema.Schema{Type: "object", Required: []string{"max"}, AdditionalProperties: false,
		Description: "ULMFiT: the head gets max, each group below the rate of the group above divided by factor"}
	ulmfit.Set("max", positive("the head's rate"))
	f := positive("the ratio between neighbouring groups' rates")
	f.Default = DefaultFactor
	ulmfit.Set("factor", f)
	slice := &jsonschema.Schema{Type: "object", Required: []string{"slice"}, AdditionalProperties: false,
		Description: "fastai's slice: rates spread geometrically from lo (the first group) to hi (the head); [hi] gives hi/10 to all groups but the head"}
	slice.Set("slice", &jsonschema.Schema{Type: "array", Items: positive(""), MinItems: jsonschema.Count(1), MaxItems: jsonschema.Count(2),
		Description: "[lo, hi], or [hi]"})
	perGroup := &jsonschema.Schema{Type: "object", MinProperties: jsonschema.Count(1),
		Description:          "a rate per group name (every trained group), names as written in groups",
		PropertyNames:        &jsonschema.Schema{Not: &jsonschema.Schema{Enum: jsonschema.Strings(Reserved()...)}},
		AdditionalProperties: positive("the group's rate")}
	return &jsonschema.Schema{
		Description: "The base learning rate of each trained group: a number (every trained group), {max, factor} (ULMFiT), {slice: [lo, hi]} (fastai) or a rate per group.",
		Examples:    []any{1e-3, map[string]any{"max": 1e-3, "factor": DefaultFactor}, map[string]any{"slice": []any{1e-5, 1e-3}}},
		OneOf:       []*jsonschema.Schema{positive("every trained group's rate"), ulmfit, slice, perGroup},
	}
}
