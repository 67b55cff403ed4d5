package finetune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune/schedule"
	"toolkit/onnx"
)

// loadExample reads examples/NAME/config.yaml with its run folder in a temporary folder.
func loadExample(t *testing.T, name string) Config {
	t.Helper()
	cfg, err := LoadConfig(filepath.Join("..", "examples", name, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Output.Dir = filepath.Join(t.TempDir(), name)
	return *cfg
}

// TestNaiveExampleIsDiagnosedInItsFirstEpoch runs the first epoch of examples/naive (every
// group from the start at lr 0.1): diagnostics must name the failure within that epoch,
// print it once, and write it to metrics.jsonl with its fix.
func TestNaiveExampleIsDiagnosedInItsFirstEpoch(t *testing.T) {
	cfg := loadExample(t, "naive")
	cfg.Stages[0].Epochs = 1
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	batches := tr.trainLoader.Len()
	if len(res.Findings) == 0 {
		t.Fatalf("no finding in the first epoch of the naive recipe (train loss %.4g, acc %.3f)", res.History[0].TrainLoss, res.History[0].TrainAcc)
	}
	seen := map[string]bool{}
	for _, f := range res.Findings {
		t.Logf("%s step %d %s: %s", f.Kind, f.Step, f.Group, f.Message)
		if f.Epoch != 1 || f.Step > batches {
			t.Errorf("finding %s at epoch %d, step %d; want within the first epoch (%d steps)", f.Kind, f.Epoch, f.Step, batches)
		}
		if key := f.Kind + "/" + f.Group; seen[key] {
			t.Errorf("finding %s reported twice", key)
		} else {
			seen[key] = true
		}
		if !f.Repairable || !strings.Contains(f.Fix, "train: [head]") {
			t.Errorf("finding %s: fix %q, want a head-only stage first", f.Kind, f.Fix)
		}
	}
	raw, err := os.ReadFile(filepath.Join(cfg.Output.Dir, RunMetrics))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), `"finding":`); n != len(res.Findings) {
		t.Errorf("metrics.jsonl has %d finding lines, the run reported %d", n, len(res.Findings))
	}
	for _, key := range []string{`"epoch":`, `"step":`, `"stage":"all"`, `"value":`, `"message":`, `"fix":`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("metrics.jsonl lacks %s in its finding lines", key)
		}
	}
}

// TestFixedExampleRaisesNothing runs examples/fixed at reduced size (one epoch of the head,
// two of everything) for two seeds: a sound recipe must raise no finding.
func TestFixedExampleRaisesNothing(t *testing.T) {
	for _, seed := range []uint64{42, 1} {
		cfg := loadExample(t, "fixed")
		cfg.Seed = seed
		cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 2
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		res, err := tr.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			t.Errorf("seed %d: the sound recipe raised %s (stage %s, step %d, group %q): %s", seed, f.Kind, f.Stage, f.Step, f.Group, f.Message)
		}
		t.Logf("seed %d: test accuracy %.4f, loss %.4f", seed, res.TestAcc, res.TestLoss)
	}
}

// TestNaiveExampleRepaired runs examples/naive at reduced size (four epochs) with repair:
// it must reach 90% on the test images, write recipe.repaired.yaml, and end with exactly
// the weights of a fresh run of the repaired recipe (a repaired run is deterministic).
func TestNaiveExampleRepaired(t *testing.T) {
	cfg := loadExample(t, "naive")
	cfg.Stages[0].Epochs = 4
	cfg.Diagnostics.Repair = true
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Repairs) != 1 {
		t.Fatalf("%d repairs, want 1: %+v", len(res.Repairs), res.Repairs)
	}
	t.Logf("repair: %+v", res.Repairs[0])
	t.Logf("test accuracy %.4f", res.TestAcc)
	if res.TestAcc < 0.90 {
		t.Errorf("the repaired naive recipe reached %.1f%% on the test images, want >= 90%%", 100*res.TestAcc)
	}
	repaired, err := LoadConfig(filepath.Join(cfg.Output.Dir, RunRepaired))
	if err != nil {
		t.Fatalf("recipe.repaired.yaml: %v", err)
	}
	// It reads back as the recipe the run ended with (its paths made absolute).
	ran := tr.Config()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ran.ResolvePaths(cwd)
	if !reflect.DeepEqual(*repaired, ran) {
		t.Errorf("recipe.repaired.yaml reads as\n%+v\nthe run's recipe is\n%+v", *repaired, ran)
	}
	var names []string
	total := 0
	for _, s := range repaired.Stages {
		names = append(names, s.Name)
		total += s.Epochs
	}
	if !slices.Equal(names, []string{"head", "all"}) || total != 4 {
		t.Errorf("repaired stages %v over %d epochs, want [head all] over the 4 epochs of the budget", names, total)
	}
	if len(res.History) != 4 {
		t.Errorf("%d epochs in the history of the repaired run, want 4", len(res.History))
	}
	repaired.Diagnostics.Repair = false
	repaired.Output.Dir = filepath.Join(t.TempDir(), "fresh")
	fresh, err := New(*repaired, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	fres, err := fresh.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fres.Findings) != 0 {
		t.Errorf("the repaired recipe, run afresh, raised %+v", fres.Findings)
	}
	a, b := weightsOf(tr), weightsOf(fresh)
	for name, w := range a {
		if !slices.Equal(w, b[name]) {
			t.Errorf("parameter %s differs between the repaired run and a fresh run of recipe.repaired.yaml", name)
		}
	}
}

