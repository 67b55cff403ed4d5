package finetune

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"toolkit/backend"
	"toolkit/dataset"
	"toolkit/onnx"
)

// The frozen-base feature cache. An epoch that trains only layer groups above a frozen
// part of the network, on images nothing random changes (no augmentation), would compute
// the frozen part's output for every image again every epoch, to the same values. With
// data.feature_cache: auto (the default) the trainer instead computes it once per image,
// keeps the activations in memory, and trains the rest of the network on them: a
// head-only stage then costs the head's small products alone. The cache is keyed by the
// cut (the tensor where the frozen part ends), by the frozen groups' weights (it is
// rebuilt when any of them has been updated, restored from a checkpoint or changed by a
// repair or lr-find), and by the data and preprocessing, which a trainer never changes.
//
// The frozen part runs in inference mode, as it does in a training program (its
// BatchNormalization layers are frozen, and the cache ends before any Dropout), and
// its results do not depend on the batch it is computed in, so training on the cache
// gives the same numbers, bit for bit, as training without it (TestFeatureCacheSameRun).

// featureCacheBudget bounds the memory the cached activations of one data set may take.
const featureCacheBudget = 2 << 30

// featureCacheBatch is the batch size the frozen part is computed in.
const featureCacheBatch = 64

// Notice is a line of the run's log that is neither an epoch nor a finding: what the
// trainer decided, or saw without a fix to offer. Kinds: feature_cache (the cache is
// built or in use: Message says where the frozen part ends and the size),
// feature_cache_off (an epoch with a frozen part that cannot use it, and why),
// repair_stopped (a fix not applied: it would undo an earlier repair, or the stage has
// had its repairs), head_at_chance (a head trained alone still at chance at the
// optimizer's usual rate or above, and what may move it).
type Notice struct {
	Notice  string `json:"notice"`
	Stage   string `json:"stage"`
	Epoch   int    `json:"epoch"`
	Message string `json:"message"`
	// Seconds is the time building the cache took.
	Seconds float64 `json:"seconds,omitempty"`
}

// featureCache is the trainer's cache of a frozen part's activations: it decides each
// epoch's cut (plan), keeps the training and validation data's activations at it
// (built when missing or stale), serves the batches of both from them, and keeps a
// version of each group's weights, raised by every update of them (bump) and by
// anything else that changes them (invalidate).
type featureCache struct {
	model  *backend.Model
	groups []Group
	data   *Data
	cfg    DataConfig
	input  InputConfig
	// off turns the cache off: data.feature_cache: off, or an lr-find sweep.
	off bool
	// cuts are the model's cut points (found once), cut the current epoch's (nil: the
	// epoch trains on images).
	cuts       []onnx.CutPoint
	cut        *cacheCut
	train, val *cachedSet
	versions   map[string]int
}

func newFeatureCache(model *backend.Model, groups []Group, data *Data, cfg Config) *featureCache {
	return &featureCache{model: model, groups: groups, data: data, cfg: cfg.Data, input: cfg.Model.Input,
		off: cfg.Data.FeatureCache == "off", versions: map[string]int{}}
}

// cachedSet holds one data set's activations at a cut: example i's values at
// feats[i*size : (i+1)*size].
type cachedSet struct {
	cut      string
	size     int
	feats    []float32
	versions map[string]int // the frozen groups' weight versions it was built from
}

// cacheCut is the cut an epoch trains from, with its per-image shape.
type cacheCut struct {
	onnx.CutPoint
	shape []int // one image's activation, batch dimension 1
}

// bump marks group's weights as updated.
func (c *featureCache) bump(group string) { c.versions[group]++ }

// invalidate marks every group's weights as changed (a restore, a repair, lr-find): no
// cached activation survives it.
func (c *featureCache) invalidate() {
	for _, g := range c.groups {
		c.versions[g.Name]++
	}
}

