package finetune

import (
	"fmt"
	"path"
	"strings"

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
// last. spec is auto (split the base at its stage boundaries, onnx.Blocks: stem,
// layer1 ... for a ResNet; also the zero GroupsConfig), the name of a preset from
// package models (resnet, mobilenet_v2, vgg16, ...), or a list of {name, match} with
// globs over parameter names. Every trainable
// base parameter must fall in exactly one group, and no group may be empty.
func ResolveGroups(spec GroupsConfig, base *onnx.Model, trainable []string, isHead func(string) bool) ([]Group, error) {
	var baseParams, headParams []string
	for _, p := range trainable {
		if isHead(p) {
			headParams = append(headParams, p)
		} else {
			baseParams = append(baseParams, p)
		}
	}
	var groups []Group
	switch s := spec.Preset; {
	case s != "" && len(spec.List) > 0:
		return nil, fmt.Errorf("groups: preset %s and a list given together; give one", s)
	case len(spec.List) > 0:
		var err error
		if groups, err = matchGroups(spec.List, baseParams); err != nil {
			return nil, err
		}
	case s == "" || s == "auto":
		groups = autoGroups(base, baseParams)
	default:
		assigned, err := models.AssignPreset(s, base, baseParams)
		if err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
		for _, a := range assigned {
			groups = append(groups, Group{Name: a.Name, Params: a.Params})
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
	if err := checkGroupSpecs(specs); err != nil {
		return nil, err
	}
	groups := make([]Group, len(specs))
	for i, s := range specs {
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

// resolveTrain turns a stage's train key (all or a list of group names) into group
// names in model order.
func resolveTrain(train TrainConfig, groups []Group) ([]string, error) {
	names := groupNames(groups)
	switch {
	case train.All:
		return names, nil
	case train.Groups == nil:
		return nil, fmt.Errorf("train: missing (all, or a list of groups: %s)", strings.Join(names, ", "))
	case len(train.Groups) == 0:
		return nil, fmt.Errorf("train: empty list (groups: %s)", strings.Join(names, ", "))
	}
	want := map[string]bool{}
	for _, name := range train.Groups {
		if !contains(names, name) {
			return nil, fmt.Errorf("train: unknown group %q; %sthe groups are: %s", name, didYouMean(name, names), strings.Join(names, ", "))
		}
		if want[name] {
			return nil, fmt.Errorf("train: group %q listed twice", name)
		}
		want[name] = true
	}
	var out []string
	for _, n := range names {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// didYouMean suggests the name that differs from s only in case, if there is one.
func didYouMean(s string, names []string) string {
	for _, n := range names {
		if strings.EqualFold(n, s) {
			return fmt.Sprintf("did you mean %q? ", n)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
