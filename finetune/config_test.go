package finetune

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"toolkit/dataset"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
	"toolkit/headbuilder"
	"toolkit/internal/yamlnode"
)

// TestRecipeYAMLErrors checks the mistakes the decoder reports, each at its line and
// key: values of the wrong kind, unknown names, and the groups' own rules.
func TestRecipeYAMLErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"stages:\n  - {name: a, epochs: 1, train: all, lr: '1e-3'}\n", `x.yaml:2: stages[0].lr: "1e-3"; want a rate such as 1e-3`},
		{"stages:\n  - name: a\n    lr: fast\n", `x.yaml:3: stages[0].lr: "fast"; want a rate`},
		{"stages:\n  - {name: a, lr: {early: 1e-5, max: 1e-3}}\n", `x.yaml:2: stages[0].lr: max belongs to ULMFiT's {max, factor}`},
		{"stages:\n  - {name: a, schedule: {name: stlr, cut_frac: true}}\n", `x.yaml:2: stages[0].schedule.cut_frac: true; want a number`},
		{"stages:\n  - {name: a, schedule: {name: onecycle, cycle_momentum: 1}}\n", `x.yaml:2: stages[0].schedule.cycle_momentum: 1; want true or false`},
		{"stages:\n  - name: a\n    schedule:\n      name: stlr\n      cut: 0.2\n", `x.yaml:5: unknown key "stages[0].schedule.cut"; did you mean "cut_frac"? (valid keys: cut_frac, name, ratio)`},
		{"stages:\n  - {name: a, schedule: triangle}\n", `x.yaml:2: stages[0].schedule: unknown schedule "triangle"`},
		{"stages:\n  - {name: a, train: head}\n", `x.yaml:2: stages[0].train: "head"; want all or a list of groups, such as [head]`},
		{"stages:\n  - {name: a, epochs: 2.5}\n", `x.yaml:2: stages[0].epochs: 2.5; want a whole number`},
		{"stages:\n  - {name: a, gradual: yes}\n", `x.yaml:2: stages[0].gradual: "yes"; want true or false`},
		{"data:\n  batch_size: many\n", `x.yaml:2: data.batch_size: "many"; want a whole number`},
		{"head:\n  pool: mean\n", `x.yaml:2: head.pool: unknown "mean"; valid: flatten, avg, max`},
		{"data: {feature_cache: on}\n", `x.yaml:1: data.feature_cache: unknown "on"; valid: auto, off`},
		{"head:\n  dense: 256\n", `x.yaml:2: head.dense: 256; want a list of whole numbers`},
		{"seed: 1\nseed: 2\n", `x.yaml:2: seed: given twice (first at line 1)`},
		{"groups: vgg20\n", `x.yaml:1: groups: no layer-group preset "vgg20"`},
		{"groups: {early: [a]}\n", `x.yaml:1: groups: a mapping; want auto, a preset's name or a list of {name, match}`},
		{"groups:\n  - {name: early, match: [\"0.*\"]}\n  - {name: early, match: [\"2.*\"]}\n", `x.yaml:3: groups[1]: group "early" is named twice`},
		{"groups:\n  - {name: all, match: [\"0.*\"]}\n", `x.yaml:2: groups[0]: "all" is reserved`},
		{"groups:\n  - {name: Early, match: [\"0.*\"]}\n  - {name: early, match: [\"2.*\"]}\n", `x.yaml:3: groups[1]: group "early" differs from group "Early" only in case; name them apart`},
		{"groups:\n  - {name: max, match: [\"0.*\"]}\n", `x.yaml:2: groups[0]: "max" is reserved`},
		{"groups:\n  - {name: early, match: []}\n", `x.yaml:2: groups[0] (early): match is empty`},
		{"groups:\n  - {name: early, match: \"0.*\"}\n", `x.yaml:2: groups[0].match: "0.*"; want a list of strings`},
		{"groups:\n  - {name: early, macth: [\"0.*\"]}\n", `x.yaml:2: unknown key "groups[0].macth"; did you mean "match"?`},
		{"diagnostics: sometimes\n", `x.yaml:1: diagnostics: "sometimes"; want off, on, or {repair: true, every: N}`},
		{"diagnostics: {off: true}\n", `x.yaml:1: unknown key "diagnostics.off"`},
		{"optimizer: {name: adam, momentum: 0.5}\n", `x.yaml:1: optimizer.momentum: an option of sgd, not of adam, which would ignore it`},
		{"optimizer: {beta1: 0.5, name: sgd}\n", `x.yaml:1: optimizer.beta1: an option of adam and adamw, not of sgd`},
		{"optimizer: {nesterov: true}\n", `x.yaml:1: optimizer.nesterov: an option of sgd, not of adam`},
		{"loss: {class_weights: equal}\n", `x.yaml:1: loss.class_weights: "equal"; want balanced or a list of weights`},
		{"loss:\n  class_weights: [1, -2]\n", `x.yaml:2: loss.class_weights: weight 2 is -2; want a finite weight >= 0`},
		{"loss:\n  class_weights: [0, 0]\n", `x.yaml:2: loss.class_weights: every weight is 0`},
		{"loss:\n  class_weights: []\n", `x.yaml:2: loss.class_weights: an empty list`},
		{"head: {classes: 3}\nloss:\n  class_weights: [1, 2]\n", `x.yaml:3: loss.class_weights: 2 weights for head.classes 3; want one per class`},
		{"loss:\n  focal_gamma: -1\n", `x.yaml:2: loss.focal_gamma: -1; want 0 (off) or a positive exponent`},
		{"head: {task: multi}\n", `x.yaml:1: head.task: unknown "multi"; valid: classification, multilabel`},
		{"head:\n  task: multilabel\n", `x.yaml:2: head.task: multilabel reads its labels from a CSV: set data.format: csv (it is imagefolder)`},
		{"loss:\n  pos_weight: balanced\n", `x.yaml:2: loss.pos_weight: for head.task: multilabel only`},
		{"head: {task: multilabel, classes: 2}\ndata: {format: csv}\nloss:\n  pos_weight: [1, 2, 3]\n", `x.yaml:4: loss.pos_weight: 3 weights for head.classes 2; want one per label`},
		{"head: {task: multilabel}\ndata: {format: csv}\nloss:\n  class_weights: balanced\n", `x.yaml:4: loss.class_weights: for a single-label task; head.task: multilabel weighs each label's positives with loss.pos_weight`},
		{"head: {task: multilabel}\ndata: {format: csv}\nloss:\n  label_smoothing: 0.1\n", `x.yaml:4: loss.label_smoothing: for a single-label task`},
		{"head: {task: multilabel}\ndata:\n  format: csv\n  sampler: balanced\n", `x.yaml:4: data.sampler: balanced draws each class equally often`},
		{"data: {format: parquet}\n", `x.yaml:1: data.format: unknown "parquet"; valid: imagefolder, csv, idx`},
		{"ema:\n  decay: 1\n", `x.yaml:2: ema.decay: 1; want 0 (off) or a decay in (0, 1)`},
		{"stages:\n  - {name: a, epochs: 2}\n  - name: b\n    epochs: 2\n    swa: 3\n", `x.yaml:5: stages[1].swa: 3; want 0 (off) or a number of the stage's last epochs, at most its 2`},
		{"ema: {decay: 0.99}\nstages:\n  - {name: a, epochs: 2, swa: 1}\n", `x.yaml:3: stages[0].swa: with ema: one weight average at a time`},
		{"- seed: 1\n", `x.yaml:1: the recipe is a list; want a mapping of seed, model, head`},
		{"seed: [1\n", `x.yaml:1: did not find expected ',' or ']'`},
	} {
		_, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant an error containing %q", c.yaml, err, c.want)
		}
	}
}