// epochCut decides whether the epoch trains from cached activations: it returns the cut
// (nil for none) and, when there is a frozen part that cannot be cached, why.
func (c *featureCache) plan(trained []string) (*cacheCut, string) {
	if c.off || len(trained) == 0 {
		return nil, ""
	}
	if c.cuts == nil {
		c.cuts = onnx.CutPoints(c.model.IR())
	}
	ir := c.model.IR()
	isTrained := map[string]bool{}
	for _, p := range trained {
		isTrained[p] = true
	}
	first := len(ir.Graph.Nodes)
	for i, n := range ir.Graph.Nodes {
		if slices.ContainsFunc(n.Inputs, func(in string) bool { return isTrained[in] }) {
			first = i
			break
		}
	}
	// The latest cut above the frozen layers whose prefix holds no Dropout (random in
	// training): Keras's usual head (pooling, Dropout, Dense) is cached up to its
	// pooling, and its Dropout runs in the trained part.
	var best, latest *onnx.CutPoint
	for i := range c.cuts {
		p := &c.cuts[i]
		if p.Node >= first || len(p.PrefixParams) == 0 {
			continue
		}
		latest = p
		if !slices.Contains(p.PrefixOps, "Dropout") {
			best = p
		}
	}
	if best == nil {
		if latest != nil {
			return nil, fmt.Sprintf("the frozen layers up to %s hold a Dropout, which is random in training", latest.Tensor)
		}
		return nil, ""
	}
	if what := c.cfg.Augment.active(); len(what) > 0 {
		return nil, fmt.Sprintf("data.augment (%s) changes the images every epoch, so the output of the frozen layers (up to %s) differs each time; without augmentation it is computed once and reused",
			strings.Join(what, ", "), best.Tensor)
	}
	in := c.input
	shapes, err := onnx.InferShapes(ir, map[string][]int64{c.model.Inputs()[0].Name: {1, int64(in.Channels), int64(in.Height), int64(in.Width)}})
	if err != nil {
		return nil, ""
	}
	dims := shapes.Dims[best.Tensor]
	cut := &cacheCut{CutPoint: *best}
	size := 1
	for _, d := range dims {
		cut.shape = append(cut.shape, int(d))
		size *= int(d)
	}
	n := c.data.Train.Len()
	if c.data.Val != nil {
		n += c.data.Val.Len()
	}
	if bytes := int64(size) * int64(n) * 4; bytes > featureCacheBudget {
		return nil, fmt.Sprintf("the activations at %s would take %.1f GB for %d images (more than %d GB)",
			best.Tensor, float64(bytes)/1e9, n, featureCacheBudget>>30)
	}
	return cut, ""
}

// frozenVersions returns the weight versions of the groups that own the cut's prefix
// parameters.
func (c *featureCache) frozenVersions(cut *cacheCut) map[string]int {
	out := map[string]int{}
	for _, g := range c.groups {
		if slices.ContainsFunc(g.Params, func(p string) bool { return slices.Contains(cut.PrefixParams, p) }) {
			out[g.Name] = c.versions[g.Name]
		}
	}
	return out
}

// features returns the cached activations of examples at the cut, building them into
// *slot when they are missing or stale, and the seconds building took.
func (c *featureCache) features(ctx context.Context, cut *cacheCut, examples dataset.Examples, slot **cachedSet) (*cachedSet, float64, error) {
	versions := c.frozenVersions(cut)
	if fc := *slot; fc != nil && fc.cut == cut.Tensor && maps.Equal(fc.versions, versions) {
		return fc, 0, nil
	}
	began := time.Now()
	size := 1
	for _, d := range cut.shape {
		size *= d
	}
	fc := &cachedSet{cut: cut.Tensor, size: size, feats: make([]float32, examples.Len()*size), versions: versions}
	l, err := dataset.NewLoader(examples, dataset.LoaderOptions{
		BatchSize: featureCacheBatch, Workers: c.cfg.Workers, Preprocess: c.data.Preprocess,
	})
	if err != nil {
		return nil, 0, err
	}
	progs := map[int]*backend.Program{}
	for b, err := range l.Epoch(ctx, 0) {
		if err != nil {
			return nil, 0, err
		}
		prog, ok := progs[b.N]
		if !ok {
			if prog, err = c.model.Program(backend.Options{Batch: b.N, Outputs: []string{cut.Tensor}}); err != nil {
				return nil, 0, fmt.Errorf("feature cache: %w", err)
			}
			progs[b.N] = prog
		}
		if err := prog.Run([][]float32{b.Images[:b.N*c.data.Preprocess.Size()]}, nil); err != nil {
			return nil, 0, fmt.Errorf("feature cache: %w", err)
		}
		out := prog.Output(0)
		for j, i := range b.Indices[:b.N] {
			copy(fc.feats[i*size:(i+1)*size], out[j*size:(j+1)*size])
		}
	}
	*slot = fc
	return fc, time.Since(began).Seconds(), nil
}

