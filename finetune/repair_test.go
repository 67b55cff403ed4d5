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
	}{
		{"fresh head trained with the base: head first, then ULMFiT", []StageConfig{{Name: "all", Epochs: 8, Train: TrainAll(), LR: schedule.Rates{Rate: 0.1}}}, 0,
			diagnose.Chance, "", []string{
				"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}",
				"{name: all, epochs: 5, train: all, lr: {max: 0.001, factor: 2.6}, schedule: stlr}"}},
		{"a slice spec keeps its form, scaled under the cap", []StageConfig{{Name: "all", Epochs: 3, Train: TrainAll(), LR: schedule.Rates{Slice: []float64{1e-4, 1e-2}}, Schedule: schedule.Spec{Name: "cosine"}}}, 0,
			diagnose.LossExploding, "", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001, schedule: onecycle}",
				"{name: all, epochs: 2, train: all, lr: {slice: [1e-05, 0.001]}, schedule: cosine}"}},
		{"an exploding head stage goes down to the default rate at once", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 50.0}, Schedule: schedule.Spec{Name: "onecycle"}}}, 0,
			diagnose.LossExploding, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}"}},
		{"a sound rate is lowered tenfold", []StageConfig{{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}}, {Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Max: 1e-3, Factor: 2.6}}}, 1,
			diagnose.LossRising, "", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001}",
				"{name: all, epochs: 2, train: all, lr: {max: 0.0001, factor: 2.6}}"}},
		{"a group's finding lowers that group's rate", []StageConfig{{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-3}}, {Name: "all", Epochs: 2, Train: TrainAll(), LR: schedule.Rates{Rate: 1e-3}}}, 1,
			diagnose.UpdateRatio, "block1", []string{
				"{name: head, epochs: 1, train: [head], lr: 0.001}",
				"{name: all, epochs: 2, train: all, lr: {block1: 0.0001, block2: 0.001, head: 0.001}}"}},
		{"a head alone at chance with a low rate: the rate higher", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-4}, Schedule: schedule.Spec{Name: "onecycle"}}}, 0,
			diagnose.Chance, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}"}},
		{"a head alone at chance with a high rate: the rate lower", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-2}}}, 0,
			diagnose.Chance, "", []string{"{name: head, epochs: 3, train: [head], lr: 0.001}"}},
		{"a head alone, rising loss, low rate: lower still", []StageConfig{{Name: "head", Epochs: 3, Train: Train("head"), LR: schedule.Rates{Rate: 1e-4}}}, 0,
			diagnose.LossRising, "", []string{"{name: head, epochs: 3, train: [head], lr: 1e-05}"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Stages = c.stages
			tr, err := New(cfg, WithoutDefaultHooks())
			if err != nil {
				t.Fatal(err)
			}
			got, _ := tr.rewrite(c.stage, c.kind, c.group)
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
