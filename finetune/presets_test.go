package finetune

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"toolkit/internal/testref"
)

// torchvisionNames returns the parameter names torchvision gives a model's features
// (as a features-only export names its initializers) and the whole model.
func torchvisionNames(t *testing.T, arch string) (features, full []string) {
	t.Helper()
	script := `import json,sys,torchvision
m = getattr(torchvision.models, sys.argv[1])()
print(json.dumps([list(m.features.state_dict().keys()), [k for k in m.state_dict().keys() if k.startswith("features.")]]))`
	out, err := exec.Command("/usr/bin/python3", "-c", script, arch).Output()
	if err != nil {
		testref.Missing(t, "/usr/bin/python3 with torchvision is not available: %v", err)
	}
	var names [2][]string
	if err := json.Unmarshal(out, &names); err != nil {
		t.Fatal(err)
	}
	return names[0], names[1]
}

func TestVGGPresetsCoverTorchvision(t *testing.T) {
	for arch, convs := range map[string][]int{"vgg16": {2, 2, 3, 3, 3}, "vgg19": {2, 2, 4, 4, 4}} {
		features, full := torchvisionNames(t, arch)
		for _, names := range [][]string{features, full} {
			groups, err := ResolveGroups(GroupsConfig{Preset: arch}, nil, names, func(string) bool { return false })
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			if len(groups) != 5 {
				t.Fatalf("%s: %d groups", arch, len(groups))
			}
			for i, g := range groups {
				if len(g.Params) != 2*convs[i] {
					t.Errorf("%s %s: %d parameters (%s), want %d", arch, g.Name, len(g.Params), strings.Join(g.Params, " "), 2*convs[i])
				}
			}
		}
	}
	if _, err := ResolveGroups(GroupsConfig{Preset: "resnet51"}, nil, nil, func(string) bool { return false }); err == nil || !strings.Contains(err.Error(), "presets: alexnet, convnext,") {
		t.Errorf("unknown preset: %v", err)
	}
}
