package finetune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"toolkit/distrib"
	"toolkit/finetune/lrfind"
	"toolkit/finetune/schedule"
)

// errStopped ends a run after a number of steps (stopAfter).
var errStopped = errors.New("stopped on purpose")

// stopAfter ends the run with errStopped after steps optimizer steps.
func stopAfter(steps int) Hook {
	return Hook{Name: "stop_after", Step: func(t *Trainer, info *StepInfo) error {
		if info.Step >= steps {
			return errStopped
		}
		return nil
	}}
}

// onRanks makes a trainer per rank of n ranks of one process (distrib.NewLocal) with
// newTrainer, runs them side by side and returns them with their errors.
func onRanks(t *testing.T, n int, newTrainer func(c distrib.Comm) (*Trainer, error), run func(r int, tr *Trainer) error) ([]*Trainer, []error) {
	t.Helper()
	comms := distrib.NewLocal(n, time.Minute)
	trs := make([]*Trainer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			if trs[r], errs[r] = newTrainer(c); errs[r] == nil {
				errs[r] = run(r, trs[r])
			}
		})
	}
	wg.Wait()
	return trs, errs
}

// runOnTwoRanksUntilStopped trains cfg on two ranks of one process (onRanks), without
// the run folder's hooks, until stopAfter(steps) stops them, and returns the ranks'
// trainers; a rank that ends another way fails the test.
func runOnTwoRanksUntilStopped(t *testing.T, cfg Config, steps int) []*Trainer {
	t.Helper()
	trs, errs := onRanks(t, 2, func(c distrib.Comm) (*Trainer, error) {
		return New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(steps)), WithComm(c))
	}, func(_ int, tr *Trainer) error {
		_, err := tr.Run(context.Background())
		return err
	})
	for r, err := range errs {
		if !errors.Is(err, errStopped) {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return trs
}

// relDiff is the largest difference between a and b over the largest magnitude of b.
func relDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// checkRanks checks that every rank holds rank 0's weights bit for bit and that rank
// 0's are one process's within 1e-5 relative (the sums over ranks are taken in
// another order), and returns the largest relative difference.
func checkRanks(t *testing.T, trs []*Trainer, one map[string][]float32) float64 {
	t.Helper()
	w0 := weightsOf(trs[0])
	for r, tr := range trs[1:] {
		for name, w := range weightsOf(tr) {
			if !slices.Equal(w, w0[name]) {
				t.Errorf("rank %d: %s differs from rank 0's", r+1, name)
			}
		}
	}
	worst := 0.0
	for name, w := range one {
		d := relDiff(w0[name], w)
		worst = max(worst, d)
		if d > 1e-5 {
			t.Errorf("%s: ranks and one process differ by %.3g relative", name, d)
		}
	}
	return worst
}

// demoRanksConfig is the demo recipe's every-group stage, without dropout (each rank
// draws its own masks).
func demoRanksConfig(t *testing.T) Config {
	cfg, err := LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Head.Dropout = 0
	cfg.Stages = []StageConfig{{Name: "all", Epochs: 1, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}, Schedule: schedule.Spec{Name: "stlr"}}}
	cfg.Output.Dir = t.TempDir()
	return *cfg
}

// TestRanksMatchOneProcess trains the demo for three steps of its global batch of 32
// (pad_crop and hflip on, every group trained, diagnostics sampling every step) on two
// ranks of 16 images each and in one process: the ranks end bit-identical to each
// other, and within 1e-5 relative of the one process's weights.
func TestRanksMatchOneProcess(t *testing.T) {
	cfg := demoRanksConfig(t)
	one, err := New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(3)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Run(context.Background()); !errors.Is(err, errStopped) {
		t.Fatalf("one process: %v", err)
	}
	trs := runOnTwoRanksUntilStopped(t, cfg, 3)
	worst := checkRanks(t, trs, weightsOf(one))
	t.Logf("after 3 steps: largest relative difference from one process %.2g", worst)
	if trs[0].last.N != 32 || trs[1].last.Loss != trs[0].last.Loss || math.Abs(trs[0].last.Loss-one.last.Loss) > 1e-6*one.last.Loss {
		t.Errorf("the last step: ranks N %d loss %v %v, one process %v", trs[0].last.N, trs[0].last.Loss, trs[1].last.Loss, one.last.Loss)
	}
}

// countingComm records the length of every float32 allreduce of a rank.
type countingComm struct {
	distrib.Comm
	lengths []int
}

func (c *countingComm) AllreduceFloat32(buf []float32) error {
	c.lengths = append(c.lengths, len(buf))
	return c.Comm.AllreduceFloat32(buf)
}

