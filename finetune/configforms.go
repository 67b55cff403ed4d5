package finetune

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"toolkit/dataset"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
	"toolkit/internal/jsonschema"
	"toolkit/internal/yamlnode"
	"toolkit/models"
)

// This file holds the YAML forms of the config's keys that take more than one shape:
// groups, a stage's train and diagnostics (the lr and the schedule are package
// schedule's). Each decodes strictly, with errors at the line and key of the mistake,
// writes itself back in the form a recipe uses, and describes itself for the JSON Schema.

// groupSpecError is a mistake in an explicit group: groups[1] (late): match is empty.
type groupSpecError struct {
	index int
	name  string // the group's, when the mistake is not in it
	msg   string
}

func (e *groupSpecError) where() string {
	if e.name != "" {
		return fmt.Sprintf("[%d] (%s)", e.index, e.name)
	}
	return fmt.Sprintf("[%d]", e.index)
}

func (e *groupSpecError) Error() string { return "groups" + e.where() + ": " + e.msg }

// reservedGroupNames are the names no explicit group may have: all (train: all) and the
// keys of lr's mapping forms. The head's own name has a message of its own.
func reservedGroupNames() []string { return append([]string{"all"}, schedule.Reserved()...) }

// checkGroupSpecs checks the names and globs of explicit groups on their own; the
// model's parameters are checked by matchGroups.
func checkGroupSpecs(specs []GroupConfig) *groupSpecError {
	seen := map[string]bool{}
	folded := map[string]string{} // lowercased name -> the name as written
	for i, s := range specs {
		switch {
		case s.Name == "":
			return &groupSpecError{index: i, msg: "missing name"}
		case s.Name == HeadGroup:
			return &groupSpecError{index: i, msg: fmt.Sprintf("%q is the head's group, added after the base's groups; name the group otherwise", HeadGroup)}
		case slices.Contains(reservedGroupNames(), s.Name):
			return &groupSpecError{index: i, msg: fmt.Sprintf("%q is reserved (train: all means every group; max, factor and slice are lr's keys); name the group otherwise", s.Name)}
		case seen[s.Name]:
			return &groupSpecError{index: i, msg: fmt.Sprintf("group %q is named twice", s.Name)}
		case folded[strings.ToLower(s.Name)] != "":
			return &groupSpecError{index: i, msg: fmt.Sprintf("group %q differs from group %q only in case; name them apart", s.Name, folded[strings.ToLower(s.Name)])}
		case len(s.Match) == 0:
			return &groupSpecError{index: i, name: s.Name, msg: "match is empty"}
		}
		for _, pattern := range s.Match {
			if _, err := path.Match(pattern, ""); err != nil {
				return &groupSpecError{index: i, name: s.Name, msg: fmt.Sprintf("bad glob %q: %v", pattern, err)}
			}
		}
		seen[s.Name] = true
		folded[strings.ToLower(s.Name)] = s.Name
	}
	return nil
}

const groupsWant = "want auto, a preset's name or a list of {name, match}"

// UnmarshalYAML reads auto, a preset's name (checked against package models) or a list
// of {name, match} (checked by checkGroupSpecs, at the group's line).
func (g *GroupsConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	switch {
	case yamlnode.IsNull(n):
		*g = GroupsConfig{}
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if n.Value == "auto" {
			*g = GroupsConfig{} // the zero value is auto
			return nil
		}
		if _, err := models.Preset(n.Value); err != nil {
			return yamlnode.Errorf(n, "%v", err)
		}
		*g = GroupsConfig{Preset: n.Value}
	case n.Kind == yaml.SequenceNode:
		var list []GroupConfig
		if err := yamlnode.Decode(n, &list); err != nil {
			return err
		}
		if e := checkGroupSpecs(list); e != nil {
			return &yamlnode.Error{Line: n.Content[e.index].Line, Key: e.where(), Msg: e.msg}
		}
		*g = GroupsConfig{List: list}
	default:
		return yamlnode.Errorf(n, "%s; %s", yamlnode.Describe(n), groupsWant)
	}
	return nil
}

// MarshalYAML writes the list, else the preset's name (auto when empty).
func (g GroupsConfig) MarshalYAML() (any, error) {
	if len(g.List) > 0 {
		return g.List, nil
	}
	if g.Preset == "" {
		return "auto", nil
	}
	return g.Preset, nil
}

