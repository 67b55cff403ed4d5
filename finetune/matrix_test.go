package finetune

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/finetune/schedule"
)

// The diagnostics matrix (issue 16): sound recipes must raise no finding. (A head
// trained alone that stays at chance at the optimizer's usual rate or above is a
// head_at_chance notice, which the lines list: nothing is failing there that a fix is
// known for.) A sound
// recipe is the staged one: the head alone for three epochs (one-cycle) at Adam 1e-4,
// 1e-3 or 3e-3, then every group for five epochs with ULMFiT rates ({max: 1e-3,
// factor: 2.6}, the slanted triangle), on the demo's data and augmentation, with every
// head of flatten or avg pooling, no hidden layer or one of 256, dropout 0 or 0.5, on
// two bases: the demo's VGG-style base and a VGG19 base pretrained the same way
// (tools/make_vgg19_fmnist.py), for three seeds.
//
// CI runs a reduced matrix: the demo base, one seed, six of the heads and rates
// (those of issue 16's false findings among them). The full matrix runs by hand:
//
//	/usr/bin/python3 tools/make_vgg19_fmnist.py /tmp/vgg19fm
//	TOOLKIT_DIAG_MATRIX=full TOOLKIT_VGG19_FMNIST_DIR=/tmp/vgg19fm go test -run DiagnosticsMatrix -v -timeout 3h ./finetune/
//
// and logs one line per recipe and seed: its findings and its test accuracy.

// matrixRecipe is one recipe of the matrix.
type matrixRecipe struct {
	base    string // demo or vgg19
	pool    string
	dense   []int
	dropout float64
	headLR  float64
	seed    uint64
}

func (r matrixRecipe) String() string {
	return fmt.Sprintf("%s pool %s dense %v dropout %g head lr %g seed %d", r.base, r.pool, r.dense, r.dropout, r.headLR, r.seed)
}

// matrixRecipes lists the full matrix, or the reduced one.
func matrixRecipes(full bool) []matrixRecipe {
	if !full {
		return []matrixRecipe{
			{"demo", "avg", []int{256}, 0.5, 1e-3, 42}, // the starter of issue 16
			{"demo", "avg", []int{}, 0.5, 1e-4, 42},
			{"demo", "flatten", []int{}, 0, 3e-3, 42},
			{"demo", "avg", []int{}, 0, 3e-3, 42},
			{"demo", "flatten", []int{256}, 0, 1e-4, 42},
			{"demo", "flatten", []int{256}, 0.5, 3e-3, 42},
		}
	}
	var out []matrixRecipe
	for _, base := range []string{"demo", "vgg19"} {
		for _, pool := range []string{"flatten", "avg"} {
			for _, dense := range [][]int{{}, {256}} {
				for _, dropout := range []float64{0, 0.5} {
					for _, lr := range []float64{1e-4, 1e-3, 3e-3} {
						for _, seed := range []uint64{42, 1, 2} {
							out = append(out, matrixRecipe{base, pool, dense, dropout, lr, seed})
						}
					}
				}
			}
		}
	}
	return out
}

// matrixConfig is the demo recipe (../config.yaml) made into r.
func matrixConfig(t *testing.T, r matrixRecipe, vgg19Dir string) Config {
	t.Helper()
	c, err := LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := *c
	cfg.Seed = r.seed
	if r.base == "vgg19" {
		cfg.Model.ONNX = filepath.Join(vgg19Dir, "base.onnx")
		cfg.Groups = GroupsConfig{Preset: "auto"}
	}
	cfg.Head.Pool, cfg.Head.Dense, cfg.Head.Dropout = r.pool, r.dense, r.dropout
	cfg.Stages = []StageConfig{
		{Name: "head", Epochs: 3, Train: Train(HeadGroup), LR: schedule.Rates{Rate: r.headLR}, Schedule: schedule.Spec{Name: "onecycle"}},
		{Name: "all", Epochs: 5, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: schedule.DefaultFactor}, Schedule: schedule.Spec{Name: "stlr"}},
	}
	cfg.Output.Dir = filepath.Join(t.TempDir(), "run")
	return cfg
}

