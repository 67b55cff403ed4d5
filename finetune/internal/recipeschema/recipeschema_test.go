package recipeschema

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune"
	"toolkit/internal/testref"
	"toolkit/onnx"
)

const repo = "../../.."

// TestGeneratedFilesAreCurrent fails when README.md's recipe reference or
// docs/recipe.schema.json differ from what the schema generates now.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	wantReadme, wantSchema, err := Generate(filepath.Join(repo, "finetune"), readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, wantReadme) {
		t.Errorf("README.md's recipe reference is stale: run go generate ./finetune")
	}
	schema, err := os.ReadFile(filepath.Join(repo, SchemaFile))
	if err != nil {
		t.Fatalf("%v (go generate ./finetune writes it)", err)
	}
	if !bytes.Equal(schema, wantSchema) {
		t.Errorf("%s is stale: run go generate ./finetune", SchemaFile)
	}
}

// TestEveryKeyIsDescribed checks that the schema describes every key of the recipe.
func TestEveryKeyIsDescribed(t *testing.T) {
	comments, err := Comments(filepath.Join(repo, "finetune"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Schema(comments); err != nil {
		t.Fatal(err)
	}
	delete(comments, "HeadConfig.Pool")
	if _, err := Schema(comments); err == nil || !strings.Contains(err.Error(), "HeadConfig.Pool (key pool) has no comment") {
		t.Errorf("a key without a comment: %v", err)
	}
}

// TestSchemaAgreesWithTheDecoder validates recipes against docs/recipe.schema.json with
// Python's jsonschema (an independent validator): the repository's recipes, the
// README's and a starter config must pass, and recipes that ParseConfig rejects for
// their shape must fail, as they fail to decode.
func TestSchemaAgreesWithTheDecoder(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import jsonschema").Run(); err != nil {
		testref.Missing(t, "Python's jsonschema (Debian python3-jsonschema) is not installed: %v", err)
		return
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(readme), "## The recipe\n\n```yaml\n")
	example, _, _ := strings.Cut(rest, "```")
	base, err := onnx.Read(filepath.Join(repo, "models/fmnist-vgg/base.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	starter, err := finetune.StarterConfig("base.onnx", base, "")
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{"README.md's recipe": example, "starter config": string(starter)}
	for _, p := range []string{"config.yaml", "examples/naive/config.yaml", "examples/fixed/config.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repo, p))
		if err != nil {
			t.Fatal(err)
		}
		good[p] = string(raw)
	}
	const minimal = "model: {onnx: b.onnx}\nhead: {classes: 3}\ndata: {train: t}\n"
	good["every form"] = minimal + `groups:
  - {name: early, match: ["0.*"]}
  - {name: Late, match: ["2.*"]}
stages:
  - {name: a, epochs: 1, train: [head], lr: 1e-3, schedule: onecycle}
  - {name: b, epochs: 1, train: all, lr: {max: 1e-3}, schedule: {name: stlr, cut_frac: 0.2}}
  - {name: c, epochs: 1, train: all, lr: {slice: [1e-5, 1e-3]}, schedule: {name: onecycle, cycle_momentum: false}}
  - {name: d, epochs: 1, train: all, lr: {early: 1e-5, Late: 1e-4, head: 1e-3}, gradual: true}
  - {name: e, epochs: 1, train: all, lr: {slice: [1e-3]}, schedule: {name: warmup, warmup_steps: 10}}
diagnostics: off
`
	good["preset, diagnostics as a mapping"] = minimal + "groups: vgg19\nstages: [{epochs: 1, train: all, lr: 0.001}]\ndiagnostics: {repair: true, every: 2}\n"
	// doc is a whole recipe but for one mistake, in the head, the data, a stage or
	// another key.
	doc := func(head, data, stage, extra string) string {
		if stage == "" {
			stage = "{epochs: 1, train: all, lr: 1e-3}"
		}
		return "model: {onnx: b.onnx}\nhead: {classes: 3" + head + "}\ndata: {train: t" + data + "}\nstages:\n  - " + stage + "\n" + extra
	}
	stage := func(s string) string { return doc("", "", s, "") }
	bad := map[string]string{
		"unknown key":           stage("{epochs: 1, train: all, lr: 1e-3, learning_rate: 3}"),
		"lr as text":            stage("{epochs: 1, train: all, lr: '1e-3'}"),
		"lr zero":               stage("{epochs: 1, train: all, lr: 0}"),
		"lr max with a group":   stage("{epochs: 1, train: all, lr: {max: 1e-3, head: 1e-3}}"),
		"train a bare name":     stage("{epochs: 1, train: head, lr: 1e-3}"),
		"schedule unknown":      stage("{epochs: 1, train: all, lr: 1e-3, schedule: triangle}"),
		"schedule option bool":  stage("{epochs: 1, train: all, lr: 1e-3, schedule: {name: stlr, cut_frac: true}}"),
		"schedule option other": stage("{epochs: 1, train: all, lr: 1e-3, schedule: {name: stlr, div: 2}}"),
		"cycle_momentum 1":      stage("{epochs: 1, train: all, lr: 1e-3, schedule: {name: onecycle, cycle_momentum: 1}}"),
		"epochs not whole":      stage("{epochs: 1.5, train: all, lr: 1e-3}"),
		"pool":                  doc(", pool: mean", "", "", ""),
		"batch size as text":    doc("", ", batch_size: '32'", "", ""),
		"group named all":       doc("", "", "", "groups: [{name: all, match: [\"0.*\"]}]\n"),
		"group named head":      doc("", "", "", "groups: [{name: head, match: [\"0.*\"]}]\n"),
		"group without match":   doc("", "", "", "groups: [{name: early}]\n"),
		"preset":                doc("", "", "", "groups: vgg20\n"),
		"diagnostics mapping":   doc("", "", "", "diagnostics: {off: true}\n"),
	}
	dir := t.TempDir()
	write := func(kind, name, text string) string {
		var v any
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		path := filepath.Join(dir, kind+"-"+strings.NewReplacer(" ", "_", "/", "_", "'", "").Replace(name)+".json")
		if err := os.WriteFile(path, js, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var files []string
	for name, text := range good {
		if _, err := finetune.ParseConfig([]byte(text), name); err != nil {
			t.Errorf("%s: the decoder rejects it: %v", name, err)
		}
		files = append(files, write("good", name, text))
	}
	for name, text := range bad {
		if _, err := finetune.ParseConfig([]byte(text), name); err == nil {
			t.Errorf("%s: the decoder accepts it", name)
		}
		files = append(files, write("bad", name, text))
	}
	script := `
import json, os, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
v = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    errors = list(v.iter_errors(json.load(open(path))))
    print(os.path.basename(path), len(errors), errors[0].message[:120].replace("\n", " ") if errors else "")
`
	out, err := exec.Command(py, append([]string{"-c", script, filepath.Join(repo, SchemaFile)}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("jsonschema: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		file, rest, _ := strings.Cut(line, " ")
		count, msg, _ := strings.Cut(rest, " ")
		switch {
		case strings.HasPrefix(file, "good-") && count != "0":
			t.Errorf("%s: the schema rejects it: %s", file, msg)
		case strings.HasPrefix(file, "bad-") && count != "1":
			t.Errorf("%s: the schema finds %s errors, want the one mistake: %s", file, count, msg)
		}
	}
	if n := strings.Count(string(out), "\n"); n != len(files) {
		t.Errorf("jsonschema checked %d files of %d:\n%s", n, len(files), out)
	}
}