// MarshalJSON writes the recipe's form as JSON.
func (g GroupsConfig) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(g) }

// UnmarshalJSON reads what MarshalJSON writes.
func (g *GroupsConfig) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, g) }

// JSONSchema describes auto, the presets and the list.
func (GroupsConfig) JSONSchema() *jsonschema.Schema {
	group := &jsonschema.Schema{Type: "object", Required: []string{"name", "match"}, AdditionalProperties: false}
	group.Set("name", &jsonschema.Schema{Type: "string", Description: "the group's name, as train and a per-group lr write it (case kept)",
		Not: &jsonschema.Schema{Enum: jsonschema.Strings(append([]string{HeadGroup}, reservedGroupNames()...)...)}})
	group.Set("match", &jsonschema.Schema{Type: "array", MinItems: jsonschema.Count(1), Description: "globs over the base's initializer names, such as \"features.0.*\"",
		Items: &jsonschema.Schema{Type: "string"}})
	presets := models.PresetNames()
	docs := []string{"split the base at its pooling layers: block1, block2, ..."}
	for _, p := range presets {
		docs = append(docs, "the "+p+" preset's groups")
	}
	return &jsonschema.Schema{
		Description: "The layer groups, earliest first: auto, a preset's name, or a list of {name, match}; the head is always the last group, head.",
		Default:     "auto",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Enum: jsonschema.Strings(append([]string{"auto"}, presets...)...), EnumDescriptions: docs},
			{Type: "array", MinItems: jsonschema.Count(1), Items: group, Description: "the groups, earliest first"},
		},
	}
}

// UnmarshalYAML reads all or a list of group names.
func (t *TrainConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	switch {
	case yamlnode.IsNull(n):
		*t = TrainConfig{}
	case n.Kind == yaml.ScalarNode && n.Value == "all":
		*t = TrainAll()
	case n.Kind == yaml.SequenceNode:
		groups := []string{} // an empty list is not a missing one
		if err := yamlnode.Decode(n, &groups); err != nil {
			return err
		}
		*t = Train(groups...)
	case n.Kind == yaml.ScalarNode:
		return yamlnode.Errorf(n, "%s; want all or a list of groups, such as [%s]", yamlnode.Describe(n), n.Value)
	default:
		return yamlnode.Errorf(n, "%s; want all or a list of groups, such as [head]", yamlnode.Describe(n))
	}
	return nil
}

// MarshalYAML writes all, the list, or nothing when missing.
func (t TrainConfig) MarshalYAML() (any, error) {
	switch {
	case t.All:
		return "all", nil
	case t.Groups == nil:
		return nil, nil
	}
	return t.Groups, nil
}

// IsZero reports whether the key is missing.
func (t TrainConfig) IsZero() bool { return !t.All && t.Groups == nil }

// MarshalJSON writes the recipe's form as JSON (a checkpoint keeps the stages so).
func (t TrainConfig) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(t) }

// UnmarshalJSON reads what MarshalJSON writes.
func (t *TrainConfig) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, t) }

// JSONSchema describes all and the list.
func (TrainConfig) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "The groups the stage trains: all, or a list of group names such as [head]; the others are frozen.",
		OneOf: []*jsonschema.Schema{
			{Const: "all", Description: "every group"},
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}, MinItems: jsonschema.Count(1), Examples: []any{[]any{HeadGroup}},
				Description: "the groups by name, such as [head]"},
		},
	}
}

// plainDiagnostics is DiagnosticsConfig without its YAML methods: its mapping form.
type plainDiagnostics DiagnosticsConfig

// UnmarshalYAML reads off or on (or false or true), or a mapping of repair and every.
func (d *DiagnosticsConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	switch {
	case yamlnode.IsNull(n):
		*d = DiagnosticsConfig{}
	case n.Kind == yaml.ScalarNode:
		switch strings.ToLower(n.Value) {
		case "off", "false":
			*d = DiagnosticsConfig{Off: true}
		case "on", "true":
			*d = DiagnosticsConfig{}
		default:
			return yamlnode.Errorf(n, "%s; want off, on, or {repair: true, every: N}", yamlnode.Describe(n))
		}
	case n.Kind == yaml.MappingNode:
		p := plainDiagnostics(*d)
		p.Off = false
		if err := yamlnode.Decode(n, &p); err != nil {
			return err
		}
		*d = DiagnosticsConfig(p)
	default:
		return yamlnode.Errorf(n, "%s; want off, on, or {repair: true, every: N}", yamlnode.Describe(n))
	}
	return nil
}

