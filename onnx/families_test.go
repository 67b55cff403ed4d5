package onnx

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"toolkit/internal/familyfixtures"
)

// familyNames are the group names Blocks must give, for the families whose modules
// have names.
var familyNames = map[string][]string{
	"resnet18":           {"stem", "layer1", "layer2", "layer3", "layer4"},
	"resnet50":           {"stem", "layer1", "layer2", "layer3", "layer4"},
	"regnet_y_400mf":     {"stem", "block1", "block2", "block3", "block4"},
	"densenet121":        {"stem", "denseblock1", "denseblock2", "denseblock3", "denseblock4"},
	"shufflenet_v2_x1_0": {"stem", "stage2", "stage3", "stage4"},
	"mobilenet_v2":       {"stem", "stage1", "stage2", "stage3", "stage4"},
	"efficientnet_b0":    {"stem", "stage1", "stage2", "stage3", "stage4"},
	"convnext_tiny":      {"stem", "stage1", "stage2", "stage3"},
	"vit_b_16":           {"stem", "stage1", "stage2", "stage3", "stage4"},
	"swin_t":             {"stem", "stage1", "stage2", "stage3"},
}

// TestFamilyHeadsAndStages checks, on every torchvision family (tools/
// make_family_fixtures.py), that FindHead cuts exactly the classifier's parameters away
// and names the classifier's pooling, that the base is headless, and that Blocks splits
// the base into PyTorch's reference groups (the stage-level modules grouped by the
// resolution of their outputs, as PyTorch computes it; a ViT's encoder layers in four):
// the same parameters in the same order of groups, for the export that keeps the
// parameter names and for the default one, whose folded convolutions are matched to
// PyTorch's modules by their node names.
func TestFamilyHeadsAndStages(t *testing.T) {
	fx := familyfixtures.Load(t)
	for _, name := range fx.Names() {
		f := fx.Families[name]
		for _, file := range []string{"model_opset13.onnx", "model_opset17.onnx", "model_fused_opset13.onnx"} {
			t.Run(name+"/"+file, func(t *testing.T) {
				m := UntieInitializers(mustRead(t, f.Path(file)))
				h, err := FindHead(m)
				if err != nil {
					t.Fatal(err)
				}
				if h.Pool != f.Pool {
					t.Errorf("pooling %s, PyTorch's classifier %s", h.Pool, f.Pool)
				}
				base, err := Cut(m, h.Cut)
				if err != nil {
					t.Fatal(err)
				}
				if !IsHeadless(base) {
					t.Errorf("the base cut at %q is not headless", h.Cut)
				}
				fused := f.Models[file].Fused
				// Where a parameter belongs in PyTorch: its name, or the module of the
				// node that reads it (the folded convolutions of the default export).
				stageOf := referenceStages(f)
				classifier := map[string]bool{}
				for _, p := range f.ClassifierParams {
					classifier[p] = true
				}
				blocks := Blocks(base)
				var names []string
				var got [][]int // the reference stages of each block's parameters
				for _, b := range blocks {
					names = append(names, b.Name)
					var stages []int
					for _, p := range b.Params {
						s, ok := stageOf(base, p, fused)
						switch {
						case !ok:
							continue
						case classifier[p]:
							t.Errorf("block %s holds %s of the classifier", b.Name, p)
						}
						if !slices.Contains(stages, s) {
							stages = append(stages, s)
						}
					}
					got = append(got, stages)
				}
				want := make([][]int, len(f.Stages))
				for i := range want {
					want[i] = []int{i}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("blocks %v hold parameters of PyTorch's groups %v, want %v (groups: %v)", names, got, want, moduleLists(f))
				}
				if !fused {
					// Every base parameter, no classifier parameter.
					var params []string
					for _, b := range blocks {
						params = append(params, b.Params...)
					}
					for _, p := range f.Params {
						if classifier[p] == slices.Contains(params, p) {
							t.Errorf("parameter %s: in the base %v, of the classifier %v", p, !classifier[p], classifier[p])
						}
					}
				}
				if want, ok := familyNames[name]; ok && !slices.Equal(names, want) {
					t.Errorf("block names %v, want %v", names, want)
				}
			})
		}
	}
}

// referenceStages returns a function that finds the reference stage of a parameter of
// the model: by its name, or, for the default export's folded weights, by the
// PyTorch module of the node that reads it (ok is false for a parameter with neither,
// such as a BatchNormalization running statistic).
func referenceStages(f *familyfixtures.Family) func(m *Model, param string, fused bool) (int, bool) {
	byParam := map[string]int{}
	for i, s := range f.Stages {
		for _, p := range s.Params {
			byParam[p] = i
		}
	}
	return func(m *Model, param string, fused bool) (int, bool) {
		if s, ok := byParam[param]; ok {
			return s, true
		}
		if !fused {
			return 0, false
		}
		for _, n := range m.Graph.Consumers(param) {
			path := ModulePath(n.Name)
			if len(path) == 0 {
				continue
			}
			module := path[len(path)-1]
			for i, s := range f.Stages {
				for _, mod := range s.Modules {
					if module == mod || strings.HasPrefix(module, mod+".") {
						return i, true
					}
				}
			}
		}
		return 0, false
	}
}

func moduleLists(f *familyfixtures.Family) [][]string {
	var out [][]string
	for _, s := range f.Stages {
		out = append(out, s.Modules)
	}
	return out
}
