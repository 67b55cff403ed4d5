package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// commands returns every container command in a decoded YAML document.
func commands(node any) [][]string {
	var out [][]string
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if list, ok := v.([]any); ok && k == "command" {
				var cmd []string
				for _, a := range list {
					s, _ := a.(string)
					cmd = append(cmd, s)
				}
				out = append(out, cmd)
				continue
			}
			out = append(out, commands(v)...)
		}
	case []any:
		for _, v := range n {
			out = append(out, commands(v)...)
		}
	}
	return out
}

// TestDeployCommands parses the toolkit command of every manifest in deploy/ (the
// MPIJob's launcher, the Indexed Jobs and their merges) with the CLI's own commands and
// flags: a misspelt flag or command fails here, not on a cluster.
func TestDeployCommands(t *testing.T) {
	files, err := filepath.Glob("../../deploy/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("deploy/*.yaml: %v %v", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		found := false
		for _, cmd := range commands(doc) {
			i := slices.Index(cmd, "toolkit")
			if i < 0 {
				continue
			}
			found = true
			args := cmd[i+1:]
			sub, rest, err := newRootCommand().Find(args)
			if err != nil || sub.Name() != args[0] {
				t.Errorf("%s: %v: no toolkit command %q (%v)", filepath.Base(f), cmd, args[0], err)
				continue
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%s: toolkit %v: %v", filepath.Base(f), args, err)
			}
		}
		if !found {
			t.Errorf("%s runs no toolkit command", filepath.Base(f))
		}
	}
}
