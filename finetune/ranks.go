package finetune

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"maps"
	"slices"
	"time"
	"unsafe"

	"toolkit/backend"
	"toolkit/distrib"
	"toolkit/onnx"
)

// Data parallelism (WithComm). Every rank runs the whole recipe with the same model,
// groups, stages and hooks; its loaders give it its share of every batch
// (dataset.Shard: data.batch_size stays the global batch), keyed like one process's
// (seed, epoch, example), so that the shares of a step together are exactly one
// process's batch. A step's forward and backward passes run on the share alone; then
// the step's statistics (loss, correct predictions, predictions per class, examples,
// the ranks' wishes to stop) and its gradients are summed over the ranks (each share's
// mean gradient times its size, one fused buffer, each group's part summed as soon as
// the backward pass has finished it (gradientReducer), divided by the batch's size),
// so that every rank sees the batch's numbers and applies the same
// update: the diagnostics, early stopping, the best epoch and repairs decide alike on
// every rank. Validation and test data are sharded too and their sums reduced.
//
// What differs from one process: Dropout draws each rank's masks from its own stream
// (rank 0's is one process's); BatchNormalization normalises each share by its own
// batch statistics, and after every step the running statistics become rank 0's, as
// PyTorch's DistributedDataParallel broadcasts its buffers. A Ctrl-C or SIGTERM (which
// mpirun passes to every rank) is agreed on at the next step: every rank stops at the
// same position, and rank 0, which alone writes the run folder, saves it. Checkpoints
// hold the global position only, so a run resumes on another number of ranks.

// stepSeed is the dropout seed of the step on this rank: one process's on rank 0, a
// stream of its own on each other rank, so that the ranks' shares of a batch do not
// draw the same masks.
func (t *Trainer) stepSeed() uint64 {
	s := mix(t.cfg.Seed, uint64(t.progress.Step))
	if r := t.comm.Rank(); r > 0 {
		s = mix(s, uint64(r))
	}
	return s
}

// reduceStep sums the step's statistics over the ranks, so that r holds the whole
// batch's loss, correct predictions, examples and predictions per class; a rank's
// wish to stop, on any rank, is context.Canceled on every rank, before the update.
func (t *Trainer) reduceStep(r *stepResult) error {
	if t.comm.Size() == 1 {
		return nil
	}
	const head = 6
	buf := make([]float64, head+len(r.Predicted))
	if r.N > 0 {
		buf[0] = r.Loss * r.Weight
	}
	buf[1], buf[2], buf[4], buf[5] = float64(r.Correct), float64(r.N), r.Weight, float64(r.Scored)
	if t.stop {
		buf[3] = 1
	}
	for i, c := range r.Predicted {
		buf[head+i] = float64(c)
	}
	if err := t.comm.AllreduceFloat64(buf); err != nil {
		return err
	}
	if buf[3] > 0 {
		return context.Canceled
	}
	r.Loss, r.Correct, r.N, r.Weight, r.Scored = buf[0]/buf[4], int(buf[1]), int(buf[2]), buf[4], int(buf[5])
	for i := range r.Predicted {
		r.Predicted[i] = int(buf[head+i])
	}
	return nil
}

// gradientReducer replaces a step's gradients, on every rank, by the whole batch's:
// each rank's mean over its share, times its loss normaliser (its examples, or their
// weights' sum), summed over the ranks, divided by the batch's normaliser. The sums
// overlap the backward pass: a group's part of one fused buffer is scaled and summed
// (one allreduce) as soon as the backward pass has finished the group's gradients
// (backend.Program.OnGradient), on a goroutine of its own, while the pass goes on
// with the groups below. The groups are summed in one fixed order, the model's last
// first, as a backward pass finishes them, so that every rank makes the same calls in
// the same order (a rank without examples has every group ready at once). A nil
// *gradientReducer (one rank) does nothing.
type gradientReducer struct {
	comm   distrib.Comm
	layout *gradientLayout
	groups []GroupUpdate
	buf    []float32
	scale  float32
	// left counts each group's gradients not yet finished; ready[g] is closed when
	// group g's are all finished.
	left  []int
	ready []chan struct{}
	quit  chan struct{}
	done  chan error
	// summing is the time the sums took (the scaling and the allreduces).
	summing time.Duration
}