// TestGroupNamesKeepTheirCase trains a recipe whose groups and per-group rates are
// written in mixed case: the names must reach the trainer as written.
func TestGroupNamesKeepTheirCase(t *testing.T) {
	cfg := testConfig(t)
	recipe := strings.Join([]string{
		"groups:",
		`  - {name: early, match: ["features.0.*"]}`,
		`  - {name: Late, match: ["features.3.*"]}`,
		"stages:",
		"  - {name: head, epochs: 1, train: [head], lr: 1e-3}",
		"  - {name: all, epochs: 1, train: [early, Late, head], lr: {early: 1e-5, Late: 1e-4, head: 1e-3}}",
	}, "\n")
	parsed, err := ParseConfig([]byte(recipe), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Groups, cfg.Stages = parsed.Groups, parsed.Stages
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	names := groupNames(tr.groups)
	if strings.Join(names, " ") != "early Late head" {
		t.Fatalf("groups %v, want early Late head", names)
	}
	rates, err := tr.stages[1].spread.Rates(names, tr.stages[1].trained)
	if err != nil || !reflect.DeepEqual(rates, []float64{1e-5, 1e-4, 1e-3}) {
		t.Errorf("stage all: rates %v (%v), want [1e-05 0.0001 0.001]", rates, err)
	}
	cfg.Stages[1].LR = schedule.Rates{PerGroup: map[string]float64{"early": 1e-5, "late": 1e-4, "head": 1e-3}}
	if _, err := New(cfg, WithoutDefaultHooks()); err == nil || !strings.Contains(err.Error(), `lr: unknown group "late"; did you mean "Late"?`) {
		t.Errorf("a per-group rate for late, with the group Late: %v", err)
	}
}

// TestConfigRoundTrip writes recipes as the run folder does (config.yaml,
// recipe.repaired.yaml) and reads them back: the same config.
func TestConfigRoundTrip(t *testing.T) {
	every := Default()
	every.Groups = GroupsConfig{List: []GroupConfig{{Name: "early", Match: []string{"0.*", "2.*"}}, {Name: "Late", Match: []string{"5.*"}}}}
	every.Stages = []StageConfig{
		{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}, Schedule: schedule.Spec{Name: "onecycle"}},
		{Name: "ulmfit", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}, Schedule: schedule.Spec{Name: "stlr", Options: map[string]float64{"cut_frac": 0.2}}},
		{Name: "default factor", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3}},
		{Name: "slice", Epochs: 1, Train: Train("Late", "head"), LR: schedule.Rates{Slice: []float64{1e-5, 1e-3}}, Gradual: true},
		{Name: "per group", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{PerGroup: map[string]float64{"early": 1e-5, "Late": 1e-4, "head": 1e-3}},
			Schedule: schedule.Spec{Name: "onecycle", Options: map[string]float64{"cycle_momentum": 0, "div": 10}}},
		{Name: "warm", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{Slice: []float64{1e-3}}, Schedule: schedule.Spec{Name: "warmup_cosine", Options: map[string]float64{"warmup_steps": 5}}},
	}
	every.Diagnostics = DiagnosticsConfig{Repair: true, Every: 2}
	every.TrainBN = true
	every.Loss = LossConfig{LabelSmoothing: 0.1, ClassWeights: WeightsConfig{Weights: []float64{1, 2.5, 0}}, FocalGamma: 2}
	every.EMA.Decay = 0.999
	every.EarlyStopping = EarlyStoppingConfig{Patience: 2, RestoreBest: true}
	every.Output.Best = MonitorConfig{Metric: "val_acc", Mode: "min"}
	multi := Default()
	multi.Head.Task, multi.Data.Format = TaskMultilabel, "csv"
	multi.Loss.PosWeight = WeightsConfig{Weights: []float64{3, 1}}
	off := Default()
	off.Groups = GroupsConfig{Preset: "vgg19"}
	off.Loss.ClassWeights.Balanced = true
	off.Diagnostics.Off = true
	off.Stages = []StageConfig{{Name: "swa", Epochs: 3, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}, SWA: 2,
		Schedule: schedule.Spec{Name: "plateau", Options: map[string]float64{"patience": 2}}}}
	for name, cfg := range map[string]Config{"every form": every, "preset, diagnostics off": off, "multilabel": multi, "test config": testConfig(t)} {
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(raw, name)
		if err != nil {
			t.Errorf("%s: written as\n%s\nreads: %v", name, raw, err)
			continue
		}
		if !reflect.DeepEqual(*back, cfg) {
			t.Errorf("%s: written as\n%s\nreads %+v\nwant  %+v", name, raw, *back, cfg)
		}
	}
}

