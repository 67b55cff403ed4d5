package finetune

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/finetune/schedule"
	"toolkit/onnx"
)

// weightsOf copies every parameter of the trainer's model.
func weightsOf(t *Trainer) map[string][]float32 {
	out := map[string][]float32{}
	for _, name := range t.model.ParamNames() {
		out[name] = slices.Clone(t.model.Param(name))
	}
	return out
}

func TestFreezingKeepsTheBaseBitIdentical(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	before := weightsOf(tr)
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := weightsOf(tr)
	changed := 0
	for _, g := range tr.groups {
		for _, p := range g.Params {
			same := slices.Equal(before[p], after[p])
			if g.Name != HeadGroup && !same {
				t.Errorf("frozen parameter %s (group %s) changed", p, g.Name)
			}
			if g.Name == HeadGroup && !same {
				changed++
			}
		}
		if state := tr.optims[g.Name].State(); g.Name != HeadGroup && len(state.Params) != 0 {
			t.Errorf("group %s is frozen but its optimizer holds state for %d parameters", g.Name, len(state.Params))
		}
	}
	if changed == 0 {
		t.Error("training the head changed none of its parameters")
	}
}

func TestTrainingLearnsThePatterns(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages[0].LR = schedule.Rates{Rate: 1e-2}
	cfg.Stages[1].LR = schedule.Rates{Max: 1e-2, Factor: 2.6}
	cfg.Stages[1].Epochs = 6
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := tr.History()
	if len(h) != 8 {
		t.Fatalf("%d epochs of metrics, want 8", len(h))
	}
	last := h[len(h)-1]
	if last.ValAcc == nil || *last.ValAcc < 0.9 {
		for _, m := range h {
			t.Logf("epoch %d: train loss %.4f acc %.3f, val loss %.4f acc %.3f", m.Epoch, m.TrainLoss, m.TrainAcc, *m.ValLoss, *m.ValAcc)
		}
		t.Errorf("validation accuracy %v after 8 epochs; the patterns are easy, want >= 0.9", *last.ValAcc)
	}
	if h[0].TrainLoss <= last.TrainLoss {
		t.Errorf("training loss did not fall: %v -> %v", h[0].TrainLoss, last.TrainLoss)
	}
	if got := h[2].Trained; !slices.Equal(got, []string{"block1", "block2", "head"}) {
		t.Errorf("stage all trains %v", got)
	}
}

// cancelAfter cancels the run's context after a number of optimizer steps.
type cancelAfter struct {
	steps  int
	cancel context.CancelFunc
}

func (c *cancelAfter) hook() Hook {
	return Hook{Name: "cancel", Step: func(t *Trainer, info *StepInfo) error {
		c.steps--
		if c.steps == 0 {
			c.cancel()
		}
		return nil
	}}
}

// TestResumeEndsWithTheSameWeights interrupts a run twice and resumes it: the same
// weights and history as the uninterrupted run, bit for bit, in float32 and with the
// bfloat16 products (where the CPU has them).
func TestResumeEndsWithTheSameWeights(t *testing.T) {
	for _, p := range []string{"float32", "bf16"} {
		t.Run(p, func(t *testing.T) {
			if p == "bf16" && kernels.BF16Available() != nil {
				t.Skip(kernels.BF16Available())
			}
			testResumeEndsWithTheSameWeights(t, p)
		})
	}
}