// MarshalYAML writes off, or the mapping.
func (d DiagnosticsConfig) MarshalYAML() (any, error) {
	if d.Off {
		return "off", nil
	}
	return plainDiagnostics(d), nil
}

// JSONSchema describes off, on and the mapping. The mapping's alternative has no
// properties: the generator describes it from the struct's fields and their comments.
func (DiagnosticsConfig) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: "The detectors of failing runs: off, on (the default), or {repair: true, every: N}.",
		Default:     "on",
		OneOf: []*jsonschema.Schema{
			{Enum: jsonschema.Strings("off", "on"), EnumDescriptions: []string{"no detectors", "the detectors, no repair"}},
			{Type: "boolean", Description: "true is on, false is off"},
			{Type: "object", Description: "the detectors, with these settings"},
		},
	}
}

// plainOptimizer is OptimizerConfig without its YAML methods.
type plainOptimizer OptimizerConfig

// optimizerDefaults is the optimizer section of a recipe that names the optimizer name
// and none of its options: each option at name's default (optim.Options, the one table
// of them), the options only other optimizers take at theirs (unused).
func optimizerDefaults(name string) OptimizerConfig {
	all := map[string]float64{}
	for _, n := range optim.Names() {
		maps.Copy(all, optim.Defaults(n))
	}
	maps.Copy(all, optim.Defaults(name))
	c := OptimizerConfig{Name: name, NoDecay: slices.Clone(defaultNoDecay)}
	v := reflect.ValueOf(&c).Elem()
	for _, f := range yamlnode.Fields(v.Type()) {
		if d, ok := all[f.Key]; ok {
			setOption(v.FieldByIndex(f.Index), d)
		}
	}
	return c
}

// options returns the options of the named optimizer as optim.New takes them, from
// the fields with their keys (a flag as 0 or 1).
func (o OptimizerConfig) options() map[string]float64 {
	out := map[string]float64{}
	takes := optim.Defaults(o.Name)
	v := reflect.ValueOf(o)
	for _, f := range yamlnode.Fields(v.Type()) {
		if _, ok := takes[f.Key]; !ok {
			continue
		}
		switch fv := v.FieldByIndex(f.Index); fv.Kind() {
		case reflect.Bool:
			out[f.Key] = 0
			if fv.Bool() {
				out[f.Key] = 1
			}
		default:
			out[f.Key] = fv.Float()
		}
	}
	return out
}

func setOption(fv reflect.Value, x float64) {
	if fv.Kind() == reflect.Bool {
		fv.SetBool(x == 1)
		return
	}
	fv.SetFloat(x)
}

// UnmarshalYAML reads the optimizer's mapping as its struct, and rejects an option of
// another optimizer (momentum with adam), which would have no effect. A mapping that
// names the optimizer gives the options it leaves out that optimizer's defaults
// (optim.Options: {name: adamw} decays by 1e-2, as PyTorch's AdamW).
func (o *OptimizerConfig) UnmarshalYAML(n *yaml.Node) error {
	p := plainOptimizer(*o)
	if err := yamlnode.Decode(n, &p); err != nil {
		return err
	}
	if pairs, err := yamlnode.Pairs(n); err == nil {
		named := false
		for _, kv := range pairs {
			if takers := optim.Takers(kv.Key.Value); takers != nil && !slices.Contains(takers, p.Name) {
				return yamlnode.Under(yamlnode.Errorf(kv.Key, "an option of %s, not of %s, which would ignore it", strings.Join(takers, " and "), p.Name), kv.Key, kv.Key.Value)
			}
			named = named || kv.Key.Value == "name"
		}
		if named {
			d := plainOptimizer(optimizerDefaults(p.Name))
			d.ClipNorm, d.NoDecay = o.ClipNorm, slices.Clone(o.NoDecay)
			if err := yamlnode.Decode(n, &d); err != nil {
				return err
			}
			p = d
		}
	}
	*o = OptimizerConfig(p)
	return nil
}

