package finetune

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"toolkit/backend"
	"toolkit/backend/kernels"
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
// BatchNormalization layers are frozen, and a prefix with a Dropout is not cached), and
// its results do not depend on the batch it is computed in, so training on the cache
// gives the same numbers, bit for bit, as training without it (TestFeatureCacheSameRun).

// featureCacheBudget bounds the memory the cached activations of one data set may take.
const featureCacheBudget = 2 << 30

// featureCacheBatch is the batch size the frozen part is computed in.
const featureCacheBatch = 64

// Notice is a line of the run's log that is neither an epoch nor a finding: what the
// trainer decided about the feature cache. Kinds: feature_cache (the cache is built or
// in use: Message says where the frozen part ends and the size), feature_cache_off (an
// epoch with a frozen part that cannot use it, and why).
type Notice struct {
	Notice  string `json:"notice"`
	Stage   string `json:"stage"`
	Epoch   int    `json:"epoch"`
	Message string `json:"message"`
	// Seconds is the time building the cache took.
	Seconds float64 `json:"seconds,omitempty"`
}

// featureCache holds one data set's activations at a cut: example i's values at
// feats[i*size : (i+1)*size].
type featureCache struct {
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
	for _, h := range t.hooks {
		if h.Notice != nil {
			if err := h.Notice(t, n); err != nil {
				return fmt.Errorf("hook %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

// weightsChanged marks every group's weights as changed (a restore, a repair, lr-find):
// no cached activation survives it.
func (t *Trainer) weightsChanged() {
	if t.weightVersion == nil {
		t.weightVersion = map[string]int{}
	}
	for _, g := range t.groups {
		t.weightVersion[g.Name]++
	}
}

// epochCut decides whether the epoch trains from cached activations: it returns the cut
// (nil for none) and, when there is a frozen part that cannot be cached, why.
func (t *Trainer) epochCut() (*cacheCut, string) {
	if t.cfg.Data.FeatureCache == "off" || len(t.trained) == 0 {
		return nil, ""
	}
	if t.cuts == nil {
		t.cuts = onnx.CutPoints(t.model.IR())
	}
	ir := t.model.IR()
	trained := map[string]bool{}
	for _, p := range t.trained {
		trained[p] = true
	}
	first := len(ir.Graph.Nodes)
	for i, n := range ir.Graph.Nodes {
		if slices.ContainsFunc(n.Inputs, func(in string) bool { return trained[in] }) {
			first = i
			break
		}
	}
	var best *onnx.CutPoint
	for i := range t.cuts {
		if t.cuts[i].Node < first && len(t.cuts[i].PrefixParams) > 0 {
			best = &t.cuts[i]
		}
	}
	if best == nil {
		return nil, ""
	}
	if slices.Contains(best.PrefixOps, "Dropout") {
		return nil, fmt.Sprintf("the frozen layers up to %s hold a Dropout, which is random in training", best.Tensor)
	}
	if what := t.cfg.Data.Augment.active(); len(what) > 0 {
		return nil, fmt.Sprintf("data.augment (%s) changes the images every epoch, so the output of the frozen layers (up to %s) differs each time; without augmentation it is computed once and reused",
			strings.Join(what, ", "), best.Tensor)
	}
	in := t.cfg.Model.Input
	shapes, err := onnx.InferShapes(ir, map[string][]int64{t.model.Inputs()[0].Name: {1, int64(in.Channels), int64(in.Height), int64(in.Width)}})
	if err != nil {
		return nil, ""
	}
	dims := shapes.Dims[best.Tensor]
	c := &cacheCut{CutPoint: *best}
	size := 1
	for _, d := range dims {
		c.shape = append(c.shape, int(d))
		size *= int(d)
	}
	n := t.data.Train.Len()
	if t.data.Val != nil {
		n += t.data.Val.Len()
	}
	if bytes := int64(size) * int64(n) * 4; bytes > featureCacheBudget {
		return nil, fmt.Sprintf("the activations at %s would take %.1f GB for %d images (more than %d GB)",
			best.Tensor, float64(bytes)/1e9, n, featureCacheBudget>>30)
	}
	return c, ""
}

// frozenVersions returns the weight versions of the groups that own the cut's prefix
// parameters.
func (t *Trainer) frozenVersions(c *cacheCut) map[string]int {
	out := map[string]int{}
	for _, g := range t.groups {
		if slices.ContainsFunc(g.Params, func(p string) bool { return slices.Contains(c.PrefixParams, p) }) {
			out[g.Name] = t.weightVersion[g.Name]
		}
	}
	return out
}

// features returns the cached activations of examples at the cut, building them when
// they are missing or stale. which names the data set (train, val) in messages.
func (t *Trainer) features(ctx context.Context, c *cacheCut, examples dataset.Examples, slot **featureCache) (*featureCache, float64, error) {
	versions := t.frozenVersions(c)
	if fc := *slot; fc != nil && fc.cut == c.Tensor && maps2Equal(fc.versions, versions) {
		return fc, 0, nil
	}
	began := time.Now()
	size := 1
	for _, d := range c.shape {
		size *= d
	}
	fc := &featureCache{cut: c.Tensor, size: size, feats: make([]float32, examples.Len()*size), versions: versions}
	l, err := dataset.NewLoader(examples, dataset.LoaderOptions{
		BatchSize: featureCacheBatch, Workers: t.cfg.Data.Workers, Preprocess: t.data.Preprocess,
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
			if prog, err = t.model.Program(backend.Options{Batch: b.N, Outputs: []string{c.Tensor}}); err != nil {
				return nil, 0, fmt.Errorf("feature cache: %w", err)
			}
			progs[b.N] = prog
		}
		if err := prog.Run([][]float32{b.Images[:b.N*t.data.Preprocess.Size()]}, nil); err != nil {
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

func maps2Equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// epochBatches returns the epoch's training batches: from the cache when the epoch can
// use it (noting so once per stage), else from the loader (noting why not, when a frozen
// part exists).
func (t *Trainer) epochBatches(ctx context.Context) (iter.Seq2[trainBatch, error], error) {
	c, why := t.epochCut()
	t.cut = c
	if c == nil {
		if why != "" {
			if err := t.notice("feature_cache_off", "feature cache off: "+why, 0); err != nil {
				return nil, err
			}
		}
		return t.batches(ctx), nil
	}
	fc, seconds, err := t.features(ctx, c, t.data.Train, &t.trainCache)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("feature cache: the frozen layers up to %s (%d nodes) run once per image; the epochs train from their output, %v per image (%.1f MB for %d images)",
		c.Tensor, c.Node+1, c.shape[1:], float64(len(fc.feats))*4/1e6, t.data.Train.Len())
	if err := t.notice("feature_cache", msg, seconds); err != nil {
		return nil, err
	}
	return t.cachedBatches(fc), nil
}

// cachedBatches yields the epoch's batches, in the loader's order, made of cached
// activations.
func (t *Trainer) cachedBatches(fc *featureCache) iter.Seq2[trainBatch, error] {
	return func(yield func(trainBatch, error) bool) {
		order := t.trainLoader.Order(t.progress.Epoch)
		bs := t.cfg.Data.BatchSize
		buf := make([]float32, bs*fc.size)
		for bi := t.progress.Batch; bi*bs < len(order); bi++ {
			idx := order[bi*bs : min(len(order), (bi+1)*bs)]
			labels := make([]int, len(idx))
			for j, i := range idx {
				copy(buf[j*fc.size:(j+1)*fc.size], fc.feats[i*fc.size:(i+1)*fc.size])
				labels[j] = t.data.Train.Label(i)
			}
			if !yield(trainBatch{Images: buf[:len(idx)*fc.size], Labels: labels, N: len(idx), Index: bi, From: fc.cut}, nil) {
				return
			}
		}
	}
}

// cachedEvaluate is evaluate on the validation data from cached activations, when the
// epoch trains from a cut (the validation images are never augmented). It reports false
// when it does not apply.
func (t *Trainer) cachedEvaluate(ctx context.Context, l *dataset.Loader) (loss, acc float64, ok bool, err error) {
	if t.cut == nil || l != t.valLoader || t.data.Val == nil {
		return 0, 0, false, nil
	}
	fc, _, err := t.features(ctx, t.cut, t.data.Val, &t.valCache)
	if err != nil {
		return 0, 0, false, err
	}
	classes := t.cfg.Head.Classes
	var sum float64
	var right, seen int
	n := t.data.Val.Len()
	bs := t.cfg.Data.BatchSize
	labels := make([]int, 0, bs)
	for i0 := 0; i0 < n; i0 += bs {
		m := min(bs, n-i0)
		prog, err := t.programFrom(m, false, fc.cut)
		if err != nil {
			return 0, 0, false, err
		}
		labels = labels[:0]
		for i := i0; i < i0+m; i++ {
			labels = append(labels, t.data.Val.Label(i))
		}
		if err := prog.Run([][]float32{fc.feats[i0*fc.size : (i0+m)*fc.size]}, oneHot(labels, classes, 0)); err != nil {
			return 0, 0, false, err
		}
		sum += prog.Loss() * float64(m)
		right += kernels.CorrectCount(m, classes, prog.Output(0), labels)
		seen += m
	}
	if seen == 0 {
		return 0, 0, true, nil
	}
	return sum / float64(seen), float64(right) / float64(seen), true, nil
}

// suffixOutputs lists the program outputs computable from a cut: the model's outputs
// that the frozen part does not compute.
func (t *Trainer) suffixOutputs(cut string) []string {
	ir := t.model.IR()
	var c *onnx.CutPoint
	for i := range t.cuts {
		if t.cuts[i].Tensor == cut {
			c = &t.cuts[i]
		}
	}
	prefix := map[string]bool{}
	if c != nil {
		for _, n := range ir.Graph.Nodes[:c.Node+1] {
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