func testResumeEndsWithTheSameWeights(t *testing.T, precision string) {
	cfg := testConfig(t)
	cfg.Precision = precision
	cfg.Stages[1].Gradual = true
	cfg.Optimizer.ClipNorm = 1
	cfg.Loss.LabelSmoothing = 0.1

	straight, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	cfg.Output.Dir += "-interrupted"
	// 8 batches per epoch: stop in the middle of the second stage's first epoch, then
	// once more at an epoch's end.
	for _, stopAfter := range []int{19, 5} {
		var tr *Trainer
		if stopAfter == 19 {
			tr, err = New(cfg)
		} else {
			tr, err = Resume(cfg.Output.Dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		tr.hooks = append(tr.hooks, (&cancelAfter{steps: stopAfter, cancel: cancel}).hook())
		_, err = tr.Run(ctx)
		cancel()
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
		}
	}
	resumed, err := Resume(cfg.Output.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if p := resumed.Progress(); p.Step != 24 {
		t.Fatalf("resumed at step %d, want 24", p.Step)
	}
	if _, err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, got := weightsOf(straight), weightsOf(resumed)
	for name, w := range want {
		if !slices.Equal(w, got[name]) {
			t.Errorf("parameter %s differs between the uninterrupted and the resumed run", name)
		}
	}
	hs, hr := straight.History(), resumed.History()
	if len(hs) != len(hr) {
		t.Fatalf("history of %d epochs, resumed %d", len(hs), len(hr))
	}
	for i := range hs {
		if hs[i].TrainLoss != hr[i].TrainLoss || *hs[i].ValAcc != *hr[i].ValAcc {
			t.Errorf("epoch %d: train loss %v / val acc %v, resumed %v / %v", i+1, hs[i].TrainLoss, *hs[i].ValAcc, hr[i].TrainLoss, *hr[i].ValAcc)
		}
	}
}

func TestEarlyStoppingEndsTheStage(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{
		{Name: "stuck", Epochs: 6, Train: Train("head"), LR: schedule.Rates{Rate: 1e-9}},
		{Name: "next", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}},
	}
	cfg.EarlyStopping.Patience = 2
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, m := range tr.History() {
		stages = append(stages, m.Stage)
	}
	// The first epoch sets the stage's best loss; two more without improvement end it.
	if want := []string{"stuck", "stuck", "stuck", "next"}; !slices.Equal(stages, want) {
		t.Errorf("epochs ran: %v, want %v", stages, want)
	}
}

func TestOldOpsetBaseExportsAtOpset13(t *testing.T) {
	cfg := testConfig(t)
	cfg.Model.ONNX = testBaseAt(t, 9)
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}}}
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := tr.SaveModel(path); err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Opset(""); got < 13 {
		t.Errorf("exported at opset %d, want 13 or newer", got)
	}
}

func TestSameSeedSameNumbers(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	var runs [2]*Trainer
	for i := range runs {
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		runs[i] = tr
	}
	a, b := weightsOf(runs[0]), weightsOf(runs[1])
	for name, w := range a {
		if !slices.Equal(w, b[name]) {
			t.Errorf("parameter %s differs between two runs with seed %d", name, cfg.Seed)
		}
	}
	if a, b := len(runs[0].History()), len(runs[1].History()); a == 0 || a != b {
		t.Fatalf("histories of %d and %d epochs", a, b)
	}
	for i, m := range runs[0].History() {
		if m.TrainLoss != runs[1].History()[i].TrainLoss {
			t.Errorf("epoch %d: train loss %v, then %v", i+1, m.TrainLoss, runs[1].History()[i].TrainLoss)
		}
	}
}

func TestGradualUnfreezingAddsOneGroupPerEpoch(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{{Name: "gradual", Epochs: 4, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}, Gradual: true}}
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"head"}, {"block2", "head"}, {"block1", "block2", "head"}, {"block1", "block2", "head"}}
	if n := len(tr.History()); n != len(want) {
		t.Fatalf("%d epochs in the history, want the stage's %d", n, len(want))
	}
	for i, m := range tr.History() {
		if !slices.Equal(m.Trained, want[i]) {
			t.Errorf("epoch %d trained %v, want %v", i+1, m.Trained, want[i])
		}
		for g := range m.LR {
			if !slices.Contains(want[i], g) {
				t.Errorf("epoch %d has a learning rate for the frozen group %s", i+1, g)
			}
		}
	}
}
