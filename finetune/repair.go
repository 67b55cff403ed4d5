package finetune

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune/diagnose"
	"toolkit/finetune/schedule"
)

// This file is the one place that rewrites recipes: the fixes of findings, the repairs
// that apply them, and the stage lines lr-find suggests. It edits the typed stages
// (StageConfig: TrainConfig, schedule.Rates, schedule.Spec) and writes them back with
// the forms and keys the recipe uses, so that a rewritten recipe loads as the same
// stages.

// maxRepairs is how often one stage may be repaired before the run stops repairing it.
const maxRepairs = 3

// soundRate is the largest rate the fixes give a group: the usual default of the
// optimizer (Keras' and fastai's 1e-3 for Adam, 1e-2 for SGD with momentum).
func soundRate(optimizer string) float64 {
	if optimizer == "sgd" {
		return 1e-2
	}
	return 1e-3
}

// repairRequest asks the loop to go back to the start of the failing stage and go on
// with stages in place of the recipe's.
type repairRequest struct {
	finding Finding
	stages  []StageConfig
	dir     string // the fix's direction (rewrite)
}

func (r *repairRequest) Error() string {
	return fmt.Sprintf("repair of %s requested", r.finding.Kind)
}

// fill sets the finding's fix, and whether it can be repaired, and returns the recipe's
// stages as the fix rewrites them (nil for an advice-only fix).
func (t *Trainer) fill(f *Finding) []StageConfig {
	i := t.progress.Stage
	if diagnose.Kind(f.Kind) == diagnose.Overfitting {
		f.Fix = "early_stopping: {patience: 2}        # stop a stage when validation stops improving\n" +
			"optimizer: {weight_decay: 1e-4}       # or more: regularise the weights\n" +
			"data: {augment: {hflip: true, pad_crop: 4}}   # more varied training images\n" +
			"head: {dropout: 0.5}                  # or more"
		return nil
	}
	if _, slow := t.slowHead(i, diagnose.Kind(f.Kind)); slow {
		f.Meaning = "the new head has not learned yet: the base is frozen, so nothing pretrained was detuned; at this rate the head moves too slowly to leave chance"
	}
	stages, why, dir := t.rewrite(i, diagnose.Kind(f.Kind), f.Group)
	var b strings.Builder
	if why != "" {
		fmt.Fprintf(&b, "# %s\n", why)
	}
	b.WriteString("stages:\n")
	for _, s := range stages {
		fmt.Fprintf(&b, "  - %s\n", StageLine(s))
	}
	f.Fix = b.String()
	f.Direction = dir
	f.NotRepaired = t.repairRefused(i, dir)
	f.Repairable = f.NotRepaired == ""
	return stages
}

// The directions of a fix: the stage split into the head alone then its groups, or
// its rates made lower or higher.
const (
	fixSplit  = "split"
	fixLower  = "lower"
	fixHigher = "higher"
)

// repairRefused says why a fix of stage i in direction dir is not applied ("" when it
// may be): it would undo an earlier repair of the stage (rates raised after they were
// lowered, or lowered after they were raised: a repair that goes back and forth never
// ends and leaves the run worse), or the stage has had maxRepairs repairs.
func (t *Trainer) repairRefused(i int, dir string) string {
	n := 0
	name := t.stages[i].cfg.Name
	for _, r := range t.log {
		rep := r.Repair
		if rep == nil || rep.StageIndex != i {
			continue
		}
		n++
		if dir == fixLower && rep.Direction == fixHigher || dir == fixHigher && rep.Direction == fixLower {
			return fmt.Sprintf("the fix (stage %s's rates %s) would undo the repair of %s at epoch %d, which made them %s",
				name, dir, rep.Kind, rep.Epoch, rep.Direction)
		}
	}
	if n >= maxRepairs {
		return fmt.Sprintf("stage %s has been repaired %d times, the most a stage is", name, n)
	}
	return ""
}