// gradientLayout is where an epoch's updated groups' gradients go in the buffer the
// ranks sum: group g's part is buf[offs[g]:offs[g+1]]; groupOf is each parameter's
// group. An epoch's steps share it.
type gradientLayout struct {
	offs    []int
	groupOf map[string]int
}

// newGradientLayout lays out the gradients of groups, in order, in one buffer.
func (t *Trainer) newGradientLayout(groups []GroupUpdate) *gradientLayout {
	l := &gradientLayout{offs: make([]int, 0, len(groups)+1), groupOf: map[string]int{}}
	n := 0
	for g, gu := range groups {
		l.offs = append(l.offs, n)
		for _, p := range gu.Params {
			n += len(t.model.Param(p.Name))
			l.groupOf[p.Name] = g
		}
	}
	l.offs = append(l.offs, n)
	return l
}

// newGradientReducer starts summing groups' gradients, laid out by layout, over the
// ranks as prog finishes them (nil prog: this rank has no examples, its zero gradients
// are ready); local is this rank's loss normaliser. It returns nil on one rank.
func (t *Trainer) newGradientReducer(layout *gradientLayout, groups []GroupUpdate, prog *backend.Program, local float64) *gradientReducer {
	if t.comm.Size() == 1 {
		return nil
	}
	r := &gradientReducer{comm: t.comm, layout: layout, groups: groups, scale: float32(local),
		left: make([]int, len(groups)), ready: make([]chan struct{}, len(groups)),
		quit: make(chan struct{}), done: make(chan error, 1)}
	for g, gu := range groups {
		r.left[g] = len(gu.Params)
		r.ready[g] = make(chan struct{})
	}
	n := layout.offs[len(groups)]
	if cap(t.reduceBuf) < n {
		t.reduceBuf = make([]float32, n)
	}
	r.buf = t.reduceBuf[:n]
	if prog == nil {
		for g := range groups {
			r.left[g] = 0
			close(r.ready[g])
		}
	} else {
		prog.OnGradient(r.finished)
	}
	go r.sum()
	return r
}

// finished notes that name's gradient is final; the last of a group's makes the group
// ready.
func (r *gradientReducer) finished(name string) {
	if g, ok := r.layout.groupOf[name]; ok {
		if r.left[g]--; r.left[g] == 0 {
			close(r.ready[g])
		}
	}
}

// sum scales and sums each group's gradients, the last group first, as they become
// ready.
func (r *gradientReducer) sum() {
	for g := len(r.groups) - 1; g >= 0; g-- {
		select {
		case <-r.ready[g]:
		case <-r.quit:
			r.done <- context.Canceled
			return
		}
		began := time.Now()
		part := r.buf[r.layout.offs[g]:r.layout.offs[g+1]]
		off := 0
		for _, p := range r.groups[g].Params {
			for i, v := range p.Grad {
				part[off+i] = v * r.scale
			}
			off += len(p.Grad)
		}
		if err := r.comm.AllreduceFloat32(part); err != nil {
			r.done <- err
			return
		}
		r.summing += time.Since(began)
	}
	r.done <- nil
}

// wait waits until every group's gradients are summed over the ranks, and records in
// res the time the sums took and the time it waited.
func (r *gradientReducer) wait(res *stepResult) error {
	if r == nil {
		return nil
	}
	began := time.Now()
	err := <-r.done
	res.AllreduceSeconds, res.AllreduceWaitSeconds = r.summing.Seconds(), time.Since(began).Seconds()
	return err
}

// cancel gives up the sums still waiting for their gradients (a failed run, which
// then ends every rank: a sum under way ends with them).
func (r *gradientReducer) cancel() {
	if r != nil {
		close(r.quit)
	}
}

// divide writes the sums divided by the batch's loss normaliser, global, into the
// gradients.
func (r *gradientReducer) divide(global float64) {
	if r == nil {
		return
	}
	div := float32(global)
	for g, gu := range r.groups {
		off := r.layout.offs[g]
		for _, p := range gu.Params {
			for i := range p.Grad {
				p.Grad[i] = r.buf[off+i] / div
			}
			off += len(p.Grad)
		}
	}
}

// reduceBuffer sums buf over the ranks, in place.
func (t *Trainer) reduceBuffer(buf []float64) error {
	if t.comm.Size() == 1 {
		return nil
	}
	return t.comm.AllreduceFloat64(buf)
}

