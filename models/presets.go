package models

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"toolkit/onnx"
)

// Group is a layer group of a preset: globs over parameter names. A parameter's names
// are its ONNX initializer name and, for each node that reads it, the PyTorch module of
// the node with the parameter's role ("layer1.0.conv1.weight" for the weight of the
// Conv /layer1/layer1.0/conv1/Conv): so a preset written with torchvision's names also
// finds the folded convolutions of a default PyTorch export (onnx::Conv_193).
type Group struct {
	Name  string
	Match []string
	// Anchor, when set, is a module the group's parameters must include (its first): a
	// model with fewer blocks than the architecture the preset describes does not fit.
	Anchor string
}

// vggBlocks makes VGG's five blocks from torchvision's layer configuration (channel
// counts, "M" for a max pool), with or without BatchNorm after each convolution. The
// globs match a features-only export ("0.weight"), a full export ("features.0.weight")
// and Keras' names through tf2onnx ("block1_conv1/..."), after the layer's block.
func vggBlocks(cfg string, bn bool) []Group {
	var groups []Group
	g := Group{Name: "block1"}
	i := 0
	for _, layer := range strings.Fields(cfg) {
		if layer == "M" {
			g.Match = append(g.Match, fmt.Sprintf("*block%d_conv*", len(groups)+1))
			groups = append(groups, g)
			g = Group{Name: fmt.Sprintf("block%d", len(groups)+1)}
			i++
			continue
		}
		idx := []int{i}
		if bn {
			idx = append(idx, i+1)
		}
		for _, k := range idx {
			g.Match = append(g.Match, fmt.Sprintf("%d.*", k), fmt.Sprintf("features.%d.*", k))
		}
		i += 2
		if bn {
			i++
		}
	}
	return groups
}

// modules makes groups from module prefixes: each group's globs are "<module>.*" and
// "<module>" for each module listed (a parameter that is a module of its own, as a
// ViT's class_token).
func modules(groups ...any) []Group {
	var out []Group
	for i := 0; i < len(groups); i += 2 {
		g := Group{Name: groups[i].(string), Anchor: groups[i+1].([]string)[0]}
		for _, m := range groups[i+1].([]string) {
			g.Match = append(g.Match, m, m+".*")
		}
		out = append(out, g)
	}
	return out
}

// seq lists the modules prefix.from ... prefix.to.
func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s.%d", prefix, i))
	}
	return out
}

// vitGroups groups a torchvision VisionTransformer of the given depth: the patch
// embedding, then the encoder layers in four groups (the final norm with the last).
func vitGroups(layers int) []Group {
	groups := []any{"stem", []string{"conv_proj", "class_token", "encoder.pos_embedding"}}
	per := layers / 4
	for k := 0; k < 4; k++ {
		var mods []string
		for l := k * per; l < (k+1)*per; l++ {
			mods = append(mods, fmt.Sprintf("encoder.layers.encoder_layer_%d", l))
		}
		if k == 3 {
			mods = append(mods, "encoder.ln")
		}
		groups = append(groups, fmt.Sprintf("encoder%d", k+1), mods)
	}
	return modules(groups...)
}