// rewrite returns the recipe's stages with stage i rewritten to fix a finding, and a
// comment saying why:
//
//   - when stage i trains pretrained groups together with a head that no earlier stage
//     trained (the fresh head's large, noisy gradients detune the base), it is split: the
//     head alone first (a third of its epochs, one-cycle), then its groups with ULMFiT
//     rates (the head's rate, each group below divided by 2.6) and the slanted
//     triangle, no rate above the optimizer's usual default;
//   - when stage i trains only the head and its predictions sit at chance with its rate
//     below the optimizer's usual default (slowHead), nothing pretrained can have been
//     detuned: the rate is raised tenfold, up to that default (at that default or up to
//     ten times it, the diagnostics give a notice instead: stuckHead);
//   - otherwise the rates are lowered tenfold, or further down to the optimizer's usual
//     default when they are above it (lr 50 becomes 1e-3 at once): the named group's,
//     for a finding about a group the stage trains, else every group's.
//
// The epoch budget stays the same (a one-epoch stage split in two takes two).
func (t *Trainer) rewrite(i int, kind diagnose.Kind, group string) ([]StageConfig, string, string) {
	stages := slices.Clone(t.cfg.Stages)
	st := t.stages[i]
	names := groupNames(t.groups)
	rates, err := st.spread.Rates(names, st.trained)
	if err != nil {
		return stages, "", ""
	}
	headRate := 0.0
	for j, g := range names {
		if rates[j] > headRate && (g == HeadGroup || !contains(st.trained, HeadGroup)) {
			headRate = rates[j]
		}
	}
	freshHead := true
	for _, earlier := range t.stages[:i] {
		if contains(earlier.trained, HeadGroup) {
			freshHead = false
		}
	}
	trainsBase := slices.ContainsFunc(st.trained, func(g string) bool { return g != HeadGroup })
	if freshHead && trainsBase && contains(st.trained, HeadGroup) {
		s := stages[i]
		hr := roundRate(min(headRate, soundRate(t.cfg.Optimizer.Name)))
		headEpochs := max(1, int(math.Round(float64(s.Epochs)/3)))
		head := StageConfig{Name: t.freeStageName(s.Name + "-head"), Epochs: headEpochs, Train: Train(HeadGroup),
			LR: schedule.Rates{Rate: hr}, Schedule: schedule.Spec{Name: "onecycle"}}
		rest := s
		rest.Epochs = max(1, s.Epochs-headEpochs)
		if _, scalar := st.spread.(schedule.Scalar); scalar {
			rest.LR = schedule.Rates{Max: hr, Factor: schedule.DefaultFactor}
		} else if headRate > hr {
			rest.LR = scaleLR(s.LR, hr/headRate)
		}
		if s.Schedule.IsZero() || (s.Schedule.Name == "constant" && len(s.Schedule.Options) == 0) {
			rest.Schedule = schedule.Spec{Name: "stlr"}
		}
		stages = slices.Replace(stages, i, i+1, head, rest)
		return stages, fmt.Sprintf("train the new head alone first, then stage %s's groups with ULMFiT rates (at most %g)", s.Name, hr), fixSplit
	}
	sound := soundRate(t.cfg.Optimizer.Name)
	s := stages[i]
	if raised, slow := t.slowHead(i, kind); slow {
		s.LR = scaleLR(s.LR, raised/headRate)
		stages[i] = s
		return stages, fmt.Sprintf("stage %s trains the head alone, the base frozen: its rate higher (at most %g)", s.Name, sound), fixHigher
	}
	lower := func(r float64) float64 { return min(r/10, sound) }
	perGroup := group != "" && contains(st.trained, group) && (kind == diagnose.UpdateRatio || kind == diagnose.GradExploding || kind == diagnose.DeadReLU)
	if perGroup {
		lr := schedule.Rates{PerGroup: map[string]float64{}}
		for j, g := range names {
			if rates[j] == 0 {
				continue
			}
			r := rates[j]
			if g == group {
				r = lower(r)
			}
			lr.PerGroup[g] = roundRate(r)
		}
		s.LR = lr
		stages[i] = s
		return stages, fmt.Sprintf("group %s's rate lower", group), fixLower
	}
	s.LR = scaleLR(s.LR, lower(headRate)/headRate)
	stages[i] = s
	return stages, fmt.Sprintf("stage %s's rates lower", s.Name), fixLower
}

