package finetune

import (
	"context"
	"errors"
	"math"
	"testing"

	"toolkit/distrib"
)

// TestAccumulate checks data.accumulate against the batch it stands for: batches of 16
// run in 2 parts and added up end where batches of 32 end (the test base has no
// BatchNorm, dropout off; class weights on, so that the parts' targets carry the
// whole batch's normaliser; the head stage from the feature cache, the last batch of
// each epoch 24 images in parts of 12), within float32 rounding; and two ranks of one
// process with accumulate 2 end as one process does.
func TestAccumulate(t *testing.T) {
	big := testConfig(t)
	big.Head.Dropout = 0
	big.Loss.ClassWeights = WeightsConfig{Balanced: true}
	big.Data.BatchSize = 32
	small := big
	small.Data.BatchSize, small.Data.Accumulate = 16, 2
	small.Output.Dir = t.TempDir()

	run := func(cfg Config, opts ...Option) *Trainer {
		t.Helper()
		tr, err := New(cfg, append([]Option{WithoutDefaultHooks()}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	want, got := run(big), run(small)
	hw, hg := want.History(), got.History()
	perEpoch := (want.data.Train.Len() + 31) / 32
	if len(hw) != len(hg) || hw[len(hw)-1].Step != hg[len(hg)-1].Step || hw[0].Step != perEpoch {
		t.Fatalf("epochs %d and %d, steps %d and %d (want %d an epoch)", len(hw), len(hg), hw[len(hw)-1].Step, hg[len(hg)-1].Step, perEpoch)
	}
	for i := range hw {
		if d := math.Abs(hw[i].TrainLoss - hg[i].TrainLoss); d > 1e-5*hw[i].TrainLoss {
			t.Errorf("epoch %d: training loss %v in parts, %v whole", i+1, hg[i].TrainLoss, hw[i].TrainLoss)
		}
		if hw[i].TrainAcc != hg[i].TrainAcc {
			t.Errorf("epoch %d: training accuracy %v in parts, %v whole", i+1, hg[i].TrainAcc, hw[i].TrainAcc)
		}
	}
	ww := weightsOf(want)
	worst := 0.0
	for name, w := range weightsOf(got) {
		d := relDiff(w, ww[name])
		worst = max(worst, d)
		if d > 1e-5 {
			t.Errorf("%s: in parts and whole differ by %.3g relative", name, d)
		}
	}
	t.Logf("largest relative difference of the weights: %.2g", worst)

	ranks := small
	ranks.Output.Dir = t.TempDir()
	trs, errs := onRanks(t, 2, func(c distrib.Comm) (*Trainer, error) {
		return New(ranks, WithoutDefaultHooks(), WithComm(c))
	}, func(_ int, tr *Trainer) error {
		_, err := tr.Run(context.Background())
		return err
	})
	for r, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	checkRanks(t, trs, ww)
}
