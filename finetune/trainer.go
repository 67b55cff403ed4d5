package finetune

import (
	"fmt"
	"os"
	"path/filepath"

	"toolkit/backend"
	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/distrib"
	"toolkit/finetune/optim"
	"toolkit/finetune/schedule"
	"toolkit/headbuilder"
	"toolkit/onnx"
)

// Trainer runs a recipe: it holds the model (base and head), its layer groups, one
// optimizer per group, the data loaders and the run's progress.
type Trainer struct {
	cfg    Config
	model  *backend.Model
	groups []Group
	data   *Data
	stages []stagePlan

	trainLoader, valLoader, testLoader *dataset.Loader

	optims   map[string]optim.Optimizer
	progress Progress
	// log holds the run's records: epochs, findings, repairs (metrics.jsonl).
	log []Record
	// hooks are the loop's own (newCoreHooks), then the run folder's and the caller's.
	hooks     []Hook
	stopStage bool
	diag      *diagnostics
	// last is the last step's result.
	last *stepResult
	// ckpt writes the checkpoints.
	ckpt *checkpointWriter
	// forwardUpdates says that the training forward pass changes parameters
	// (BatchNormalization's running statistics), so it too waits for a checkpoint being
	// written (ckpt.waitRead).
	forwardUpdates bool
	// stageSnap is the state at the start of the current stage, kept when repairing;
	// runDir is the run folder (empty without the default hooks).
	stageSnap *snapshot
	runDir    string
	// The programs built so far, by batch size (and cut); the training ones compute
	// gradients for trained.
	trainPrograms, evalPrograms map[programKey]*backend.Program
	trained                     []string
	// cache is the frozen-base feature cache (featurecache.go).
	cache *featureCache
	// comm is the group of ranks the run trains with (ranks.go); stop is a rank's wish
	// to stop (its context cancelled), which the next step agrees on with the others.
	comm distrib.Comm
	stop bool
	// gradBufs are the gradients the trainer holds itself (gradBuffer): a batch's
	// parts' sum, or a rank's zeros when its share of a batch is empty.
	gradBufs map[string][]float32
	// noDecay holds the parameters weight decay leaves alone (optimizer.no_decay).
	noDecay map[string]bool
	// reduceBuf is the fused buffer of a step's gradients summed over the ranks.
	reduceBuf []float32
	// trainBN keeps the BatchNormalization layers of frozen groups training (fastai's
	// train_bn): bn holds their scales and shifts, by group.
	trainBN bool
	bn      map[string][]string
	// classWeights are loss.class_weights' weights, one per class (nil: none).
	classWeights []float64
	// multi says that the task is multilabel (multilabel.go): posWeight are the
	// binary cross-entropy's positive weights (nil: none), and hot the multi-hot
	// targets of each split by example index.
	multi     bool
	posWeight []float64
	hot       splitTargets
	// sets are the weight sets kept beside the weights (weightsets.go).
	sets map[string]map[string][]float32
	// plan is the epoch in progress (or the last).
	plan *epochPlan
}

// stagePlan is a validated stage: its groups, rates and schedule.
type stagePlan struct {
	cfg      StageConfig
	trained  []string
	spread   schedule.Spread
	schedule schedule.Schedule
}

// Option changes how New sets a trainer up.
type Option func(*setup)

type setup struct {
	hooks        []Hook
	data         *Data
	defaultHooks bool
	trainBN      bool
	// overwrite lets a run start in a folder holding another run's files, removing
	// them first; resuming continues the run in the folder (Resume).
	overwrite, resuming bool
	comm                distrib.Comm
}

// WithComm trains as one rank of a data-parallel group (package distrib; MPI under
// mpirun): every rank runs the same recipe on its share of every batch (of
// data.batch_size, the global batch), the gradients summed over the ranks before every
// update, which every rank applies alike; rank 0 alone writes the run folder. See
// ranks.go. A rank whose New, Run or LRFind fails on its own (its share's image, rank
// 0's disk) leaves the others waiting for it in a collective: it should end the group
// with the Comm's Abort, as toolkit finetune does.
func WithComm(c distrib.Comm) Option { return func(s *setup) { s.comm = c } }

