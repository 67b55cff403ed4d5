package finetune

import (
	"fmt"
	"path"
	"strings"

	"github.com/go-viper/mapstructure/v2"

	"toolkit/models"
	"toolkit/onnx"
)

// HeadGroup is the name of the last layer group, which holds the head's parameters.
const HeadGroup = "head"

// Group is a layer group: parameters trained together with one learning rate.
type Group struct {
	Name   string
	Params []string
}

// groupNames returns the groups' names in order.
func groupNames(groups []Group) []string {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Name
	}
	return names
}

// ResolveGroups splits the trainable parameters into ordered layer groups, the head
// last. spec is nil or "auto" (split the base at its stage boundaries, onnx.Blocks:
// stem, layer1 ... for a ResNet), the name of a preset from package models (resnet,
// mobilenet_v2, vgg16, ...), or a list of {name, match} with globs over parameter names. Every trainable
// base parameter must fall in exactly one group, and no group may be empty.
func ResolveGroups(spec any, base *onnx.Model, trainable []string, isHead func(string) bool) ([]Group, error) {
	var baseParams, headParams []string
	for _, p := range trainable {
		if isHead(p) {
			headParams = append(headParams, p)
		} else {
			baseParams = append(baseParams, p)
		}
	}
	var groups []Group
	switch s := spec.(type) {
	case nil:
		groups = autoGroups(base, baseParams)
	case string:
		if s == "auto" {
			groups = autoGroups(base, baseParams)
			break
		}
		assigned, err := models.AssignPreset(s, base, baseParams)
		if err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
		for _, a := range assigned {
			groups = append(groups, Group{Name: a.Name, Params: a.Params})
		}
	default:
		var specs []GroupConfig
		if err := mapstructure.Decode(spec, &specs); err != nil {
			return nil, fmt.Errorf("groups: want auto or a list of {name, match}: %w", err)
		}
		var err error
		if groups, err = matchGroups(specs, baseParams); err != nil {
			return nil, err
		}
	}
	if len(headParams) > 0 {
		groups = append(groups, Group{Name: HeadGroup, Params: headParams})
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("groups: the model has no trainable parameters")
	}
	return groups, nil
}

// autoGroups puts each stage's parameters (onnx.Blocks) in a group of its own.
func autoGroups(base *onnx.Model, params []string) []Group {
	want := map[string]bool{}
	for _, p := range params {
		want[p] = true
	}
	var groups []Group
	placed := map[string]bool{}
	for _, b := range onnx.Blocks(base) {
		g := Group{Name: b.Name}
		for _, p := range b.Params {
			if want[p] && !placed[p] {
				g.Params = append(g.Params, p)
				placed[p] = true
			}
		}
		if len(g.Params) > 0 {
			groups = append(groups, g)
		}
	}
	var rest []string
	for _, p := range params {
		if !placed[p] {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		if len(groups) == 0 {
			groups = append(groups, Group{Name: "base"})
		}
		last := &groups[len(groups)-1]
		last.Params = append(last.Params, rest...)
	}
	return groups
}

func matchGroups(specs []GroupConfig, params []string) ([]Group, error) {
	groups := make([]Group, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("groups[%d]: missing name", i)
		case s.Name == HeadGroup:
			return nil, fmt.Errorf("groups[%d]: %q is the head's group, added after the base's groups; name the group otherwise", i, HeadGroup)
		case strings.ToLower(s.Name) != s.Name:
			return nil, fmt.Errorf("groups[%d]: name %q: use lowercase (config keys, as in per-group lr maps, are read case-insensitively)", i, s.Name)
		case seen[s.Name]:
			return nil, fmt.Errorf("groups[%d]: group %q is named twice", i, s.Name)
		case len(s.Match) == 0:
			return nil, fmt.Errorf("groups[%d] (%s): match is empty", i, s.Name)
		}
		for _, pattern := range s.Match {
			if _, err := path.Match(pattern, ""); err != nil {
				return nil, fmt.Errorf("groups[%d] (%s): bad glob %q: %w", i, s.Name, pattern, err)
			}
		}
		seen[s.Name] = true
		groups[i].Name = s.Name
	}
	var unplaced []string
	for _, p := range params {
		owner := -1
		for i, s := range specs {
			if matchAny(s.Match, p) {
				if owner >= 0 {
					return nil, fmt.Errorf("groups: parameter %q matches both %q and %q", p, specs[owner].Name, s.Name)
				}
				owner = i
			}
		}
		if owner < 0 {
			unplaced = append(unplaced, p)
			continue
		}
		groups[owner].Params = append(groups[owner].Params, p)
	}
	if len(unplaced) > 0 {
		return nil, fmt.Errorf("groups: %d parameter(s) are in no group: %s (every trainable base parameter must match one group)",
			len(unplaced), limitList(unplaced, 12))
	}
	for i, g := range groups {
		if len(g.Params) == 0 {
			return nil, fmt.Errorf("groups[%d] (%s): matches no parameter; the parameters are: %s", i, g.Name, limitList(params, 24))
		}
	}
	return groups, nil
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func limitList(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(", ... (%d in all)", len(items))
}

// resolveTrain turns a stage's train value ("all" or a list of group names) into
// group names in model order.
func resolveTrain(train any, groups []Group) ([]string, error) {
	names := groupNames(groups)
	switch t := train.(type) {
	case nil:
		return nil, fmt.Errorf("train: missing (all, or a list of groups: %s)", strings.Join(names, ", "))
	case string:
		if t == "all" {
			return names, nil
		}
		train = []any{t}
	}
	var list []string
	if err := mapstructure.Decode(train, &list); err != nil {
		return nil, fmt.Errorf("train: want all or a list of group names: %w", err)
	}
	want := map[string]bool{}
	for _, name := range list {
		if !contains(names, name) {
			return nil, fmt.Errorf("train: unknown group %q; the groups are: %s", name, strings.Join(names, ", "))
		}
		want[name] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("train: empty list (groups: %s)", strings.Join(names, ", "))
	}
	var out []string
	for _, n := range names {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
