package finetune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// cacheConfig is testConfig without augmentation, with gradual unfreezing in the
// second stage: its head stage and the epochs that leave the lower groups frozen can
// train from cached activations (at two different cuts).
func cacheConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Data.Augment = AugmentConfig{}
	cfg.Stages[1].Train = Train("head")
	cfg.Stages[1].Gradual = true
	cfg.Stages[1].Epochs = 3
	return cfg
}

// notices returns the feature cache's notices in the trainer's log.
func notices(tr *Trainer) []Notice {
	return noticesOf(tr, "feature_cache")
}

// noticesOf returns the notices in the trainer's log whose kind starts with kind.
func noticesOf(tr *Trainer, kind string) []Notice {
	var out []Notice
	for _, r := range tr.Log() {
		if r.Notice != nil && strings.HasPrefix(r.Notice.Notice, kind) {
			out = append(out, *r.Notice)
		}
	}
	return out
}

// TestFeatureCacheSameRun checks that training from cached activations gives the weights
// and metrics of training on the images, bit for bit: a head stage, then gradual
// unfreezing (the cut moves down an epoch at a time, then no cut); and that the log
// says where the cache was used.
func TestFeatureCacheSameRun(t *testing.T) {
	var runs [2]*Trainer
	for i, mode := range []string{"off", "auto"} {
		cfg := cacheConfig(t)
		cfg.Data.FeatureCache = mode
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		runs[i] = tr
	}
	off, on := runs[0], runs[1]
	want, got := weightsOf(off), weightsOf(on)
	for name, w := range want {
		if !slices.Equal(w, got[name]) {
			t.Errorf("parameter %s differs with the feature cache", name)
		}
	}
	ho, hc := off.History(), on.History()
	if len(ho) != len(hc) {
		t.Fatalf("%d epochs, with the cache %d", len(ho), len(hc))
	}
	for i := range ho {
		if ho[i].TrainLoss != hc[i].TrainLoss || *ho[i].ValLoss != *hc[i].ValLoss || ho[i].TrainAcc != hc[i].TrainAcc {
			t.Errorf("epoch %d: train loss %v val loss %v, with the cache %v %v", i+1, ho[i].TrainLoss, *ho[i].ValLoss, hc[i].TrainLoss, *hc[i].ValLoss)
		}
	}
	if n := notices(off); len(n) != 0 {
		t.Errorf("feature_cache: off gave notices %+v", n)
	}
	ns := notices(on)
	var cuts []string
	for _, n := range ns {
		if n.Notice != "feature_cache" || !strings.Contains(n.Message, "feature cache: the frozen layers up to") {
			t.Errorf("unexpected notice %+v", n)
		}
		cuts = append(cuts, n.Stage)
	}
	// The head stage (one cut), and the second stage's epochs before gradual unfreezing
	// reaches the first group: a cut above each frozen group.
	if len(ns) < 2 || ns[0].Stage != "head" {
		t.Errorf("notices %+v: want the head stage's cut first, then the second stage's", ns)
	}
	t.Logf("notices: %+v", ns)
}

// TestFeatureCacheOffWithAugmentation checks that augmentation turns the cache off and
// that the log says why.
func TestFeatureCacheOffWithAugmentation(t *testing.T) {
	cfg := testConfig(t) // hflip on
	cfg.Stages = cfg.Stages[:1]
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := notices(tr)
	if len(ns) != 1 || ns[0].Notice != "feature_cache_off" || !strings.Contains(ns[0].Message, "data.augment (hflip) changes the images every epoch") {
		t.Errorf("notices %+v: want one feature_cache_off naming data.augment", ns)
	}
}

// TestMemoryNotice checks that each stage says, before its first step, the memory it
// plans at the recipe's batch size, once.
func TestMemoryNotice(t *testing.T) {
	cfg := testConfig(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := noticesOf(tr, "memory")
	if len(ns) != len(cfg.Stages) {
		t.Fatalf("memory notices %+v: want one for each of the %d stages", ns, len(cfg.Stages))
	}
	for i, n := range ns {
		const want = "memory: planned peak "
		batch := fmt.Sprintf(" at batch %d (activations and gradients ", cfg.Data.BatchSize)
		if n.Stage != cfg.Stages[i].Name || !strings.HasPrefix(n.Message, want) || !strings.Contains(n.Message, batch) {
			t.Errorf("notice %+v: want stage %s's planned peak at batch %d", n, cfg.Stages[i].Name, cfg.Data.BatchSize)
		}
	}
}

// TestFeatureCacheResume interrupts a cached head stage in the middle of an epoch and
// resumes it: the same weights as an uninterrupted run, and the notice once.
func TestFeatureCacheResume(t *testing.T) {
	cfg := cacheConfig(t)
	straight, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.Output.Dir += "-interrupted"
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.hooks = append(tr.hooks, (&cancelAfter{steps: 3, cancel: cancel}).hook()) // mid-epoch 1
	if _, err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v, want ErrInterrupted", err)
	}
	cancel()
	resumed, err := Resume(cfg.Output.Dir)
	if err != nil {
		t.Fatal(err)
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
	if a, b := len(notices(straight)), len(notices(resumed)); a != b {
		t.Errorf("%d notices, resumed %d", a, b)
	}
}