// WithHooks adds hooks to the run, after the default ones.
func WithHooks(h ...Hook) Option { return func(s *setup) { s.hooks = append(s.hooks, h...) } }

// WithData uses the given data instead of opening what the config's data section names.
func WithData(d *Data) Option { return func(s *setup) { s.data = d } }

// WithTrainBN keeps the BatchNormalization layers of frozen groups training, as
// fastai's train_bn does: their scales and shifts get gradients and updates at the rate
// their group would have if the stage trained it (the stage's lr spread over every
// group), and they normalise with batch statistics, updating their running averages.
// The other parameters of a frozen group stay as they are. Without it (the default)
// a frozen group is left exactly as it was, BatchNormalization included, as a frozen
// Keras layer is. The recipe's train_bn: true does the same.
func WithTrainBN(on bool) Option { return func(s *setup) { s.trainBN = on } }

// WithOverwrite lets a run start in an output folder that holds another run's files
// (RunFiles), which the run removes before it writes its own (toolkit finetune
// --overwrite). Without it New refuses such a folder with a *RunExistsError, so that a
// second run never mixes its files with an earlier one's nor silently replaces them.
func WithOverwrite() Option { return func(s *setup) { s.overwrite = true } }

// WithoutDefaultHooks leaves out the run folder's hooks (metrics.jsonl, curves.png,
// checkpoints, best.onnx): for a program that only wants the trained model.
func WithoutDefaultHooks() Option { return func(s *setup) { s.defaultHooks = false } }