// presets returns the known presets by name: the torchvision families' stages (those of
// the auto groups, where the spatial resolution halves, under the names torchvision
// users know), and VGG's blocks.
func presets() map[string][]Group {
	vgg := map[string]string{
		"vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
		"vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
		"vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
		"vgg19": "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M",
	}
	p := map[string][]Group{}
	for name, cfg := range vgg {
		p[name] = vggBlocks(cfg, false)
		p[name+"_bn"] = vggBlocks(cfg, true)
	}
	alias := func(groups []Group, names ...string) {
		for _, n := range names {
			p[n] = groups
		}
	}
	alias(modules("stem", []string{"conv1", "bn1"}, "layer1", []string{"layer1"}, "layer2", []string{"layer2"},
		"layer3", []string{"layer3"}, "layer4", []string{"layer4"}),
		"resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
		"resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
	f := func(from, to int) []string { return seq("features", from, to) }
	alias(modules("stem", f(0, 1), "stage1", f(2, 3), "stage2", f(4, 6), "stage3", f(7, 13), "stage4", f(14, 18)),
		"mobilenet_v2")
	alias(modules("stem", f(0, 0), "stage1", f(1, 1), "stage2", f(2, 3), "stage3", f(4, 8), "stage4", f(9, 12)),
		"mobilenet_v3_small")
	alias(modules("stem", f(0, 1), "stage1", f(2, 3), "stage2", f(4, 6), "stage3", f(7, 12), "stage4", f(13, 16)),
		"mobilenet_v3_large")
	alias(modules("stem", f(0, 1), "stage1", f(2, 2), "stage2", f(3, 3), "stage3", f(4, 5), "stage4", f(6, 8)),
		"efficientnet", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
		"efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
	l := func(from, to int) []string { return seq("layers", from, to) }
	alias(modules("stem", l(0, 7), "stage1", l(8, 8), "stage2", l(9, 9), "stage3", l(10, 11), "stage4", l(12, 16)),
		"mnasnet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")
	alias(modules("stem", []string{"stem"}, "block1", []string{"trunk_output.block1"}, "block2", []string{"trunk_output.block2"},
		"block3", []string{"trunk_output.block3"}, "block4", []string{"trunk_output.block4"}),
		"regnet")
	alias(modules("stem", []string{"conv1"}, "stage2", []string{"stage2"}, "stage3", []string{"stage3"},
		"stage4", []string{"stage4", "conv5"}),
		"shufflenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")
	alias(modules("stem", f(0, 1), "stage1", f(2, 3), "stage2", f(4, 5), "stage3", f(6, 7)),
		"convnext", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large")
	d := func(names ...string) []string {
		for i, n := range names {
			names[i] = "features." + n
		}
		return names
	}
	alias(modules("stem", d("conv0", "norm0"), "denseblock1", d("denseblock1"), "denseblock2", d("transition1", "denseblock2"),
		"denseblock3", d("transition2", "denseblock3"), "denseblock4", d("transition3", "denseblock4", "norm5")),
		"densenet", "densenet121", "densenet161", "densenet169", "densenet201")
	alias(modules("stem", []string{"conv1"}, "conv2", []string{"conv2", "conv3"}, "inception3", []string{"inception3a", "inception3b"},
		"inception4", []string{"inception4a", "inception4b", "inception4c", "inception4d", "inception4e"},
		"inception5", []string{"inception5a", "inception5b"}),
		"googlenet")
	alias(modules("stem", f(0, 0), "stage1", f(3, 5), "stage2", f(7, 10), "stage3", f(12, 12)), "squeezenet1_0")
	alias(modules("stem", f(0, 0), "stage1", f(3, 4), "stage2", f(6, 7), "stage3", f(9, 12)), "squeezenet1_1")
	alias(vitGroups(12), "vit", "vit_b_16", "vit_b_32")
	alias(vitGroups(24), "vit_l", "vit_l_16", "vit_l_32")
	alias(modules("stem", f(0, 1), "stage1", f(2, 3), "stage2", f(4, 5), "stage3", append(f(6, 7), "norm")),
		"swin", "swin_t", "swin_s", "swin_b")
	alias(vitGroups(32), "vit_h", "vit_h_14")
	alias(modules("stem", f(0, 0), "stage1", f(3, 3), "stage2", f(6, 10)), "alexnet")
	return p
}

// Preset returns the layer groups of a known architecture, earliest first (the head
// group is added by the caller).
func Preset(name string) ([]Group, error) {
	g, ok := presets()[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("no layer-group preset %q (presets: %s; or use auto, or a list of {name, match})",
			name, strings.Join(PresetNames(), ", "))
	}
	return g, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var names []string
	for n := range presets() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Assigned is a preset's group with the parameters it holds.
type Assigned struct {
	Name   string
	Params []string
}

// AssignPreset puts each of params (trainable base parameters of m, in order) in the
// group of the preset whose globs match one of its names (see Group; m may be nil, and
// then only the parameter names count). Every parameter must match exactly one group,
// and every group must match a parameter.
func AssignPreset(name string, m *onnx.Model, params []string) ([]Assigned, error) {
	groups, err := Preset(name)
	if err != nil {
		return nil, err
	}
	names := ParamModuleNames(m)
	out := make([]Assigned, len(groups))
	for i, g := range groups {
		out[i].Name = g.Name
	}
	var unplaced []string
	for _, p := range params {
		owner := -1
		for i, g := range groups {
			if !matches(g.Match, append([]string{p}, names[p]...)) {
				continue
			}
			if owner >= 0 {
				return nil, fmt.Errorf("preset %s: parameter %q matches both %q and %q", name, p, groups[owner].Name, g.Name)
			}
			owner = i
		}
		if owner < 0 {
			unplaced = append(unplaced, p)
			continue
		}
		out[owner].Params = append(out[owner].Params, p)
	}
	if len(unplaced) > 0 {
		return nil, fmt.Errorf("preset %s: %d parameter(s) are in no group: %s (is the model a %s? use groups: auto, or a list of {name, match})",
			name, len(unplaced), limit(unplaced, 12), name)
	}
	for i, a := range out {
		if len(a.Params) == 0 {
			return nil, fmt.Errorf("preset %s: group %s matches no parameter of the model (is the model a %s? use groups: auto, or a list of {name, match})",
				name, a.Name, name)
		}
		if anchor := groups[i].Anchor; anchor != "" && !slices.ContainsFunc(a.Params, func(p string) bool {
			return matches([]string{anchor, anchor + ".*"}, append([]string{p}, names[p]...))
		}) {
			return nil, fmt.Errorf("preset %s: group %s has no parameter of %s (is the model a %s? use groups: auto, or a list of {name, match})",
				name, a.Name, anchor, name)
		}
	}
	return out, nil
}

func matches(globs, names []string) bool {
	for _, g := range globs {
		for _, n := range names {
			if ok, _ := path.Match(g, n); ok {
				return true
			}
		}
	}
	return false
}

func limit(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(", ... (%d in all)", len(items))
}

// roles names the parameter inputs of the ops PyTorch's modules export to, as the
// module attributes they come from.
var roles = map[string][]string{
	"Conv":               {"", "weight", "bias"},
	"ConvTranspose":      {"", "weight", "bias"},
	"Gemm":               {"", "weight", "bias"},
	"MatMul":             {"", "weight"},
	"BatchNormalization": {"", "weight", "bias", "running_mean", "running_var"},
	"LayerNormalization": {"", "weight", "bias"},
	"PRelu":              {"", "weight"},
}

// ParamModuleNames returns, for each float initializer of m that a node with a scoped
// name reads, the names it has as a parameter of that node's PyTorch module
// (onnx.ModulePath): "<module>.<role>", the role from the op and input (weight, bias,
// running_mean, ...; "param" for other ops). A nil model has none.
func ParamModuleNames(m *onnx.Model) map[string][]string {
	out := map[string][]string{}
	if m == nil || m.Graph == nil {
		return out
	}
	isParam := map[string]bool{}
	for _, t := range m.Graph.Initializers {
		if t.DataType == onnx.Float {
			isParam[t.Name] = true
		}
	}
	for _, n := range m.Graph.Nodes {
		p := onnx.ModulePath(n.Name)
		if len(p) == 0 {
			continue
		}
		module := p[len(p)-1]
		for i, in := range n.Inputs {
			if !isParam[in] {
				continue
			}
			role := "param"
			if r := roles[n.OpType]; i < len(r) && r[i] != "" {
				role = r[i]
			} else if n.OpType == "Add" {
				role = "bias"
			}
			out[in] = append(out[in], module+"."+role)
		}
	}
	return out
}

// MatchingPresets returns the presets that place every trainable parameter of the base
// m (onnx.DifferentiableParams) and leave no group empty, one name for presets that
// group alike (the shortest: resnet, not resnet18), sorted. When some of them group the
// parameters as onnx.Blocks does (groups: auto), only those.
func MatchingPresets(m *onnx.Model) []string {
	params := onnx.DifferentiableParams(m)
	if len(params) == 0 {
		return nil
	}
	isParam := map[string]bool{}
	for _, p := range params {
		isParam[p] = true
	}
	var auto [][]string
	for _, b := range onnx.Blocks(m) {
		var ps []string
		for _, p := range b.Params {
			if isParam[p] {
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			auto = append(auto, ps)
		}
	}
	byGroups := map[string]string{}
	agrees := map[string]bool{}
	for _, name := range PresetNames() {
		a, err := AssignPreset(name, m, params)
		if err != nil {
			continue
		}
		key := fmt.Sprint(a)
		if prev, ok := byGroups[key]; !ok || len(name) < len(prev) || (len(name) == len(prev) && name < prev) {
			byGroups[key] = name
		}
		same := len(a) == len(auto)
		for i := 0; same && i < len(a); i++ {
			x, y := slices.Clone(a[i].Params), slices.Clone(auto[i])
			slices.Sort(x)
			slices.Sort(y)
			same = slices.Equal(x, y)
		}
		agrees[key] = same
	}
	var out, agreeing []string
	for key, n := range byGroups {
		out = append(out, n)
		if agrees[key] {
			agreeing = append(agreeing, n)
		}
	}
	if len(agreeing) > 0 {
		out = agreeing
	}
	sort.Strings(out)
	return out
}
