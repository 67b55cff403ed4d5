package models_test

import (
	"fmt"
	"slices"
	"testing"

	"toolkit/backend"
	"toolkit/internal/familyfixtures"
	"toolkit/models"
	"toolkit/onnx"
)

// TestPresetsMatchTheFamilies assigns the headless base of every torchvision family to
// its preset: with the export that keeps PyTorch's parameter names, the groups must be
// PyTorch's reference groups (tools/make_family_fixtures.py: the stage-level modules
// grouped by the resolution of their outputs); with the default export, whose folded
// convolutions have lost their names, the preset must still place every parameter, in
// the groups onnx.Blocks finds.
func TestPresetsMatchTheFamilies(t *testing.T) {
	fx := familyfixtures.Load(t)
	checked := 0
	for _, name := range fx.Names() {
		f := fx.Families[name]
		if f.Preset == "" {
			continue
		}
		for _, file := range []string{"model_opset13.onnx", "model_fused_opset13.onnx"} {
			t.Run(name+"/"+file, func(t *testing.T) {
				m, err := onnx.Read(f.Path(file))
				if err != nil {
					t.Fatal(err)
				}
				m = onnx.UntieInitializers(m)
				cut, err := onnx.HeadlessCut(m)
				if err != nil {
					t.Fatal(err)
				}
				base, err := onnx.Cut(m, cut)
				if err != nil {
					t.Fatal(err)
				}
				bm, err := backend.NewModel(base)
				if err != nil {
					t.Fatal(err)
				}
				params := bm.TrainableNames()
				got, err := models.AssignPreset(f.Preset, base, params)
				if err != nil {
					t.Fatal(err)
				}
				var want [][]string
				if f.Models[file].Fused {
					trainable := map[string]bool{}
					for _, p := range params {
						trainable[p] = true
					}
					for _, b := range onnx.Blocks(base) {
						var ps []string
						for _, p := range b.Params {
							if trainable[p] {
								ps = append(ps, p)
							}
						}
						want = append(want, ps)
					}
				} else {
					for _, s := range f.Stages {
						var ps []string
						for _, p := range s.Params {
							if slices.Contains(params, p) {
								ps = append(ps, p)
							}
						}
						want = append(want, ps)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("preset %s: %d groups, want %d", f.Preset, len(got), len(want))
				}
				for i, g := range got {
					a, b := slices.Clone(g.Params), slices.Clone(want[i])
					slices.Sort(a)
					slices.Sort(b)
					if !slices.Equal(a, b) {
						t.Errorf("preset %s group %s: %d parameters %v, want %d %v", f.Preset, g.Name, len(a), short(a), len(b), short(b))
					}
				}
				checked++
			})
		}
	}
	if checked == 0 {
		t.Error("no family has a preset")
	}
}

func short(s []string) string {
	if len(s) > 6 {
		return fmt.Sprint(s[:6]) + "..."
	}
	return fmt.Sprint(s)
}

func TestPresetErrors(t *testing.T) {
	if _, err := models.AssignPreset("resnet", nil, []string{"features.0.weight"}); err == nil ||
		err.Error() != `preset resnet: 1 parameter(s) are in no group: features.0.weight (is the model a resnet? use groups: auto, or a list of {name, match})` {
		t.Errorf("unplaced parameter: %v", err)
	}
	if _, err := models.AssignPreset("resnet", nil, []string{"conv1.weight", "layer1.0.conv1.weight"}); err == nil ||
		err.Error() != `preset resnet: group layer2 matches no parameter of the model (is the model a resnet? use groups: auto, or a list of {name, match})` {
		t.Errorf("empty group: %v", err)
	}
	if _, err := models.Preset("resnet51"); err == nil {
		t.Error("no error for an unknown preset")
	}
}