// New checks the recipe, reads the base model, appends the head, resolves the layer
// groups, opens the data and makes the optimizers. Everything that can be checked
// before any compute is checked here.
func New(cfg Config, opts ...Option) (*Trainer, error) {
	s := setup{defaultHooks: true}
	for _, o := range opts {
		o(&s)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, h := range s.hooks {
		if h.Name == "" {
			return nil, fmt.Errorf("WithHooks: a hook needs a Name")
		}
	}
	if cfg.Precision == "bf16" {
		if err := kernels.BF16Available(); err != nil {
			return nil, fmt.Errorf("precision: bf16: %w", err)
		}
	}
	full, err := buildModel(cfg)
	if err != nil {
		return nil, err
	}
	// full is this trainer's own (headbuilder.Append made it): adopt its weights instead
	// of copying them.
	model, err := backend.AdoptModel(full)
	if err != nil {
		return nil, fmt.Errorf("model.onnx %s: %w", cfg.Model.ONNX, err)
	}
	in := cfg.Model.Input
	probes := findProbes(full, model.Inputs()[0].Name, []int64{1, int64(in.Channels), int64(in.Height), int64(in.Width)})
	groups, err := ResolveGroups(cfg.Groups, full, model.TrainableNames(), headbuilder.IsHeadParam)
	if err != nil {
		return nil, err
	}
	for i, p := range probes {
		for _, g := range groups {
			if contains(g.Params, p.Param) {
				probes[i].Group = g.Name
			}
		}
	}
	t := &Trainer{cfg: cfg, model: model, groups: groups, optims: map[string]optim.Optimizer{}, trainPrograms: map[programKey]*backend.Program{}, evalPrograms: map[programKey]*backend.Program{},
		forwardUpdates: model.UpdatesRunningStatistics(), ckpt: newCheckpointWriter(groups), sets: map[string]map[string][]float32{}}
	if s.trainBN || cfg.TrainBN {
		t.trainBN, t.bn = true, map[string][]string{}
		bn := model.BatchNormParams()
		for _, g := range groups {
			for _, p := range g.Params {
				if contains(bn, p) {
					t.bn[g.Name] = append(t.bn[g.Name], p)
				}
			}
		}
	}
	if t.noDecay, err = noDecayParams(cfg.Optimizer.NoDecay, model); err != nil {
		return nil, err
	}
	t.diag = newDiagnostics(cfg.Diagnostics, cfg.Head.Classes, probes)
	t.diag.mon.Chance = chanceLevel(cfg)
	if t.stages, err = planStages(cfg.Stages, groups); err != nil {
		return nil, err
	}
	for _, g := range groups {
		if t.optims[g.Name], err = newOptimizer(cfg.Optimizer); err != nil {
			return nil, err
		}
	}
	t.data = s.data
	if t.data == nil {
		if t.data, err = cfg.OpenData(); err != nil {
			return nil, err
		}
	}
	t.cache = newFeatureCache(model, groups, t.data, cfg)
	if t.comm = s.comm; t.comm == nil {
		t.comm = distrib.Single{}
	}
	shard := t.shard()
	if len(t.data.Classes) != cfg.Head.Classes {
		return nil, fmt.Errorf("head.classes is %d but the training data has %d classes (%v)",
			cfg.Head.Classes, len(t.data.Classes), t.data.Classes)
	}
	sum := t.data.Summary()
	if t.classWeights, err = classWeights(cfg.Loss.ClassWeights, sum); err != nil {
		return nil, fmt.Errorf("loss.class_weights: %w", err)
	}
	sum.ClassWeights = t.classWeights
	if t.multi = cfg.Head.Task == TaskMultilabel; t.multi {
		if !t.data.MultiLabel {
			return nil, fmt.Errorf("head.task: multilabel, but the data were opened as single-label (open them with Config.OpenData)")
		}
		if t.posWeight, err = posWeights(cfg.Loss.PosWeight, sum); err != nil {
			return nil, fmt.Errorf("loss.pos_weight: %w", err)
		}
		sum.PosWeight = t.posWeight
		t.hot = newSplitTargets(t.data)
		t.diag.mon.Chance = multiChance(sum, t.posWeight, cfg.Loss.FocalGamma)
	}
	t.log = append(t.log, Record{Data: &sum})
	if t.trainLoader, err = t.data.loader(t.data.Train, cfg.Data, cfg.Seed, true, shard); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if t.data.Val != nil {
		if t.valLoader, err = t.data.loader(t.data.Val, cfg.Data, cfg.Seed, false, shard); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	if t.data.Test != nil {
		if t.testLoader, err = t.data.loader(t.data.Test, cfg.Data, cfg.Seed, false, shard); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	if err := checkPlateau(cfg.Stages, t.valLoader != nil); err != nil {
		return nil, err
	}
	t.hooks = t.newCoreHooks()
	if s.defaultHooks && t.comm.Rank() == 0 {
		if err := checkWritable(cfg.Output.Dir); err != nil {
			return nil, err
		}
		rf := newRunFolder(cfg.Output.Dir)
		if !s.resuming {
			if found := existingRunFiles(cfg.Output.Dir); len(found) > 0 {
				if !s.overwrite {
					return nil, &RunExistsError{Dir: cfg.Output.Dir, Files: found}
				}
				rf.remove = found
			}
		}
		t.runDir = cfg.Output.Dir
		t.hooks = append(t.hooks, rf.hooks()...)
		if cfg.Output.TensorBoard {
			t.hooks = append(t.hooks, newTensorBoardHook(filepath.Join(cfg.Output.Dir, RunTensorBoard)))
		}
	}
	t.hooks = append(t.hooks, s.hooks...)
	if err := checkHooks(t.hooks); err != nil {
		return nil, err
	}
	return t, nil
}

// exportOpset is the least opset of the models the toolkit exports.
const exportOpset = 13

// Base returns the recipe's base as fine-tuning reads it (model.onnx, cut at
// model.cut_at, its input sized by model.input) and the preprocessing of its input
// (data.preprocess at model.input): what toolkit extract -c computes features with.
func Base(cfg Config) (*onnx.Model, dataset.Preprocess, error) {
	pre := cfg.Data.Preprocess.dataset(cfg.Model.Input)
	if err := pre.Validate(); err != nil {
		return nil, pre, fmt.Errorf("data.preprocess: %w", err)
	}
	base, err := readBase(cfg)
	return base, pre, err
}

// readBase reads the base, cuts it if asked and fixes its input size.
func readBase(cfg Config) (*onnx.Model, error) {
	base, err := onnx.Read(cfg.Model.ONNX)
	if err != nil {
		return nil, fmt.Errorf("model.onnx: %w", err)
	}
	if cfg.Model.CutAt != "" {
		if base, err = onnx.Cut(base, cfg.Model.CutAt); err != nil {
			return nil, fmt.Errorf("model.cut_at: %w", err)
		}
	} else if !onnx.IsHeadless(base) {
		cut, _ := onnx.HeadlessCut(base)
		return nil, fmt.Errorf("model.onnx: %s has a classifier (it does not end in a feature map): set model.cut_at (the headless cut is %q) or import it with --headless", cfg.Model.ONNX, cut)
	}
	// PyTorch stores bit-identical initializers once (VGG's zero-initialised biases):
	// fine-tuning gives each parameter its own tensor. An exported model is opset 13 or
	// newer.
	base = onnx.UntieInitializers(base)
	if base.Opset("") < exportOpset {
		if base, err = onnx.UpgradeOpset(base, exportOpset); err != nil {
			return nil, fmt.Errorf("model.onnx: %w", err)
		}
	}
	if base, err = withInputSize(base, cfg.Model.Input); err != nil {
		return nil, fmt.Errorf("model.input: %w", err)
	}
	return base, nil
}

// buildModel reads the base (readBase) and appends the head.
func buildModel(cfg Config) (*onnx.Model, error) {
	base, err := readBase(cfg)
	if err != nil {
		return nil, err
	}
	in := cfg.Model.Input
	spec := headbuilder.Spec{
		Pool: cfg.Head.Pool, Dense: cfg.Head.Dense, Activation: cfg.Head.Activation,
		Dropout: cfg.Head.Dropout, Classes: cfg.Head.Classes, Init: cfg.Head.Init, Seed: cfg.Seed,
	}
	full, err := headbuilder.Append(base, spec, []int64{1, int64(in.Channels), int64(in.Height), int64(in.Width)})
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	return full, nil
}

// withInputSize returns the model with its single input declared as [N C H W] from the
// config. A convolutional base runs at any image size, so a file exported at 224x224
// can be fine-tuned at 32x32; the channel count must agree.
func withInputSize(m *onnx.Model, in InputConfig) (*onnx.Model, error) {
	inputs := m.Graph.RealInputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("the model has %d inputs; fine-tuning takes one image input", len(inputs))
	}
	vi := inputs[0]
	if len(vi.Shape) != 4 {
		return nil, fmt.Errorf("input %q has rank %d; want [N C H W]", vi.Name, len(vi.Shape))
	}
	if c := vi.Shape[1].Value; c > 0 && c != int64(in.Channels) {
		return nil, fmt.Errorf("input %q has %d channels but model.input.channels is %d", vi.Name, c, in.Channels)
	}
	out := *m
	g := *m.Graph
	g.Inputs = make([]*onnx.ValueInfo, len(m.Graph.Inputs))
	for i, v := range m.Graph.Inputs {
		if v.Name == vi.Name {
			c := *v
			c.Shape = []onnx.Dim{{Param: "N"}, {Value: int64(in.Channels)}, {Value: int64(in.Height)}, {Value: int64(in.Width)}}
			c.HasShape = true
			v = &c
		}
		g.Inputs[i] = v
	}
	out.Graph = &g
	return &out, nil
}

func planStages(stages []StageConfig, groups []Group) ([]stagePlan, error) {
	if len(stages) == 0 {
		return nil, fmt.Errorf("stages: none given (add at least one, e.g. {name: head, epochs: 3, train: [head], lr: 1e-3})")
	}
	names := groupNames(groups)
	plans := make([]stagePlan, len(stages))
	for i, st := range stages {
		where := fmt.Sprintf("stages[%d] (%s)", i, st.Name)
		p := stagePlan{cfg: st}
		var err error
		if p.trained, err = resolveTrain(st.Train, groups); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if p.spread, err = st.LR.Spread(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err) // "lr: ..."
		}
		if _, err := p.spread.Rates(names, p.trained); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err) // "lr: ..."
		}
		if p.schedule, err = st.Schedule.Schedule(); err != nil {
			return nil, fmt.Errorf("%s: schedule: %w", where, err)
		}
		plans[i] = p
	}
	return plans, nil
}

