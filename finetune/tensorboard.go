package finetune

import (
	"fmt"

	"toolkit/tfevents"
)

// tensorBoard writes the run's scalars as TensorBoard event files (output.tensorboard),
// through the hooks' arguments alone: per epoch (its number the step, as Keras'
// TensorBoard callback writes epoch_loss), the training loss and accuracy, the
// validation metrics the epoch has, and each trained group's rate and mean gradient
// norm; per step the diagnostics sample (every defaultEvery steps when they are off), the
// step's loss, and each updated group's rate, gradient norm and, when sampled, update
// ratio, at the global step. A resumed run starts a new event file in the same folder
// (TensorBoard reads them all): the steps between the last checkpoint and the
// interruption are then in two files, as with PyTorch's SummaryWriter.
type tensorBoard struct {
	dir string
	w   *tfevents.Writer
	// everyFew says that the step scalars go every defaultEvery steps: the diagnostics,
	// which choose the sampled steps, are off.
	everyFew bool
}

func newTensorBoardHook(dir string) Hook {
	tb := &tensorBoard{dir: dir}
	return Hook{Name: "tensorboard", Start: tb.start, Step: tb.step, Epoch: tb.epoch, Interrupt: tb.close, End: tb.end}
}

func (tb *tensorBoard) start(t *Trainer) error {
	tb.everyFew = t.Config().Diagnostics.Off
	w, err := tfevents.Create(tb.dir)
	if err != nil {
		return fmt.Errorf("output.tensorboard: %w", err)
	}
	tb.w = w
	return nil
}

// scalar is one value of a TensorBoard series, the series named by its tag.
type scalar struct {
	tag   string
	value float64
}

// scalars writes values at step, in order.
func (tb *tensorBoard) scalars(step int, values ...scalar) error {
	for _, v := range values {
		if err := tb.w.Scalar(v.tag, int64(step), v.value); err != nil {
			return fmt.Errorf("output.tensorboard: %w", err)
		}
	}
	return nil
}

func (tb *tensorBoard) step(_ *Trainer, info *StepInfo) error {
	if !info.Sampled && !(tb.everyFew && info.Step%defaultEvery == 0) {
		return nil
	}
	if err := tb.scalars(info.Step, scalar{"step/loss", info.StepLoss}); err != nil {
		return err
	}
	for _, g := range info.Groups {
		if err := tb.scalars(info.Step, scalar{"step/lr/" + g.Name, g.LR}, scalar{"step/grad_norm/" + g.Name, g.GradNorm}); err != nil {
			return err
		}
		if info.Sampled {
			if err := tb.scalars(info.Step, scalar{"step/update_ratio/" + g.Name, g.UpdateRatio}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (tb *tensorBoard) epoch(_ *Trainer, m *EpochMetrics) error {
	values := []scalar{{"epoch/train_loss", m.TrainLoss}, {"epoch/train_acc", m.TrainAcc}}
	for _, k := range monitorMetrics { // the validation metrics, as output.best reads them
		if v, ok := (MonitorConfig{Metric: k}).value(m); ok {
			values = append(values, scalar{"epoch/" + k, v})
		}
	}
	for _, g := range m.Trained {
		if lr, ok := m.LR[g]; ok {
			values = append(values, scalar{"epoch/lr/" + g, lr})
		}
		if n, ok := m.GradNorm[g]; ok {
			values = append(values, scalar{"epoch/grad_norm/" + g, n})
		}
	}
	if err := tb.scalars(m.Epoch, values...); err != nil {
		return err
	}
	if err := tb.w.Flush(); err != nil { // a running TensorBoard sees each epoch
		return fmt.Errorf("output.tensorboard: %w", err)
	}
	return nil
}

func (tb *tensorBoard) end(_ *Trainer, r *Result) error {
	if r.HasTest {
		step := 0
		if len(r.History) > 0 {
			step = r.History[len(r.History)-1].Epoch
		}
		if err := tb.scalars(step, scalar{"test/loss", r.TestLoss}, scalar{"test/acc", r.TestAcc}); err != nil {
			return err
		}
	}
	return tb.close(nil)
}

func (tb *tensorBoard) close(*Trainer) error {
	if tb.w == nil {
		return nil
	}
	err := tb.w.Close()
	tb.w = nil
	if err != nil {
		return fmt.Errorf("output.tensorboard: %w", err)
	}
	return nil
}
