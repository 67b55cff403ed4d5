package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
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

// TestMissingGradient drops a trained parameter from the step's programs: the step
// reports the gradient the program did not compute, whether the batch runs in one part
// or in parts (data.accumulate), instead of updating the parameter without one.
func TestMissingGradient(t *testing.T) {
	for _, accumulate := range []int{1, 2} {
		t.Run(fmt.Sprintf("accumulate %d", accumulate), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Data.Accumulate = accumulate
			tr, err := New(cfg, WithoutDefaultHooks())
			if err != nil {
				t.Fatal(err)
			}
			e, err := tr.planEpoch(tr.stages[0])
			if err != nil {
				t.Fatal(err)
			}
			missing := tr.trained[len(tr.trained)-1]
			tr.train(tr.trained[:len(tr.trained)-1]) // the programs built from now on leave it out
			var first trainBatch
			for b, err := range tr.batches(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				first = b
				break
			}
			if first.N < accumulate {
				t.Fatalf("a batch of %d images: fewer than the %d parts", first.N, accumulate)
			}
			_, err = tr.gradients(e, first)
			if want := fmt.Sprintf("no gradient computed for %q", missing); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("the step's error: %v; want one saying %s", err, want)
			}
		})
	}
}
