package finetune

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"toolkit/finetune/optim"
	"toolkit/tfevents/tfeventstest"
)

// TestTensorBoard runs the test recipe with output.tensorboard and reads its event file
// back with TensorBoard's own protocol buffers: every epoch's training and validation
// figures and each trained group's rate and mean gradient norm at the epoch's number;
// at the sampled steps the loss, each updated group's rate and gradient norm, and its
// update ratio, which a hook of the test measures itself (the norm of the update over
// the norm of the weights after it); all as float32, TensorBoard's simple_value.
func TestTensorBoard(t *testing.T) {
	cfg := testConfig(t)
	cfg.Output.TensorBoard = true
	type stepRecord struct {
		loss  float64
		lr    map[string]float64
		grad  map[string]float64
		ratio map[string]float64
	}
	steps := map[int]*stepRecord{}
	kept := map[string][]float32{}
	var ratio map[string]float64
	rec := Hook{Name: "record",
		BeforeUpdate: func(_ *Trainer, u *Update) error {
			for _, g := range u.Groups {
				optim.Keep(kept, g.Params)
			}
			return nil
		},
		AfterUpdate: func(_ *Trainer, u *Update) error {
			ratio = map[string]float64{}
			for _, g := range u.Groups {
				du, w := optim.UpdateNorms(g.Params, kept)
				ratio[g.Name] = du / w
			}
			return nil
		},
		Step: func(_ *Trainer, info *StepInfo) error {
			r := &stepRecord{loss: info.StepLoss, lr: map[string]float64{}, grad: map[string]float64{}, ratio: ratio}
			for _, g := range info.Groups {
				r.lr[g.Name], r.grad[g.Name] = g.LR, g.GradNorm
			}
			steps[info.Step] = r
			return nil
		},
	}
	tr, err := New(cfg, WithHooks(rec))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.Output.Dir, RunTensorBoard, "events.out.tfevents.*"))
	if len(files) != 1 {
		t.Fatalf("event files %v, want one", files)
	}
	evs := tfeventstest.Read(t, files[0])
	if len(evs) == 0 || evs[0].What != "file_version" {
		t.Fatalf("the file does not start with its version: %+v", evs)
	}
	got := map[string]map[int64]float64{}
	for _, ev := range evs[1:] {
		for _, v := range ev.Values {
			x, err := strconv.ParseFloat(v.SimpleValue, 64)
			if err != nil {
				t.Fatalf("%s: %v", v.Tag, err)
			}
			if got[v.Tag] == nil {
				got[v.Tag] = map[int64]float64{}
			}
			got[v.Tag][ev.Step] = x
		}
	}
	check := func(tag string, step int, want float64) {
		t.Helper()
		x, ok := got[tag][int64(step)]
		if !ok {
			t.Errorf("%s at %d: missing", tag, step)
			return
		}
		if f := float64(float32(want)); x != f && math.Abs(x-want) > 1e-6*math.Abs(want) {
			t.Errorf("%s at %d: %v, want %v", tag, step, x, want)
		}
	}
	h := tr.History()
	for _, m := range h {
		check("epoch/train_loss", m.Epoch, m.TrainLoss)
		check("epoch/train_acc", m.Epoch, m.TrainAcc)
		check("epoch/val_loss", m.Epoch, *m.ValLoss)
		check("epoch/val_acc", m.Epoch, *m.ValAcc)
		check("epoch/val_macro_f1", m.Epoch, *m.ValMacroF1)
		for _, g := range m.Trained {
			check("epoch/lr/"+g, m.Epoch, m.LR[g])
			check("epoch/grad_norm/"+g, m.Epoch, m.GradNorm[g])
		}
	}
	sampled := 0
	for step := range got["step/update_ratio/"+HeadGroup] {
		r := steps[int(step)]
		sampled++
		check("step/loss", int(step), r.loss)
		for g := range r.lr {
			check("step/lr/"+g, int(step), r.lr[g])
			check("step/grad_norm/"+g, int(step), r.grad[g])
			check("step/update_ratio/"+g, int(step), r.ratio[g])
		}
	}
	if sampled < 4 || sampled >= len(steps) {
		t.Errorf("%d sampled steps of %d", sampled, len(steps))
	}
	if len(got["step/loss"]) != sampled {
		t.Errorf("the loss at %d steps, the update ratio at %d", len(got["step/loss"]), sampled)
	}
	if _, err := os.Stat(filepath.Join(cfg.Output.Dir, RunMetrics)); err != nil {
		t.Error(err)
	}
}