// TestRepairedRunResumes interrupts a repaired run after its repair and resumes it: the
// result must equal the uninterrupted repaired run's.
func TestRepairedRunResumes(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 3, Train: TrainAll(), LR: schedule.Rates{Rate: 0.5}}}
	cfg.Diagnostics.Repair = true
	straight, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(straight.Repairs()) == 0 {
		t.Fatalf("lr 0.5 on every group raised no repair: findings %+v", straight.Findings())
	}
	cfg.Output.Dir += "-interrupted"
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := cancelAfter{steps: 12, cancel: cancel}
	tr.hooks = append(tr.hooks, stop.hook())
	_, err = tr.Run(ctx)
	cancel()
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
	}
	if len(tr.Repairs()) == 0 {
		t.Fatalf("the run was interrupted before its repair (at step %d)", tr.Progress().Step)
	}
	resumed, err := Resume(cfg.Output.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := weightsOf(straight), weightsOf(resumed)
	for name, w := range a {
		if !slices.Equal(w, b[name]) {
			t.Errorf("parameter %s differs between the uninterrupted and the resumed repaired run", name)
		}
	}
	if got, want := len(resumed.Repairs()), len(straight.Repairs()); got != want {
		t.Errorf("resumed run: %d repairs, uninterrupted %d", got, want)
	}
}

func TestDiagnosticsOff(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want DiagnosticsConfig
	}{
		{"diagnostics: off\n", DiagnosticsConfig{Off: true}},
		{"diagnostics: false\n", DiagnosticsConfig{Off: true}},
		{"diagnostics: on\n", DiagnosticsConfig{}},
		{"diagnostics: {repair: true}\n", DiagnosticsConfig{Repair: true}},
		{"diagnostics: {every: 2}\n", DiagnosticsConfig{Every: 2}},
		{"seed: 1\n", DiagnosticsConfig{}},
	} {
		cfg, err := ParseConfig([]byte(c.yaml), "x.yaml")
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		if cfg.Diagnostics != c.want {
			t.Errorf("%q: %+v, want %+v", c.yaml, cfg.Diagnostics, c.want)
		}
	}
	if _, err := ParseConfig([]byte("diagnostics: {repiar: true}\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), `did you mean "repair"`) {
		t.Errorf("a misspelled diagnostics key: %v", err)
	}
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{Rate: 0.5}}}
	cfg.Diagnostics.Off = true
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	// Every group at lr 0.5 from the start either runs to its end or stops at a NaN;
	// either way, with the detectors off, nothing is reported, in the result or the log.
	res, err := tr.Run(context.Background())
	var nf *NonFiniteError
	switch {
	case err == nil:
		if len(res.Findings) != 0 {
			t.Errorf("diagnostics: off, yet %d findings in the result", len(res.Findings))
		}
	case errors.As(err, &nf):
		t.Logf("the run stopped: %v", err)
	default:
		t.Fatal(err)
	}
	if n := len(tr.Findings()); n != 0 {
		t.Errorf("diagnostics: off, yet %d findings in the log: %+v", n, tr.Findings())
	}
	if len(tr.History()) == 0 && err == nil {
		t.Error("the run finished without an epoch")
	}
}

func TestDeadUnits(t *testing.T) {
	// Two examples, three channels of 2 positions: channel 1 is zero everywhere,
	// channel 2 fires once in the second example.
	act := []float32{
		1, 0, 0, 0, 0, 0,
		0, 2, 0, 0, 0, 3,
	}
	alive := make([]float32, 3)
	if !aliveUnits(alive, act, []int{2, 3, 2}) || !slices.Equal(alive, []float32{1, 0, 1}) {
		t.Errorf("aliveUnits: %v, want [1 0 1]", alive)
	}
	// [N F]: feature 0 is zero in both examples, feature 1 fires in the first.
	alive = make([]float32, 2)
	if !aliveUnits(alive, []float32{0, 1, 0, 0}, []int{2, 2}) || !slices.Equal(alive, []float32{0, 1}) {
		t.Errorf("aliveUnits of [N F]: %v, want [0 1]", alive)
	}
}

// TestSampledStepsProbeEveryReLU checks that the diagnostics' sampled steps count the
// dead units of every ReLU the training program computes (the probes, which the backend
// reports as it computes them): an entry per probe, as many units as the ReLU output has
// channels (shape inference on the model), and no count on the other steps.
func TestSampledStepsProbeEveryReLU(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	var sampled, plain int
	check := Hook{Name: "check", Step: func(t2 *Trainer, info *StepInfo) error {
		r := t2.last
		if r.alive == nil {
			plain++
			return nil
		}
		sampled++
		in := cfg.Model.Input
		shapes, err := onnx.InferShapes(t2.model.IR(), map[string][]int64{t2.model.Inputs()[0].Name: {int64(r.N), int64(in.Channels), int64(in.Height), int64(in.Width)}})
		if err != nil {
			return err
		}
		if len(t2.diag.probes) == 0 {
			t.Fatal("the model has no ReLU probes")
		}
		dead, err := t2.diag.deadUnits(t2, r)
		if err != nil {
			return err
		}
		for i, p := range t2.diag.probes {
			flags, ok := r.alive[p.Tensor]
			want := int(shapes.Dims[p.Tensor][1])
			if !ok || len(flags) != want || dead[i][1] != want || dead[i][0] < 0 || dead[i][0] > want {
				t.Errorf("step %d: probe %s: %d flags (%v), counted %v, want %d units", info.Step, p.Tensor, len(flags), ok, dead[i], want)
			}
		}
		return nil
	}}
	tr, err := New(cfg, WithHooks(check))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sampled == 0 || plain == 0 {
		t.Errorf("%d sampled steps and %d others: want both", sampled, plain)
	}
}