// headOnly says that the stage trains the head alone in every epoch (no gradual
// unfreezing): the base stays frozen, so no pretrained weight moves.
func (st stagePlan) headOnly() bool {
	return !st.cfg.Gradual && slices.Equal(st.trained, []string{HeadGroup})
}

// slowHead says whether a finding of kind in stage i is a head too slow to learn: the
// stage trains the head alone (the base frozen, so no pretrained weight moves), its
// predictions are at chance with a flat loss, and its rate is below the optimizer's
// usual default. It returns the raised rate: tenfold, at most that default.
func (t *Trainer) slowHead(i int, kind diagnose.Kind) (float64, bool) {
	head, sound, ok := t.headAtChance(i, kind)
	if !ok || head <= 0 || head >= sound {
		return 0, false
	}
	return roundRate(min(head*10, sound)), true
}

// headAtChance says whether a signal of kind in stage i is a chance signal of a stage
// that trains the head alone, and returns the head's rate there and the optimizer's
// usual default rate.
func (t *Trainer) headAtChance(i int, kind diagnose.Kind) (head, sound float64, ok bool) {
	st := t.stages[i]
	if kind != diagnose.Chance || !st.headOnly() {
		return 0, 0, false
	}
	names := groupNames(t.groups)
	rates, err := st.spread.Rates(names, st.trained)
	if err != nil {
		return 0, 0, false
	}
	return rates[slices.Index(names, HeadGroup)], soundRate(t.cfg.Optimizer.Name), true
}

// stuckHead says whether a signal of kind in stage i is a head alone at chance at the
// optimizer's usual rate or up to ten times it, and returns that rate. Such a head is
// a notice (head_at_chance) saying what may move it, not a finding with a fix: on the
// full diagnostics matrix, a head on globally pooled features at Adam 1e-3 stayed at
// chance for its three epochs (in PyTorch too), lowering its rate made the runs worse,
// and raising it to 1e-2 made one base's runs worse by 2 points as often as it made the
// other's better.
func (t *Trainer) stuckHead(i int, kind diagnose.Kind) (float64, bool) {
	head, sound, ok := t.headAtChance(i, kind)
	return head, ok && head >= sound && head < 10*sound
}

// freeStageName returns "head" if no stage has that name, else base, numbered if taken.
func (t *Trainer) freeStageName(base string) string {
	used := map[string]bool{}
	for _, s := range t.cfg.Stages {
		used[s.Name] = true
	}
	if !used[HeadGroup] {
		return HeadGroup
	}
	candidate := base
	for n := 2; used[candidate]; n++ {
		candidate = fmt.Sprintf("%s%d", base, n)
	}
	return candidate
}

// scaleLR multiplies every rate of a stage's lr by f, keeping its form (and a
// ULMFiT factor as it is).
func scaleLR(lr schedule.Rates, f float64) schedule.Rates {
	out := schedule.Rates{Factor: lr.Factor}
	if lr.Rate != 0 {
		out.Rate = roundRate(lr.Rate * f)
	}
	if lr.Max != 0 {
		out.Max = roundRate(lr.Max * f)
	}
	for _, r := range lr.Slice {
		out.Slice = append(out.Slice, roundRate(r*f))
	}
	if lr.PerGroup != nil {
		out.PerGroup = map[string]float64{}
		for g, r := range lr.PerGroup {
			out.PerGroup[g] = roundRate(r * f)
		}
	}
	return out
}

// withRate returns the stage's lr spec scaled so that its largest rate is rate.
func (t *Trainer) withRate(i int, rate float64) schedule.Rates {
	st := t.stages[i]
	rates, err := st.spread.Rates(groupNames(t.groups), st.trained)
	if err != nil {
		return schedule.Rates{Rate: roundRate(rate)}
	}
	top := slices.Max(rates)
	if _, scalar := st.spread.(schedule.Scalar); scalar || top == 0 {
		return schedule.Rates{Rate: roundRate(rate)}
	}
	return scaleLR(st.cfg.LR, rate/top)
}