// TestEnvironmentOverrides sets keys from TOOLKIT_* variables: plain values, lists,
// the keys of several forms, and the keys inside diagnostics.
func TestEnvironmentOverrides(t *testing.T) {
	raw := []byte("head: {dense: [16]}\ndiagnostics: {every: 3}\n")
	t.Setenv("TOOLKIT_DATA_BATCH_SIZE", "4")
	t.Setenv("TOOLKIT_HEAD_DENSE", "[512, 256]")
	t.Setenv("TOOLKIT_MODEL_ONNX", "some: path.onnx")
	t.Setenv("TOOLKIT_GROUPS", "vgg16")
	t.Setenv("TOOLKIT_DIAGNOSTICS_REPAIR", "true")
	cfg, err := ParseConfig(raw, "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data.BatchSize != 4 || !reflect.DeepEqual(cfg.Head.Dense, []int{512, 256}) || cfg.Model.ONNX != "some: path.onnx" ||
		cfg.Groups.Preset != "vgg16" || cfg.Diagnostics != (DiagnosticsConfig{Repair: true, Every: 3}) {
		t.Errorf("from the environment: batch %d, dense %v, onnx %q, groups %+v, diagnostics %+v",
			cfg.Data.BatchSize, cfg.Head.Dense, cfg.Model.ONNX, cfg.Groups, cfg.Diagnostics)
	}
	t.Setenv("TOOLKIT_DIAGNOSTICS_REPAIR", "")
	t.Setenv("TOOLKIT_DIAGNOSTICS", "off")
	if cfg, err = ParseConfig(raw, "x.yaml"); err != nil || !cfg.Diagnostics.Off {
		t.Errorf("TOOLKIT_DIAGNOSTICS=off: %+v (%v)", cfg.Diagnostics, err)
	}
	t.Setenv("TOOLKIT_DATA_BATCH_SIZE", "many")
	if _, err := ParseConfig(raw, "x.yaml"); err == nil || err.Error() != `TOOLKIT_DATA_BATCH_SIZE=many: data.batch_size: "many"; want a whole number` {
		t.Errorf("a bad value from the environment: %v", err)
	}
}

// TestRecipesOfTheRepositoryParse reads every recipe the repository ships and the
// example in the README.
func TestRecipesOfTheRepositoryParse(t *testing.T) {
	for _, p := range []string{"../config.yaml", "../examples/naive/config.yaml", "../examples/fixed/config.yaml"} {
		if _, err := LoadConfig(p); err != nil {
			t.Error(err)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## The recipe\n\n```yaml\n")
	example, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatal("README.md: no yaml block after ## The recipe")
	}
	cfg, err := ParseConfig([]byte(example), "README.md's recipe")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Stages) != 2 || !reflect.DeepEqual(cfg.Stages[1].LR, schedule.Rates{Max: 1e-3, Factor: 2.6}) {
		t.Errorf("README.md's recipe: stages %+v", cfg.Stages)
	}
}

// TestEnumsAgreeWithTheirPackages checks the valid values the schema lists (enum tags)
// against the packages that act on them, so that the reference and the editors' schema
// offer exactly what runs.
func TestEnumsAgreeWithTheirPackages(t *testing.T) {
	enum := func(v any, field string) []string {
		f, ok := reflect.TypeOf(v).FieldByName(field)
		if !ok {
			t.Fatalf("%T has no field %s", v, field)
		}
		return yamlnode.Enum(f)
	}
	same := func(key string, tag, pkg []string) {
		if !slices.Equal(slices.Sorted(slices.Values(tag)), slices.Sorted(slices.Values(pkg))) {
			t.Errorf("%s: the schema lists %v, the package %v", key, tag, pkg)
		}
	}
	same("optimizer.name", enum(OptimizerConfig{}, "Name"), optim.Names())
	same("data.preprocess.mode", enum(PreprocessConfig{}, "Mode"), dataset.Modes)
	same("data.on_bad_image", enum(DataConfig{}, "OnBadImage"), []string{dataset.BadImageFail, dataset.BadImageSkip})
	// headbuilder lists its valid values in its errors.
	for field, spec := range map[string]headbuilder.Spec{
		"Pool": {Pool: "?", Classes: 2}, "Activation": {Activation: "?", Classes: 2}, "Init": {Init: "?", Classes: 2},
	} {
		err := spec.Validate()
		_, valid, ok := strings.Cut(fmt.Sprint(err), "; valid: ")
		if !ok {
			t.Fatalf("headbuilder: %v", err)
		}
		same("head."+strings.ToLower(field), enum(HeadConfig{}, field), strings.Split(valid, ", "))
	}
	// The formats the decoder accepts are those validate accepts.
	for _, format := range enum(DataConfig{}, "Format") {
		cfg := Default()
		cfg.Model.ONNX, cfg.Head.Classes, cfg.Data.Format = "b.onnx", 2, format
		if err := cfg.validate(); err != nil {
			t.Errorf("data.format %s: %v", format, err)
		}
	}
}

// TestOptimizerDefaults checks that a recipe reaches each optimizer with the defaults
// of package optim's one table (PyTorch's, tested there against torch.optim): a recipe
// that names adamw and no weight_decay decays by 1e-2, as PyTorch's AdamW, and one that
// sets it gets what it sets; every option of the table is a recipe key.
func TestOptimizerDefaults(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want optim.Hyper
	}{
		{"", optim.Hyper{Momentum: 0.9, Beta2: 0.999, Eps: 1e-8}},
		{"optimizer: {name: adamw}\n", optim.Hyper{Momentum: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}},
		{"optimizer: {name: adamw, weight_decay: 0}\n", optim.Hyper{Momentum: 0.9, Beta2: 0.999, Eps: 1e-8}},
		{"optimizer: {name: adamw, beta2: 0.99, weight_decay: 1e-3}\n", optim.Hyper{Momentum: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 1e-3}},
		{"optimizer: {name: sgd}\n", optim.Hyper{Momentum: 0.9}},
		{"optimizer: {name: sgd, nesterov: true, clip_norm: 1}\n", optim.Hyper{Momentum: 0.9, Nesterov: true}},
	} {
		cfg, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		o, err := newOptimizer(cfg.Optimizer)
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if got := o.State().Hyper; got != c.want {
			t.Errorf("%q: %+v, want %+v", c.yaml, got, c.want)
		}
		// Written back and read again, the recipe makes the same optimizer.
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseConfig(raw, "again.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again.Optimizer, cfg.Optimizer) {
			t.Errorf("%q: written and read back %+v, was %+v", c.yaml, again.Optimizer, cfg.Optimizer)
		}
	}
	keys := map[string]bool{}
	for _, f := range yamlnode.Fields(reflect.TypeFor[OptimizerConfig]()) {
		keys[f.Key] = true
	}
	for _, o := range optim.Options {
		if !keys[o.Key] {
			t.Errorf("optim's option %s is not a key of the recipe's optimizer section", o.Key)
		}
	}
}
