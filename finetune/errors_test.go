package finetune

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune/schedule"
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
		{"unknown group", func(c *Config) { c.Stages[0].Train = Train("block9") }, `stages[0] (head): train: unknown group "block9"; the groups are: block1, block2, head`},
		{"negative lr", func(c *Config) { c.Stages[1].LR = schedule.Rates{Rate: -1e-3} }, "stages[1] (all): lr -0.001: must be finite and > 0"},
		{"missing lr", func(c *Config) { c.Stages[0].LR = schedule.Rates{} }, "stages[0] (head): lr: missing"},
		{"bad schedule", func(c *Config) { c.Stages[0].Schedule = schedule.Spec{Name: "triangle"} }, `unknown schedule "triangle"`},
		{"class count", func(c *Config) { c.Head.Classes = 5 }, "head.classes is 5 but the training data has 3 classes"},
		{"no stages", func(c *Config) { c.Stages = nil }, "stages: none given"},
		{"unplaced parameter", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"features.0.*"}}}}
		}, "groups: 2 parameter(s) are in no group: features.3.weight, features.3.bias"},
		{"empty group", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "base", Match: []string{"features.*"}}, {Name: "none", Match: []string{"classifier.*"}}}}
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
		{"batch size", func(c *Config) { c.Data.BatchSize = 0 }, "data.batch_size: 0; want at least 1"},
		{"data format", func(c *Config) { c.Data.Format = "png" }, `data.format: unknown "png"; valid: imagefolder, csv, idx`},
		{"task", func(c *Config) { c.Head.Task = "detection" }, `head.task: unknown "detection"; valid: classification, multilabel`},
		{"multilabel from a folder", func(c *Config) { c.Head.Task = TaskMultilabel }, "head.task: multilabel reads its labels from a CSV: set data.format: csv (it is imagefolder)"},
		{"on_bad_image", func(c *Config) { c.Data.OnBadImage = "ignore" }, `data.on_bad_image: unknown "ignore"; valid: fail, skip`},
		{"output.best", func(c *Config) { c.Output.Best = Monitor("val_accuracy") }, `output.best: unknown "val_accuracy"; valid: val_loss, val_acc, val_macro_f1, val_map`},
		{"output.best mode", func(c *Config) { c.Output.Best.Mode = "up" }, `output.best.mode: unknown "up"; valid: min, max`},
		{"val_map of a single-label task", func(c *Config) { c.Output.Best = Monitor("val_map") }, "output.best: val_map is a multi-label task's"},
		{"patience", func(c *Config) { c.EarlyStopping.Patience = -1 }, "early_stopping.patience: -1; want 0 (off) or more"},
		{"stage epochs", func(c *Config) { c.Stages[1].Epochs = 0 }, "stages[1] (all): epochs: 0; want at least 1"},
		{"clip_norm", func(c *Config) { c.Optimizer.ClipNorm = -1 }, "optimizer.clip_norm: -1; want 0 (off) or a positive norm"},
		{"clip_norm NaN", func(c *Config) { c.Optimizer.ClipNorm = math.NaN() }, "optimizer.clip_norm: NaN; want 0 (off) or a positive norm"},
		{"group without name", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Match: []string{"features.*"}}}}
		}, "groups[0]: missing name"},
		{"group named head", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "head", Match: []string{"features.*"}}}}
		}, `groups[0]: "head" is the head's group, added after the base's groups; name the group otherwise`},
		{"group named all", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "all", Match: []string{"features.*"}}}}
		}, `groups[0]: "all" is reserved (train: all means every group; max, factor and slice are lr's keys); name the group otherwise`},
		{"train names a group in another case", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "Early", Match: []string{"features.0.*"}}, {Name: "late", Match: []string{"features.3.*"}}}}
			c.Stages[1].Train = Train("early", "late", "head")
		}, `stages[1] (all): train: unknown group "early"; did you mean "Early"? the groups are: Early, late, head`},
		{"train lists a group twice", func(c *Config) { c.Stages[0].Train = Train("head", "head") }, `stages[0] (head): train: group "head" listed twice`},
		{"two lr forms", func(c *Config) { c.Stages[0].LR = schedule.Rates{Rate: 1e-3, Max: 1e-3} },
			"stages[0] (head): lr: a rate and {max, factor} given together; give one"},
		{"preset and list", func(c *Config) {
			c.Groups = GroupsConfig{Preset: "vgg19", List: []GroupConfig{{Name: "early", Match: []string{"features.*"}}}}
		}, "groups: preset vgg19 and a list given together; give one"},
		{"duplicate group", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"features.0.*"}}, {Name: "early", Match: []string{"features.3.*"}}}}
		}, `groups[1]: group "early" is named twice`},
		{"overlapping groups", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"features.*"}}, {Name: "weights", Match: []string{"*.weight"}}}}
		}, `groups: parameter "features.0.weight" matches both "early" and "weights"`},
		{"empty match", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{}}}}
		}, "groups[0] (early): match is empty"},
		{"no model", func(c *Config) { c.Model.ONNX = "" }, "model.onnx: missing (the base model's file)"},
		{"input channels", func(c *Config) { c.Model.Input.Channels = 2 }, "model.input.channels: 2; want 1 or 3"},
		{"input size", func(c *Config) { c.Model.Input.Height = 0 }, "model.input: height 0 and width 16 must be positive"},
		{"no train", func(c *Config) { c.Stages[0].Train = TrainConfig{} }, "stages[0] (head): train: missing (all, or a list of groups: block1, block2, head)"},
		{"empty train", func(c *Config) { c.Stages[0].Train = Train() }, "stages[0] (head): train: empty list (groups: block1, block2, head)"},
		{"slice order", func(c *Config) { c.Stages[1].LR = schedule.Rates{Slice: []float64{1e-3, 1e-5}} }, "stages[1] (all): lr slice [0.001, 1e-05]: lo must be <= hi"},
		{"per-group lr gap", func(c *Config) {
			c.Stages[1].LR = schedule.Rates{PerGroup: map[string]float64{"block1": 1e-5, "head": 1e-3}}
		},
			`stages[1] (all): lr: trained group "block2" has no rate`},
		{"schedule option", func(c *Config) {
			c.Stages[1].Schedule = schedule.Spec{Name: "stlr", Options: map[string]float64{"cut": 0.2}}
		},
			`schedule "stlr": unknown option "cut"`},
		{"classes of an image folder", func(c *Config) { c.Data.Classes = []string{"a", "b", "c"} },
			"data.classes: for IDX data only; an image folder's classes are its subfolders' names"},
		{"labels of an image folder", func(c *Config) { c.Data.Labels.Train = "labels.gz" },
			"data.labels: for IDX data only; an image folder's labels are its subfolders"},
		{"val twice", func(c *Config) { c.Data.ValSplit = 0.1 }, "data: set val or val_split, not both"},
		{"val_split", func(c *Config) { c.Data.Val, c.Data.ValSplit = "", 1 }, "data.val_split: 1; want a fraction of the training images in [0, 1), such as 0.1"},
		{"negative val_split", func(c *Config) { c.Data.Val, c.Data.ValSplit = "", -0.1 }, "data.val_split: -0.1; want a fraction of the training images in [0, 1), such as 0.1"},
		{"bad glob", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"features.["}}}}
		}, `groups[0] (early): bad glob "features.["`},
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