func newOptimizer(c OptimizerConfig) (optim.Optimizer, error) {
	o, err := optim.New(c.Name, c.options())
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	return o, nil
}

// checkWritable makes the output folder and checks that a file can be written there.
func checkWritable(dir string) error {
	if dir == "" {
		return fmt.Errorf("output.dir: missing")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output.dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("output.dir: cannot write in %s: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// StageOver says, after an epoch is recorded (the history hook), whether it ended its
// stage: the stage's last epoch, or early stopping ended the stage.
func (t *Trainer) StageOver() bool {
	p := t.progress
	return t.stageStopped() || p.Stage < len(t.stages) && p.StageEpoch >= t.stages[p.Stage].cfg.Epochs
}

// Groups returns the layer groups, the head last.
func (t *Trainer) Groups() []Group { return append([]Group(nil), t.groups...) }

// Model returns the backend model being trained.
func (t *Trainer) Model() *backend.Model { return t.model }

// Config returns the recipe.
func (t *Trainer) Config() Config { return t.cfg }

// Classes returns the class names, in label order.
func (t *Trainer) Classes() []string { return append([]string(nil), t.data.Classes...) }

// DataSummary is what the run found in its data: the images of each split by class, and
// the files skipped.
func (t *Trainer) DataSummary() DataSummary {
	for _, r := range t.log {
		if r.Data != nil {
			return *r.Data
		}
	}
	return t.data.Summary()
}

// HasValidation says whether the run has validation data (data.val or data.val_split):
// the validation metrics, best.onnx and early stopping need it.
func (t *Trainer) HasValidation() bool { return t.valLoader != nil }

// Skipped lists the images left out because they did not decode (data.on_bad_image: skip).
func (t *Trainer) Skipped() []dataset.BadImage {
	return append([]dataset.BadImage(nil), t.data.Skipped...)
}

// exportIR returns the model with the given parameter values (nil: the current ones).
func (t *Trainer) exportIR(params map[string][]float32) *onnx.Model {
	if params == nil {
		return t.model.Export()
	}
	// The given values replace the exported ones: no need for the copy.
	m := t.model.ExportShared()
	g := *m.Graph
	g.Initializers = make([]*onnx.Tensor, len(m.Graph.Initializers))
	for i, init := range m.Graph.Initializers {
		if v, ok := params[init.Name]; ok {
			c := *init
			c.Floats = v
			init = &c
		}
		g.Initializers[i] = init
	}
	out := *m
	out.Graph = &g
	return &out
}

// stageStarts keeps the state at the start of a stage when the run repairs: a repair
// returns to it. With a run folder it is also saved there (checkpoint-stage/), so that
// a resumed run can still repair the stage it resumes in.
func (t *Trainer) stageStarts() error {
	if !t.cfg.Diagnostics.Repair {
		return nil
	}
	snap, err := t.capture()
	if err != nil {
		return err
	}
	t.stageSnap = snap
	if t.runDir != "" {
		return t.writeSnapshot(filepath.Join(t.runDir, RunStageStart), snap)
	}
	return nil
}

// Resume continues the run in dir from its checkpoint, with the recipe saved there (and
// the stages as a repair rewrote them, which the checkpoint holds). The resumed run
// ends with the same weights as an uninterrupted one.
func Resume(dir string, opts ...Option) (*Trainer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, RunConfig))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	cfg, err := ParseConfig(raw, filepath.Join(dir, RunConfig))
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	cfg.Output.Dir = dir
	t, err := New(*cfg, append(opts, func(s *setup) { s.resuming = true })...)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if err := t.LoadCheckpoint(filepath.Join(dir, RunCheckpoint)); err != nil {
		return nil, fmt.Errorf("resume %s: %w", dir, err)
	}
	if cfg.Diagnostics.Repair {
		if _, err := os.Stat(filepath.Join(dir, RunStageStart)); err == nil {
			snap, err := t.readSnapshot(filepath.Join(dir, RunStageStart))
			if err != nil {
				return nil, fmt.Errorf("resume %s: %w", dir, err)
			}
			if snap.progress.Stage == t.progress.Stage {
				t.stageSnap = snap
			}
		}
	}
	return t, nil
}