// epochBatches returns the epoch's training batches: from the cache when the epoch can
// use it (noting so once per stage), else from the loader (noting why not, when a frozen
// part exists).
func (t *Trainer) epochBatches(ctx context.Context) (iter.Seq2[trainBatch, error], error) {
	c, why := t.cache.plan(t.trained)
	t.cache.cut = c
	if c == nil {
		if why != "" {
			if err := t.notice("feature_cache_off", "feature cache off: "+why, 0); err != nil {
				return nil, err
			}
		}
		return t.batches(ctx), nil
	}
	fc, seconds, err := t.cache.features(ctx, c, t.data.Train, &t.cache.train)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("feature cache: the frozen layers up to %s (%d nodes) run once per image; the epochs train from their output, %v per image (%.1f MB for %d images)",
		c.Tensor, c.Node+1, c.shape[1:], float64(len(fc.feats))*4/1e6, t.data.Train.Len())
	if err := t.notice("feature_cache", msg, seconds); err != nil {
		return nil, err
	}
	return fc.batches(t.trainLoader.Order(t.progress.Epoch), t.progress.Batch, t.cfg.Data.stepBatch(), t.data.Train, t.shard()), nil
}

// batches yields the batches of examples in order (as the loader orders an epoch),
// from batch from on, made of the cached activations, each of them shard's share; each
// batch's values are valid until the next.
func (fc *cachedSet) batches(order []int, from, size int, examples dataset.Examples, shard dataset.Shard) iter.Seq2[trainBatch, error] {
	return func(yield func(trainBatch, error) bool) {
		buf := make([]float32, size*fc.size)
		for bi := from; bi*size < len(order); bi++ {
			idx := order[bi*size : min(len(order), (bi+1)*size)]
			lo, hi := shard.Bounds(len(idx))
			idx = idx[lo:hi]
			labels := make([]int, len(idx))
			for j, i := range idx {
				copy(buf[j*fc.size:(j+1)*fc.size], fc.feats[i*fc.size:(i+1)*fc.size])
				labels[j] = examples.Label(i)
			}
			if !yield(trainBatch{Images: buf[:len(idx)*fc.size], Labels: labels, Indices: idx, N: len(idx), Index: bi, From: fc.cut}, nil) {
				return
			}
		}
	}
}

// suffixOutputs lists the program outputs computable from a cut: the model's outputs
// that the frozen part does not compute.
func (c *featureCache) suffixOutputs(cut string) []string {
	ir := c.model.IR()
	var p *onnx.CutPoint
	for i := range c.cuts {
		if c.cuts[i].Tensor == cut {
			p = &c.cuts[i]
		}
	}
	prefix := map[string]bool{}
	if p != nil {
		for _, n := range ir.Graph.Nodes[:p.Node+1] {
			for _, o := range n.Outputs {
				prefix[o] = true
			}
		}
	}
	var outs []string
	for _, o := range ir.Graph.Outputs {
		if !prefix[o.Name] {
			outs = append(outs, o.Name)
		}
	}
	return outs
}

// notice records a notice once per stage and kind (a resumed run, whose log already
// holds it, does not repeat it) and tells the hooks.
func (t *Trainer) notice(kind, msg string, seconds float64) error {
	stage := t.stages[t.progress.Stage].cfg.Name
	for _, r := range t.log {
		if n := r.Notice; n != nil && n.Notice == kind && n.Stage == stage && n.Message == msg {
			return nil
		}
	}
	n := Notice{Notice: kind, Stage: stage, Epoch: t.progress.Epoch + 1, Message: msg, Seconds: seconds}
	t.log = append(t.log, Record{Notice: &n})
	return fire(t, Hook.onNotice, n)
}
