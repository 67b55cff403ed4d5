package finetune

import (
	"strings"
	"testing"

	"toolkit/finetune/diagnose"
	"toolkit/finetune/schedule"
)

func TestRewrite(t *testing.T) {
	for _, c := range []struct {
		name   string
		stages []StageConfig
		stage  int
		kind   diagnose.Kind
		group  string
		want   []string
		dir    string
	}{
		{"fresh head trained with the base: head first, then ULMFiT", []StageConfig{{Name: "all", Epochs: 8, Train: TrainAll(), LR: schedule.Rates{Rate: 0.1}}}, 0,
			diagnose.Chance, "", []string{
				"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}",
				"{name: all, epochs: 5, train: all, lr: {max: 0.001, factor: 2.6}, schedule: stlr}"}, "split"},
		{"a slice spec keeps its form, scaled under the cap", []StageConfig{{Name: "all", Epochs: 3, Train: TrainAll(), LR: schedule.Rates{Slice: []float64{1e-4, 1e-2}}, Schedule: schedule.Spec{Name: "cosine"}}}, 0,
			diagnose.LossExploding, "", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001, schedule: onecycle}",
				"{name: all, epochs: 2, train: all, lr: {slice: [1e-05, 0.001]}, schedule: cosine}"}, "split"},
		{"an exploding head stage goes down to the default rate at once", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 50.0}, Schedule: schedule.Spec{Name: "onecycle"}}}, 0,
			diagnose.LossExploding, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}"}, "lower"},
		{"a sound rate is lowered tenfold", []StageConfig{{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}}, {Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}}}, 1,
			diagnose.LossRising, "", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001}",
				"{name: all, epochs: 2, train: all, lr: {max: 0.0001, factor: 2.6}}"}, "lower"},
		{"a group's finding lowers that group's rate", []StageConfig{{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}}, {Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}}}, 1,
			diagnose.UpdateRatio, "block1", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001}",
				"{name: all, epochs: 2, train: all, lr: {block1: 0.0001, block2: 0.001, head: 0.001}}"}, "lower"},
		{"a head alone at chance with a low rate: the rate higher", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-4}, Schedule: schedule.Spec{Name: "onecycle"}}}, 0,
			diagnose.Chance, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}"}, "higher"},
		{"a head alone at chance with a high rate: the rate lower", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-2}}}, 0,
			diagnose.Chance, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001}"}, "lower"},
		{"a head alone, rising loss, low rate: lower still", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-4}}}, 0,
			diagnose.LossRising, "", []string{"{name: head, epochs: 3, train: [head], lr: 1e-05}"}, "lower"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Stages = c.stages
			tr, err := New(cfg, WithoutDefaultHooks())
			if err != nil {
				t.Fatal(err)
			}
			got, _, dir := tr.rewrite(c.stage, c.kind, c.group)
			if dir != c.dir {
				t.Errorf("the fix's direction is %q, want %q", dir, c.dir)
			}
			var lines []string
			for _, s := range got {
				lines = append(lines, StageLine(s))
			}
			if strings.Join(lines, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("rewritten:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(c.want, "\n"))
			}
			if _, err := planStages(got, tr.groups); err != nil {
				t.Errorf("the rewritten recipe is not valid: %v", err)
			}
		})
	}
}