// reduceSums sums evaluation totals over the ranks.
func (t *Trainer) reduceSums(sums ...*float64) error {
	if t.comm.Size() == 1 {
		return nil
	}
	buf := make([]float64, len(sums))
	for i, s := range sums {
		buf[i] = *s
	}
	if err := t.comm.AllreduceFloat64(buf); err != nil {
		return err
	}
	for i, s := range sums {
		*s = buf[i]
	}
	return nil
}

// agreeStop says on every rank whether any rank's context was cancelled.
func (t *Trainer) agreeStop(ctx context.Context) error {
	if t.comm.Size() == 1 {
		return ctx.Err()
	}
	buf := []float64{0}
	if ctx.Err() != nil {
		buf[0] = 1
	}
	if err := t.comm.AllreduceFloat64(buf); err != nil {
		return err
	}
	if buf[0] > 0 {
		return context.Canceled
	}
	return nil
}

// loaderContext is the context the loaders run under: a rank's own cancellation must
// not stop its loader before the ranks have agreed to stop (agreeStop, reduceStep).
func (t *Trainer) loaderContext(ctx context.Context) context.Context {
	if t.comm.Size() == 1 {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// syncStart makes every rank start from rank 0's weights (broadcast), and checks that
// the ranks agree on them, on the optimizers' state and on the position (Agree): at the
// start of every Run, a resumed one too.
func (t *Trainer) syncStart() error {
	if t.comm.Size() == 1 {
		return nil
	}
	names := t.model.ParamNames()
	n := 0
	for _, name := range names {
		n += len(t.model.Param(name))
	}
	buf := make([]float32, n)
	off := 0
	for _, name := range names {
		off += copy(buf[off:], t.model.Param(name))
	}
	if err := t.comm.Broadcast(float32Raw(buf)); err != nil {
		return err
	}
	t.ckpt.waitRead()
	off = 0
	for _, name := range names {
		off += copy(t.model.Param(name), buf[off:])
	}
	t.cache.invalidate()
	return distrib.Agree(t.comm, "weights, optimizer state and position", t.stateFingerprint())
}

// syncRunningStats gives every rank rank 0's BatchNormalization running statistics,
// after a step that may have changed them.
func (t *Trainer) syncRunningStats() error {
	if t.comm.Size() == 1 || !t.forwardUpdates {
		return nil
	}
	names := runningStats(t.model.IR())
	n := 0
	for _, name := range names {
		n += len(t.model.Param(name))
	}
	buf := make([]float32, 0, n)
	for _, name := range names {
		buf = append(buf, t.model.Param(name)...)
	}
	if err := t.comm.Broadcast(float32Raw(buf)); err != nil {
		return err
	}
	off := 0
	for _, name := range names {
		off += copy(t.model.Param(name), buf[off:])
	}
	return nil
}

// runningStats names the running means and variances of the model's
// BatchNormalization layers.
func runningStats(m *onnx.Model) []string {
	var out []string
	for _, n := range m.Graph.Nodes {
		if n.OpType == "BatchNormalization" && len(n.Inputs) == 5 {
			for _, in := range n.Inputs[3:] {
				if init := m.Graph.Initializer(in); init != nil {
					out = append(out, in)
				}
			}
		}
	}
	return out
}

// stateFingerprint fingerprints the weights, the optimizers' state and the position.
func (t *Trainer) stateFingerprint() uint64 {
	h := fnv.New64a()
	for _, name := range t.model.ParamNames() {
		h.Write(float32Raw(t.model.Param(name)))
	}
	for _, g := range slices.Sorted(maps.Keys(t.optims)) {
		st := t.optims[g].StateView()
		hyper, _ := json.Marshal(st.Hyper)
		h.Write(hyper)
		for _, p := range slices.Sorted(maps.Keys(st.Params)) {
			ps := st.Params[p]
			h.Write([]byte(p))
			h.Write(float32Raw([]float32{float32(ps.Step)}))
			for _, b := range [][]float32{ps.MomentumBuffer, ps.ExpAvg, ps.ExpAvgSq} {
				h.Write(float32Raw(b))
			}
		}
	}
	pos, _ := json.Marshal(t.progress)
	h.Write(pos)
	return h.Sum64()
}

// float32Raw is f's memory as bytes (the ranks share a byte order).
func float32Raw(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}