// TestRanksSumEachGroupAsItFinishes checks the shape of the gradients' sums over two
// ranks: per step one allreduce per updated group, of the group's gradients, the
// model's last group first (the order in which the backward pass finishes them, which
// starts each sum while the pass goes on with the groups below: TestOnGradient in the
// backend), the same calls on both ranks.
func TestRanksSumEachGroupAsItFinishes(t *testing.T) {
	cfg := demoRanksConfig(t)
	cfg.Diagnostics.Off = true
	comms := make([]*countingComm, 2)
	trs, errs := onRanks(t, 2, func(c distrib.Comm) (*Trainer, error) {
		cc := &countingComm{Comm: c}
		comms[c.Rank()] = cc
		return New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(2)), WithComm(cc))
	}, func(r int, tr *Trainer) error {
		_, err := tr.Run(context.Background())
		return err
	})
	for r, err := range errs {
		if !errors.Is(err, errStopped) {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	var want []int
	for range 2 {
		for _, g := range slices.Backward(trs[0].groups) {
			n := 0
			for _, p := range g.Params {
				n += len(trs[0].model.Param(p))
			}
			want = append(want, n)
		}
	}
	if len(trs[0].groups) < 3 {
		t.Fatalf("%d groups: the check is weak", len(trs[0].groups))
	}
	for r, c := range comms {
		if !slices.Equal(c.lengths, want) {
			t.Errorf("rank %d: allreduces of %v values, want %v (a group's each, the last group first, per step)", r, c.lengths, want)
		}
	}
}

// TestRanksUnevenLastBatch runs a head stage from the feature cache over 120 images in
// batches of 17 on two ranks: the last batch holds one image, and rank 0's share of it
// is empty. The epoch and its validation end on both ranks (no hang), with one
// process's weights and validation loss.
func TestRanksUnevenLastBatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.Head.Dropout = 0
	cfg.Data.Augment = AugmentConfig{}
	cfg.Data.BatchSize = 17
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 1
	one, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	trs, errs := onRanks(t, 2, func(c distrib.Comm) (*Trainer, error) {
		return New(cfg, WithoutDefaultHooks(), WithComm(c))
	}, func(r int, tr *Trainer) error {
		_, err := tr.Run(context.Background())
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	checkRanks(t, trs, weightsOf(one))
	h1, h0 := one.History(), trs[0].History()
	if len(h0) != 1 || len(h1) != 1 || math.Abs(*h0[0].ValLoss-*h1[0].ValLoss) > 1e-5**h1[0].ValLoss || *h0[0].ValAcc != *h1[0].ValAcc || h0[0].TrainAcc != h1[0].TrainAcc {
		t.Errorf("history on ranks %+v, in one process %+v", h0, h1)
	}
	if n := notices(trs[0]); len(n) == 0 || n[0].Notice != "feature_cache" {
		t.Errorf("notices %+v: the stage should train from the feature cache", n)
	}
}

// TestRanksResume interrupts a run on two ranks (rank 0's context alone is cancelled,
// as a signal may reach one rank first: the ranks agree to stop at the same step) and
// resumes it in one process, then the other way round; both end within 1e-5 of an
// uninterrupted run in one process.
func TestRanksResume(t *testing.T) {
	cfg := testConfig(t)
	cfg.Head.Dropout = 0
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	cfg.Output.CheckpointEvery = 0
	whole := cfg
	whole.Output.Dir = t.TempDir()
	ref, err := New(whole)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := weightsOf(ref)
	for _, c := range []struct{ first, then int }{{2, 1}, {1, 2}} {
		t.Run(fmt.Sprintf("%d then %d", c.first, c.then), func(t *testing.T) {
			cfg := cfg
			cfg.Output.Dir = t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			_, errs := onRanks(t, c.first, func(comm distrib.Comm) (*Trainer, error) {
				opts := []Option{WithComm(comm)}
				if comm.Rank() == 0 {
					opts = append(opts, WithHooks((&cancelAfter{steps: 10, cancel: cancel}).hook()))
				}
				return New(cfg, opts...)
			}, func(r int, tr *Trainer) error {
				runCtx := context.Background()
				if r == 0 {
					runCtx = ctx
				}
				_, err := tr.Run(runCtx)
				return err
			})
			for r, err := range errs {
				if !errors.Is(err, ErrInterrupted) {
					t.Fatalf("rank %d: %v, want interrupted", r, err)
				}
			}
			trs, errs := onRanks(t, c.then, func(comm distrib.Comm) (*Trainer, error) {
				return Resume(cfg.Output.Dir, WithComm(comm))
			}, func(r int, tr *Trainer) error {
				if p := tr.Progress(); p.Step != 10 {
					return fmt.Errorf("resumed at step %d, want 10", p.Step)
				}
				_, err := tr.Run(context.Background())
				return err
			})
			for r, err := range errs {
				if err != nil {
					t.Fatalf("rank %d: %v", r, err)
				}
			}
			checkRanks(t, trs, want)
		})
	}
}

// TestRanksLRFind runs lr-find's sweep of the demo's every-group stage (8 steps of the
// global batch of 32) on two ranks of 16 images each and in one process: the ranks
// record the same losses, bit for bit, and suggest the same rate; the losses are one
// process's within 1e-5 relative, and so is the suggestion.
func TestRanksLRFind(t *testing.T) {
	cfg := demoRanksConfig(t)
	opts := lrfind.Defaults()
	opts.Steps = 8
	one, _, err := LRFind(context.Background(), cfg, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	res := make([]*LRFindResult, 2)
	_, errs := onRanks(t, 2, func(c distrib.Comm) (*Trainer, error) {
		return New(cfg, WithoutDefaultHooks(), WithComm(c))
	}, func(r int, tr *Trainer) (err error) {
		res[r], err = tr.LRFind(context.Background(), 0, opts)
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if !slices.Equal(res[0].Recorder.Losses, res[1].Recorder.Losses) || res[0].Valley != res[1].Valley || res[0].Line != res[1].Line {
		t.Errorf("the ranks differ: losses %v and %v, valley %+v and %+v", res[0].Recorder.Losses, res[1].Recorder.Losses, res[0].Valley, res[1].Valley)
	}
	got, want := res[0].Recorder.Losses, one.Recorder.Losses
	if len(got) != len(want) || len(got) != opts.Steps {
		t.Fatalf("%d losses on the ranks, %d in one process, want %d", len(got), len(want), opts.Steps)
	}
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(got[i]-want[i])/want[i])
	}
	t.Logf("losses: largest relative difference from one process %.2g; valley %.3g (one process %.3g)", worst, res[0].Valley.LR, one.Valley.LR)
	if worst > 1e-5 || res[0].Valley.LR != one.Valley.LR {
		t.Errorf("the ranks' sweep: losses %.3g relative from one process's, valley %v (one process %v)", worst, res[0].Valley.LR, one.Valley.LR)
	}
}