// roundRate keeps two significant digits.
func roundRate(r float64) float64 {
	if r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return r
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(r, 'g', 2, 64), 64)
	return f
}

// StageLine writes a stage as one YAML flow mapping with the recipe's keys, leaving out
// unset ones: {name: head, epochs: 3, train: [head], lr: 0.001, schedule: onecycle}.
func StageLine(s StageConfig) string {
	var n yaml.Node
	n.Kind = yaml.MappingNode
	n.Style = yaml.FlowStyle
	add := func(key string, v any) {
		var val yaml.Node
		if err := val.Encode(v); err != nil {
			val = yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(v)}
		}
		flow(&val)
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
	}
	add("name", s.Name)
	add("epochs", s.Epochs)
	if !s.Train.IsZero() {
		add("train", s.Train)
	}
	if !s.LR.IsZero() {
		add("lr", s.LR)
	}
	if !s.Schedule.IsZero() {
		add("schedule", s.Schedule)
	}
	if s.Gradual {
		add("gradual", true)
	}
	out, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Sprintf("%+v", s)
	}
	return strings.TrimSpace(string(out))
}

// flow puts every mapping and sequence of a node in flow style, with the rate keys of an
// lr map in the order people write them.
func flow(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	if n.Kind == yaml.MappingNode {
		order := map[string]int{"name": -3, "max": -2, "factor": -1}
		type kv struct{ k, v *yaml.Node }
		var pairs []kv
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, kv{n.Content[i], n.Content[i+1]})
		}
		slices.SortStableFunc(pairs, func(a, b kv) int { return order[a.k.Value] - order[b.k.Value] })
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p.k, p.v)
		}
	}
	for _, c := range n.Content {
		flow(c)
	}
}

// repair goes back to the start of the failing stage and goes on with the rewritten
// recipe: the weights, optimizer states, position, history and hook states are those
// the stage started with; the findings and the repair stay in the log.
func (t *Trainer) repair(req *repairRequest) error {
	i := t.progress.Stage
	snap := t.stageSnap
	if snap == nil || snap.progress.Stage != i {
		return fmt.Errorf("repair: no saved state of the start of stage %s", t.stages[i].cfg.Name)
	}
	var keep []Record
	for _, r := range t.log[min(len(snap.log), len(t.log)):] {
		if r.Finding != nil || r.Repair != nil {
			keep = append(keep, r)
		}
	}
	rec := Repair{
		Kind: req.finding.Kind, Epoch: req.finding.Epoch, Step: req.finding.Step,
		Stage: t.stages[i].cfg.Name, StageIndex: i, Direction: req.dir,
	}
	for _, s := range t.cfg.Stages[i:] {
		rec.Before = append(rec.Before, StageLine(s))
	}
	for _, s := range req.stages[i:] {
		rec.After = append(rec.After, StageLine(s))
	}
	plans, err := planStages(req.stages, t.groups)
	if err != nil {
		return fmt.Errorf("repair: the rewritten recipe: %w", err)
	}
	if err := t.restore(snap); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	t.log = append(t.log, keep...)
	t.cfg.Stages, t.stages = req.stages, plans
	rec.Epoch = t.progress.Epoch + 1
	if t.runDir != "" {
		rec.Recipe = filepath.Join(t.runDir, RunRepaired)
	}
	if err := fire(t, Hook.onRepair, rec); err != nil {
		return err
	}
	t.log = append(t.log, Record{Repair: &rec})
	return nil
}

// SuggestedStage returns stage i of the recipe with its rates scaled so that the
// largest is rate (the line lr-find prints).
func (t *Trainer) SuggestedStage(i int, rate float64) StageConfig {
	s := t.cfg.Stages[i]
	s.LR = t.withRate(i, rate)
	return s
}