func TestDiagnosticsMatrix(t *testing.T) {
	full := os.Getenv("TOOLKIT_DIAG_MATRIX") == "full"
	vgg19Dir := os.Getenv("TOOLKIT_VGG19_FMNIST_DIR")
	if full && vgg19Dir == "" {
		t.Fatal("TOOLKIT_DIAG_MATRIX=full needs TOOLKIT_VGG19_FMNIST_DIR, the folder of /usr/bin/python3 tools/make_vgg19_fmnist.py DIR")
	}
	if testing.Short() && !full {
		t.Skip("the reduced diagnostics matrix takes about a minute; -short leaves it out")
	}
	var summary []string
	for _, r := range matrixRecipes(full) {
		res, headEnd := matrixRun(t, matrixConfig(t, r, vgg19Dir))
		var found []string
		stuckHead := false
		for _, f := range res.Findings {
			found = append(found, fmt.Sprintf("%s (stage %s, epoch %d, step %d%s)", f.Kind, f.Stage, f.Epoch, f.Step, groupSuffix(f.Group)))
			// A head stage that ends within 10 points of chance on the 1,000 test images
			// has not learned to tell the classes apart: that finding is true (PyTorch's
			// heads on globally pooled features stay there too:
			// tools/finetune_reference.py --pool avg --dense none --head-lr 1e-4
			// --head-only), and its fix must not make the run worse.
			if f.Kind == "chance" && f.Stage == "head" && headEnd <= 0.2+0.1 {
				stuckHead = true
				continue
			}
			t.Errorf("%s: the sound recipe raised %s in stage %s, epoch %d, step %d (group %q): %s", r, f.Kind, f.Stage, f.Epoch, f.Step, f.Group, f.Message)
		}
		if len(found) == 0 {
			found = []string{"none"}
		}
		var curve []string
		for _, m := range res.History {
			curve = append(curve, fmt.Sprintf("%.0f/%.0f%% %.3f", 100*m.TrainAcc, 100**m.ValAcc, *m.ValLoss))
		}
		line := fmt.Sprintf("%s: test %.1f%% (%.1f%% after the head stage), findings: %s; epochs (train/val acc, val loss): %s",
			r, 100*res.TestAcc, 100*headEnd, strings.Join(found, ", "), strings.Join(curve, ", "))
		for _, n := range res.notices {
			line += fmt.Sprintf("; notice head_at_chance (stage %s, epoch %d)", n.Stage, n.Epoch)
		}
		if stuckHead {
			cfg := matrixConfig(t, r, vgg19Dir)
			cfg.Diagnostics.Repair = true
			repaired, _ := matrixRun(t, cfg)
			line += fmt.Sprintf("; the head stage ends at chance: repaired, test %.1f%% (%d repairs)", 100*repaired.TestAcc, len(repaired.Repairs))
			// Worse beyond the noise: the difference of two accuracies of 80-90% on
			// 1,000 images has a standard error of about 1.6 points; the issue's
			// bound for a repair is 2 points.
			if res.TestAcc-repaired.TestAcc > 0.02+1e-9 {
				t.Errorf("%s: the repair made the run worse: test %.1f%%, without it %.1f%%", r, 100*repaired.TestAcc, 100*res.TestAcc)
			}
		}
		summary = append(summary, line)
		t.Log(line)
		if !full && len(summary) == 1 {
			// A sound run with --repair is the same run: nothing to repair.
			cfg := matrixConfig(t, r, vgg19Dir)
			cfg.Diagnostics.Repair = true
			withRepair, _ := matrixRun(t, cfg)
			if withRepair.TestAcc != res.TestAcc || withRepair.TestLoss != res.TestLoss || len(withRepair.Repairs) != 0 {
				t.Errorf("%s with --repair: test %.4f (loss %.6f, %d repairs); without %.4f (%.6f)", r, withRepair.TestAcc, withRepair.TestLoss, len(withRepair.Repairs), res.TestAcc, res.TestLoss)
			}
		}
	}
	t.Logf("%d recipes", len(summary))
}

