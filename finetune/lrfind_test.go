package finetune

import (
	"context"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune/lrfind"
	"toolkit/finetune/schedule"
)

func TestLRFindRestoresTheWeights(t *testing.T) {
	cfg := testConfig(t)
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	before := weightsOf(tr)
	opts := lrfind.Defaults()
	opts.Steps = 40
	res, err := tr.LRFind(context.Background(), 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Stage 1 (all) is tested from where it starts: after stage 0 (head) has trained.
	after := weightsOf(tr)
	changed := 0
	for name, w := range before {
		if !slices.Equal(w, after[name]) {
			changed++
			if !strings.HasPrefix(name, "toolkit_head") && !strings.Contains(name, "head") {
				t.Errorf("parameter %s outside the head changed: stage head froze it", name)
			}
		}
	}
	if changed == 0 {
		t.Error("the head stage did not run before the sweep of stage all")
	}
	if p := tr.Progress(); p.Stage != 1 || p.StageEpoch != 0 || p.Batch != 0 {
		t.Errorf("after lr-find the trainer is at %+v, want the start of stage 1", p)
	}
	if n := len(res.Recorder.LRs); n < 10 || n > 40 {
		t.Errorf("%d steps recorded, want 10 to 40", n)
	}
	if res.Valley.LR <= opts.Start || res.Valley.LR >= opts.End || res.Steep.LR <= opts.Start {
		t.Errorf("suggestions %+v %+v outside the sweep", res.Valley, res.Steep)
	}
	if r := res.Ratios; len(r) != 3 || r["head"] != 1 || r["block2"] <= r["block1"] {
		t.Errorf("ratios %v, want ULMFiT's, head 1", r)
	}
	if !strings.HasPrefix(res.Line, "{name: all, epochs: 2, train: all, lr: {max: ") {
		t.Errorf("recipe line %q, want stage all with a {max, factor} rate", res.Line)
	}
	// A second sweep from the restored state gives the same curve: nothing leaked.
	again, err := tr.LRFind(context.Background(), 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Recorder.Losses, res.Recorder.Losses) {
		t.Error("a second sweep from the restored state differs from the first")
	}
	if w := weightsOf(tr); !mapsEqual(w, after) {
		t.Error("the sweep left the weights changed")
	}
}

func mapsEqual(a, b map[string][]float32) bool {
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return len(a) == len(b)
}

func TestLRFindBadStage(t *testing.T) {
	cfg := testConfig(t)
	_, _, err := LRFind(context.Background(), cfg, "warmup", lrfind.Defaults())
	if err == nil || !strings.Contains(err.Error(), `no stage "warmup"; the stages are: head, all`) {
		t.Errorf("unknown stage: %v", err)
	}
	cfg.Stages = append(cfg.Stages, StageConfig{Name: "nothing", Epochs: 1, Train: Train(), LR: schedule.Rates{Rate: 1e-3}})
	_, _, err = LRFind(context.Background(), cfg, "nothing", lrfind.Defaults())
	if err == nil || !strings.Contains(err.Error(), "stage nothing (stages[2]) trains nothing") {
		t.Errorf("a stage that trains nothing: %v", err)
	}
}
