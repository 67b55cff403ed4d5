package finetune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune/lrfind"
	"toolkit/finetune/schedule"
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
// says where the cache was used. Two heads: a hidden layer with its dropout after it,
// and Keras's usual head without hidden layers (pooling, Dropout, Dense), whose cache
// ends before the Dropout (issue 16: it was refused, "the frozen layers up to
// head.dropout0 hold a Dropout").
func TestFeatureCacheSameRun(t *testing.T) {
	for _, head := range []struct {
		name    string
		dense   []int
		dropout float64
		cut     string
	}{
		{"dense16", []int{16}, 0.25, "head.flatten"},
		{"keras", []int{}, 0.5, "head.flatten"},
	} {
		t.Run(head.name, func(t *testing.T) {
			var runs [2]*Trainer
			for i, mode := range []string{"off", "auto"} {
				cfg := cacheConfig(t)
				cfg.Head.Dense, cfg.Head.Dropout = head.dense, head.dropout
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
			if len(ho) != 5 || len(hc) != len(ho) {
				t.Fatalf("%d epochs, with the cache %d; want 5", len(ho), len(hc))
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
			for _, n := range ns {
				if n.Notice != "feature_cache" || !strings.Contains(n.Message, "feature cache: the frozen layers up to") {
					t.Errorf("unexpected notice %+v", n)
				}
			}
			// The head stage (one cut), and the second stage's epochs before gradual
			// unfreezing reaches the first group: a cut above each frozen group.
			if len(ns) < 2 || ns[0].Stage != "head" || !strings.Contains(ns[0].Message, "up to "+head.cut+" ") {
				t.Errorf("notices %+v: want the head stage's cut at %s first, then the second stage's", ns, head.cut)
			}
		})
	}
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

// TestFeatureCacheWithARepair repairs a head stage that trains from cached activations
// (its rate far too high: the loss explodes), so that the run goes back to the start of
// the stage with the weights restored while the cache is in use: the repaired run must
// end with the weights of a fresh run of the repaired recipe, and with those of the same
// repaired run without the cache.
func TestFeatureCacheWithARepair(t *testing.T) {
	var runs [2]*Trainer
	for i, mode := range []string{"auto", "off"} {
		cfg := cacheConfig(t)
		cfg.Data.FeatureCache = mode
		cfg.Stages[0].LR = schedule.Rates{Rate: 50}
		cfg.Diagnostics.Repair = true
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(tr.Repairs()) == 0 {
			t.Fatalf("cache %s: no repair of a head stage at lr 50: findings %+v", mode, tr.Findings())
		}
		runs[i] = tr
	}
	cached := runs[0]
	if !slices.ContainsFunc(notices(cached), func(n Notice) bool { return n.Notice == "feature_cache" && n.Stage == "head" }) {
		t.Fatalf("the head stage did not train from the cache: notices %+v", notices(cached))
	}
	fresh := cached.Config()
	fresh.Diagnostics.Repair = false
	tr, err := New(fresh, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := weightsOf(tr)
	for name, w := range want {
		if !slices.Equal(w, weightsOf(cached)[name]) {
			t.Errorf("parameter %s: the repaired run with the cache differs from a fresh run of the repaired recipe", name)
		}
		if !slices.Equal(w, weightsOf(runs[1])[name]) {
			t.Errorf("parameter %s: the repaired run without the cache differs from a fresh run of the repaired recipe", name)
		}
	}
	t.Logf("repairs: %d; stages %v", len(cached.Repairs()), cached.Repairs()[0].After)
}

// TestFeatureCacheWithLRFind runs lr-find on the second stage of a trainer whose first
// stage trains from cached activations: the sweep trains, then restores every weight;
// the run that follows must end with the weights of a run without the sweep.
func TestFeatureCacheWithLRFind(t *testing.T) {
	cfg := cacheConfig(t)
	straight, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	opts := lrfind.Defaults()
	opts.Steps = 8
	if _, err := tr.LRFind(context.Background(), 1, opts); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(notices(tr), func(n Notice) bool { return n.Notice == "feature_cache" && n.Stage == "head" }) {
		t.Fatalf("the first stage did not train from the cache: notices %+v", notices(tr))
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, got := weightsOf(straight), weightsOf(tr)
	for name, w := range want {
		if !slices.Equal(w, got[name]) {
			t.Errorf("parameter %s differs after lr-find's sweep and restore", name)
		}
	}
}