// TestRepairNeverUndoesARepair checks the fix of a head stage at chance after earlier
// repairs of that stage (issue 16: a chance finding lowered the head's rate, the next
// raised it back, the next lowered it again): a fix in the opposite direction of an
// earlier repair is not applied and says why; a fix in the same direction is, up to
// maxRepairs repairs of the stage; and with repair on, a fix refused is said once as a
// repair_stopped notice.
func TestRepairNeverUndoesARepair(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-4}, Schedule: schedule.Spec{Name: "onecycle"}}}
	cfg.Diagnostics.Repair = true
	tr, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	chance := func() Finding {
		f := tr.newFinding(diagnose.Chance, "")
		tr.fill(&f)
		return f
	}
	if f := chance(); !f.Repairable || f.Direction != fixHigher {
		t.Fatalf("a head alone at chance at 1e-4, no repair yet: repairable %v, direction %q (%s); want a higher rate", f.Repairable, f.Direction, f.NotRepaired)
	}
	tr.log = append(tr.log, Record{Repair: &Repair{Kind: "chance", Epoch: 1, StageIndex: 0, Stage: "head", Direction: fixLower}})
	f := chance()
	if f.Repairable || !strings.Contains(f.NotRepaired, "would undo the repair of chance at epoch 1") {
		t.Errorf("after a repair that lowered the rate, raising it: repairable %v, not repaired %q; want refused as an undo", f.Repairable, f.NotRepaired)
	}
	var text strings.Builder
	if err := f.WriteText(&text); err != nil || !strings.Contains(text.String(), "(not repaired: ") {
		t.Errorf("the finding's text does not say it is not repaired:\n%s", text.String())
	}
	var req *repairRequest
	if err := tr.diag.repairOrStop(tr, f, []StageConfig{}, &req); err != nil || req != nil {
		t.Fatalf("repairOrStop: %v, %v", err, req)
	}
	var stops []Notice
	for _, r := range tr.log {
		if r.Notice != nil && r.Notice.Notice == "repair_stopped" {
			stops = append(stops, *r.Notice)
		}
	}
	if len(stops) != 1 || !strings.Contains(stops[0].Message, "repair stopped in stage head: ") {
		t.Errorf("notices %+v; want one repair_stopped saying why", stops)
	}

	// Lowering again is the same direction: allowed until the stage has had maxRepairs.
	cfg.Stages[0].LR = schedule.Rates{Rate: 1e-2}
	if tr, err = New(cfg, WithoutDefaultHooks()); err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= maxRepairs; n++ {
		f := chance()
		if want := n < maxRepairs; f.Repairable != want || f.Direction != fixLower {
			t.Errorf("after %d repairs lowering the rate, lowering it again: repairable %v (%s), direction %q; want repairable %v", n, f.Repairable, f.NotRepaired, f.Direction, want)
		}
		if n == maxRepairs && !strings.Contains(f.NotRepaired, "repaired 3 times") {
			t.Errorf("after %d repairs: not repaired %q, want the limit named", n, f.NotRepaired)
		}
		tr.log = append(tr.log, Record{Repair: &Repair{Kind: "chance", Epoch: 1, StageIndex: 0, Stage: "head", Direction: fixLower}})
	}
}

// TestStuckHeadIsANotice checks what a head trained alone at chance gets: below the
// optimizer's usual rate a finding whose fix raises the rate, at that rate or up to ten
// times it a head_at_chance notice and no finding (nothing the toolkit can tell helps:
// lowering made the full matrix's runs worse, raising as often worse as better), far
// above it a finding whose fix lowers the rate.
func TestStuckHeadIsANotice(t *testing.T) {
	for _, c := range []struct {
		rate   float64
		notice bool
		dir    string
	}{{1e-4, false, fixHigher}, {1e-3, true, ""}, {3e-3, true, ""}, {1e-2, false, fixLower}} {
		cfg := testConfig(t)
		cfg.Stages = []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: c.rate}, Schedule: schedule.Spec{Name: "onecycle"}}}
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		err = tr.diag.handle(tr, []diagnose.Signal{{Kind: diagnose.Chance, Seen: "validation accuracy 20.0%"}})
		if err != nil {
			t.Fatal(err)
		}
		var notices []Notice
		for _, r := range tr.log {
			if r.Notice != nil {
				notices = append(notices, *r.Notice)
			}
		}
		findings := tr.Findings()
		if c.notice {
			if len(findings) != 0 || len(notices) != 1 || notices[0].Notice != "head_at_chance" || !strings.Contains(notices[0].Message, "toolkit lr-find --stage head") {
				t.Errorf("head alone at chance at %g: findings %+v, notices %+v; want one head_at_chance notice", c.rate, findings, notices)
			}
			continue
		}
		if len(findings) != 1 || !findings[0].Repairable || findings[0].Direction != c.dir || len(notices) != 0 {
			t.Errorf("head alone at chance at %g: findings %+v, notices %+v; want a repairable finding, rates %s", c.rate, findings, notices, c.dir)
		}
	}
}