// MarshalYAML writes the name and the options the optimizer takes.
func (o OptimizerConfig) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	v := reflect.ValueOf(o)
	for _, f := range yamlnode.Fields(v.Type()) {
		if takers := optim.Takers(f.Key); takers != nil && !slices.Contains(takers, o.Name) {
			continue
		}
		var val yaml.Node
		if err := val.Encode(v.FieldByIndex(f.Index).Interface()); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.Key}, &val)
	}
	return n, nil
}

// plainRandomResizedCrop is RandomResizedCropConfig without its YAML methods: its mapping form.
type plainRandomResizedCrop RandomResizedCropConfig

const rrcWant = "want false, true (scale [0.08, 1], ratio [0.75, 1.3333]) or {scale: [lo, hi], ratio: [lo, hi]}"

// UnmarshalYAML reads false, true or a mapping of scale and ratio (each defaulting to
// torchvision's), and checks the ranges at their lines.
func (r *RandomResizedCropConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	def := RandomResizedCropConfig{Scale: dataset.DefaultRandomResizedCrop.Scale, Ratio: dataset.DefaultRandomResizedCrop.Ratio}
	switch {
	case yamlnode.IsNull(n):
		*r = RandomResizedCropConfig{}
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool":
		*r = RandomResizedCropConfig{}
		if strings.EqualFold(n.Value, "true") {
			*r = def
			r.On = true
		}
	case n.Kind == yaml.MappingNode:
		p := plainRandomResizedCrop(def)
		if err := yamlnode.Decode(n, &p); err != nil {
			return err
		}
		p.On = true
		crop := dataset.RandomResizedCrop{Scale: p.Scale, Ratio: p.Ratio}
		if err := (dataset.Augment{RandomResizedCrop: &crop}).Validate(dataset.Preprocess{Mode: dataset.ModeNone, Channels: 3, Height: 1, Width: 1}); err != nil {
			var ae *dataset.AugmentError
			if errors.As(err, &ae) {
				key := strings.TrimPrefix(ae.Key, "random_resized_crop.")
				return &yamlnode.Error{Line: valueLine(n, key), Key: key, Msg: ae.Msg}
			}
			return yamlnode.Errorf(n, "%v", err)
		}
		*r = RandomResizedCropConfig(p)
	default:
		return yamlnode.Errorf(n, "%s; %s", yamlnode.Describe(n), rrcWant)
	}
	return nil
}

// valueLine is the line of key's value in mapping n, or n's own line.
func valueLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Line
		}
	}
	return n.Line
}

// MarshalYAML writes false, true for torchvision's defaults, or the mapping.
func (r RandomResizedCropConfig) MarshalYAML() (any, error) {
	switch {
	case !r.On:
		return false, nil
	case r.Scale == dataset.DefaultRandomResizedCrop.Scale && r.Ratio == dataset.DefaultRandomResizedCrop.Ratio:
		return true, nil
	}
	return plainRandomResizedCrop(r), nil
}

// MarshalJSON writes the recipe's form as JSON.
func (r RandomResizedCropConfig) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(r) }

// UnmarshalJSON reads what MarshalJSON writes.
func (r *RandomResizedCropConfig) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, r) }

// JSONSchema describes false, true and the mapping.
func (RandomResizedCropConfig) JSONSchema() *jsonschema.Schema {
	pair := func(desc string) *jsonschema.Schema {
		return &jsonschema.Schema{Type: "array", Description: desc, MinItems: jsonschema.Count(2), MaxItems: jsonschema.Count(2),
			Items: &jsonschema.Schema{Type: "number", ExclusiveMinimum: jsonschema.Number(0)}}
	}
	obj := &jsonschema.Schema{Type: "object", Description: "the box's ranges", AdditionalProperties: false}
	obj.Set("scale", pair("the range of the box's area as a fraction of the photo's, 0 < lo <= hi <= 1 (default [0.08, 1])"))
	obj.Set("ratio", pair("the range of the box's aspect ratio, width/height, 0 < lo <= hi (default [0.75, 1.3333])"))
	return &jsonschema.Schema{
		Description: "RandomResizedCrop in training instead of the resize: false (the default), true (torchvision's scale and ratio), or {scale, ratio}.",
		Default:     false,
		OneOf:       []*jsonschema.Schema{{Type: "boolean"}, obj},
	}
}
