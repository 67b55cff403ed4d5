package finetune

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigKeyTypos(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"seed: 1\nstages:\n  - {name: a, epochs: 1, learning_rate: 3}\n", `x.yaml:3: unknown key "stages[0].learning_rate"; did you mean "lr"?`},
		{"seed: 1\nhaed:\n  classes: 3\n", `x.yaml:2: unknown key "haed"; did you mean "head"?`},
		{"data:\n  batchsize: 3\n", `x.yaml:2: unknown key "data.batchsize"; did you mean "batch_size"?`},
		{"optimizer: {name: adam, wieght_decay: 0.1}\n", `unknown key "optimizer.wieght_decay"; did you mean "weight_decay"?`},
	} {
		_, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.yaml, err, c.want)
		}
	}
}

func TestConfigFromYAMLMatchesGo(t *testing.T) {
	raw := []byte(`seed: 7
model:
  onnx: base.onnx
  input: {channels: 3, height: 16, width: 16}
head: {pool: avg, dense: [32, 16], classes: 3}
groups:
  - {name: early, match: ["features.0.*"]}
  - {name: late, match: ["features.3.*"]}
stages:
  - {name: head, epochs: 1, train: [head], lr: 1e-3}
  - {name: all, epochs: 2, train: all, lr: {slice: [1e-5, 1e-3]}, schedule: {name: stlr, cut_frac: 0.2}}
data: {train: t, val_split: 0.1, batch_size: 8}
`)
	cfg, err := ParseConfig(raw, "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seed != 7 || cfg.Head.Pool != "avg" || len(cfg.Head.Dense) != 2 || cfg.Data.BatchSize != 8 || cfg.Data.ValSplit != 0.1 {
		t.Errorf("parsed %+v", cfg)
	}
	if cfg.Optimizer.Name != "adam" || cfg.Data.Preprocess.Mode != "torch" || cfg.Head.Activation != "relu" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	t.Setenv("TOOLKIT_DATA_BATCH_SIZE", "4")
	if cfg, err = ParseConfig(raw, "x.yaml"); err != nil || cfg.Data.BatchSize != 4 {
		t.Errorf("TOOLKIT_DATA_BATCH_SIZE=4 gave batch size %d (%v)", cfg.Data.BatchSize, err)
	}
}

func TestRecipeErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"unknown group", func(c *Config) { c.Stages[0].Train = []any{"block9"} }, `stages[0] (head): train: unknown group "block9"; the groups are: block1, block2, head`},
		{"negative lr", func(c *Config) { c.Stages[1].LR = -1e-3 }, "stages[1] (all): lr -0.001: must be finite and > 0"},
		{"missing lr", func(c *Config) { c.Stages[0].LR = nil }, "stages[0] (head): lr: missing"},
		{"bad schedule", func(c *Config) { c.Stages[0].Schedule = "triangle" }, `unknown schedule "triangle"`},
		{"class count", func(c *Config) { c.Head.Classes = 5 }, "head.classes is 5 but the training data has 3 classes"},
		{"no stages", func(c *Config) { c.Stages = nil }, "stages: none given"},
		{"unplaced parameter", func(c *Config) {
			c.Groups = []any{map[string]any{"name": "early", "match": []any{"features.0.*"}}}
		}, "groups: 2 parameter(s) are in no group: features.3.weight, features.3.bias"},
		{"empty group", func(c *Config) {
			c.Groups = []any{
				map[string]any{"name": "all", "match": []any{"features.*"}},
				map[string]any{"name": "none", "match": []any{"classifier.*"}},
			}
		}, "groups[1] (none): matches no parameter; the parameters are: features.0.weight"},
		{"input too small", func(c *Config) { c.Model.Input.Height, c.Model.Input.Width = 2, 2 }, "[1 3 2 2]"},
		{"channels", func(c *Config) { c.Model.Input.Channels = 1 }, `model.input: input "input" has 3 channels but model.input.channels is 1`},
		{"unwritable output", func(c *Config) {
			f := filepath.Join(filepath.Dir(c.Output.Dir), "a-file")
			os.WriteFile(f, nil, 0o644)
			c.Output.Dir = filepath.Join(f, "run")
		}, "output.dir: mkdir"},
		{"missing model", func(c *Config) { c.Model.ONNX = "/nonexistent/base.onnx" }, "/nonexistent/base.onnx: no such file"},
		{"no class folders", func(c *Config) {
			empty := filepath.Join(filepath.Dir(c.Output.Dir), "empty")
			os.MkdirAll(empty, 0o755)
			c.Data.Train = empty
		}, "data.train: "},
		{"label smoothing", func(c *Config) { c.Loss.LabelSmoothing = 1 }, "loss.label_smoothing: 1; want a value in [0, 1)"},
		{"optimizer", func(c *Config) { c.Optimizer.Name = "adagrad" }, `unknown optimizer "adagrad"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			c.change(&cfg)
			_, err := New(cfg)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant an error containing %q", err, c.want)
			}
		})
	}
}

func TestBadImages(t *testing.T) {
	cfg := testConfig(t)
	bad := filepath.Join(cfg.Data.Train, "vertical", "broken.png")
	if err := os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, WithoutDefaultHooks()); err == nil || !strings.Contains(err.Error(), "broken.png") {
		t.Errorf("on_bad_image fail: got %v, want an error naming broken.png", err)
	}
	cfg.Data.OnBadImage = "skip"
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.data.Skipped) != 1 || !strings.HasSuffix(tr.data.Skipped[0].Path, "broken.png") {
		t.Errorf("skipped %v, want broken.png", tr.data.Skipped)
	}
	if n := tr.data.Train.Len(); n != 120 {
		t.Errorf("%d training images after skipping, want 120", n)
	}
}