// TestResumeFromAnotherRecipesCheckpoint resumes a run folder whose recipe no longer
// matches its checkpoint (edited after the run, or the checkpoint copied from another
// run): each mismatch is an error that says so, never a run that silently starts
// some weights afresh.
func TestResumeFromAnotherRecipesCheckpoint(t *testing.T) {
	cfg, _ := shortRun(t)
	run := cfg.Output.Dir
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"narrower head", func(c *Config) { c.Head.Dense = []int{8} },
			`parameter "head.dense0.weight" has 2048 values, the model 1024: the checkpoint is of another recipe`},
		{"other pooling", func(c *Config) { c.Head.Pool = "avg" },
			`parameter "head.dense0.weight" has 2048 values, the model 128: the checkpoint is of another recipe`},
		{"deeper head", func(c *Config) { c.Head.Dense = []int{16, 16} },
			`the model's parameter "head.dense1.weight" is not in it: the checkpoint is of another recipe`},
		{"other groups", func(c *Config) {
			c.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"features.0.*"}}, {Name: "late", Match: []string{"features.3.*"}}}}
		}, `optimizer state of group "block1", which the recipe does not have: the checkpoint is of another recipe`},
		{"other optimizer", func(c *Config) { c.Optimizer.Name = "sgd" },
			`group block1: optim: state of a "adam" optimizer cannot load into "sgd"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			other := cfg
			other.Head.Dense = append([]int(nil), cfg.Head.Dense...)
			c.change(&other)
			raw, err := yaml.Marshal(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(run, RunConfig), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Resume(run)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), run) {
				t.Errorf("got %v\nwant an error naming %s and containing %q", err, run, c.want)
			}
		})
	}
}