// matrixResult is a matrix run's result, its number of test images and its
// head_at_chance notices.
type matrixResult struct {
	*Result
	testN   int
	notices []Notice
}

// matrixRun runs a recipe without a run folder and returns its result and the test
// accuracy at the end of its head stage.
func matrixRun(t *testing.T, cfg Config) (matrixResult, float64) {
	t.Helper()
	headEnd := -1.0
	end := Hook{Name: "head_end", Epoch: func(tr *Trainer, m *EpochMetrics) error {
		if m.Stage == "head" && m.StageEpoch == cfg.Stages[0].Epochs {
			_, acc, err := tr.Evaluate(context.Background())
			headEnd = acc
			return err
		}
		return nil
	}}
	tr, err := New(cfg, WithoutDefaultHooks(), WithHooks(end))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ns []Notice
	for _, n := range noticesOf(tr, "head_at_chance") {
		if n.Notice == "head_at_chance" {
			ns = append(ns, n)
		}
	}
	return matrixResult{res, tr.data.Test.Len(), ns}, headEnd
}

func groupSuffix(g string) string {
	if g == "" {
		return ""
	}
	return ", group " + g
}

// TestDiagnosticsMatrixFailing runs the failing recipes with repair: examples/naive
// (every layer from the start at lr 0.1) on the demo base, and the seed's recipe
// (every layer from the start at Adam 1e-3, design.md) on the VGG19 base, whose run
// sits at chance. Each must be caught within its first epoch and repaired to within 2
// points of the sound recipe on the test images (examples/fixed; the matrix's recipe
// with the head at 1e-3). CI runs the naive recipe at four epochs
// (TestNaiveExampleRepaired); TOOLKIT_DIAG_MATRIX=full runs both at eight, three seeds.
func TestDiagnosticsMatrixFailing(t *testing.T) {
	if os.Getenv("TOOLKIT_DIAG_MATRIX") != "full" {
		t.Skip("the failing recipes at full size run with TOOLKIT_DIAG_MATRIX=full (CI: TestNaiveExampleRepaired)")
	}
	vgg19Dir := os.Getenv("TOOLKIT_VGG19_FMNIST_DIR")
	if vgg19Dir == "" {
		t.Fatal("TOOLKIT_DIAG_MATRIX=full needs TOOLKIT_VGG19_FMNIST_DIR")
	}
	for _, base := range []string{"demo", "vgg19"} {
		for _, seed := range []uint64{42, 1, 2} {
			sound := matrixConfig(t, matrixRecipe{base, "flatten", []int{256}, 0.5, 1e-3, seed}, vgg19Dir)
			failing := sound
			failing.Stages = []StageConfig{{Name: "all", Epochs: 8, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}}}
			if base == "demo" {
				failing.Stages[0].LR = schedule.Rates{Rate: 0.1}
			}
			failing.Diagnostics.Repair = true
			failing.Output.Dir = filepath.Join(t.TempDir(), "failing")
			ref, _ := matrixRun(t, sound)
			res, _ := matrixRun(t, failing)
			name := fmt.Sprintf("%s seed %d, every layer at lr %g", base, seed, failing.Stages[0].LR.Rate)
			if len(res.Findings) == 0 || res.Findings[0].Epoch != 1 {
				t.Errorf("%s: not caught in epoch 1: findings %+v", name, res.Findings)
			} else {
				f := res.Findings[0]
				t.Logf("%s: caught in epoch 1: %s at step %d", name, f.Kind, f.Step)
			}
			if len(res.Repairs) == 0 {
				t.Errorf("%s: not repaired", name)
			}
			t.Logf("%s: repaired (%d repairs), test %.1f%%; the sound recipe %.1f%%", name, len(res.Repairs), 100*res.TestAcc, 100*ref.TestAcc)
			if res.TestAcc < ref.TestAcc-0.02 {
				t.Errorf("%s: repaired to %.1f%%, more than 2 points below the sound recipe's %.1f%%", name, 100*res.TestAcc, 100*ref.TestAcc)
			}
		}
	}
}
