package models

import (
	"fmt"
	"sort"
	"strings"
)

// Group is a layer group of a preset: globs over ONNX initializer names.
type Group struct {
	Name  string
	Match []string
}

// vggBlocks makes VGG's five blocks from the indices of each block's convolutions in
// torchvision's features Sequential. The globs match a features-only export ("0.weight"),
// a full export ("features.0.weight") and Keras' names through tf2onnx
// ("block1_conv1/..."), after the layer's block.
func vggBlocks(convs [][]int) []Group {
	groups := make([]Group, len(convs))
	for b, idx := range convs {
		g := Group{Name: fmt.Sprintf("block%d", b+1)}
		for _, i := range idx {
			g.Match = append(g.Match, fmt.Sprintf("%d.*", i), fmt.Sprintf("features.%d.*", i))
		}
		g.Match = append(g.Match, fmt.Sprintf("*block%d_conv*", b+1))
		groups[b] = g
	}
	return groups
}

// presets returns the known presets by name.
func presets() map[string][]Group {
	return map[string][]Group{
		"vgg11": vggBlocks([][]int{{0}, {3}, {6, 8}, {11, 13}, {16, 18}}),
		"vgg13": vggBlocks([][]int{{0, 2}, {5, 7}, {10, 12}, {15, 17}, {20, 22}}),
		"vgg16": vggBlocks([][]int{{0, 2}, {5, 7}, {10, 12, 14}, {17, 19, 21}, {24, 26, 28}}),
		"vgg19": vggBlocks([][]int{{0, 2}, {5, 7}, {10, 12, 14, 16}, {19, 21, 23, 25}, {28, 30, 32, 34}}),
	}
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
