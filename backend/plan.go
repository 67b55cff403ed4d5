package backend

import (
	"cmp"
	"slices"
	"unsafe"

	"toolkit/backend/kernels"
)

// Memory planning. Every value a program's steps write, other than the ones the caller
// reads after a run, lives in one arena for as long as steps read it: from the step that
// writes it to the last step that reads it. The plan is made once, when the program is
// built, the way inference runtimes plan theirs (TensorFlow Lite's arena planner,
// ONNX Runtime's memory patterns), for the backward pass too:
//
//   - a backward step reads only the forward values its kernel declares
//     (backwardReader), so the others go after their last forward reader;
//   - a step whose kernel allows it writes its output over an argument that nothing
//     reads afterwards (an activation over its input, a gradient over its output's
//     gradient, a sum of gradients over one of them): the two share one buffer;
//   - an asynchronous gradient (asyncGradient) reads its arguments while the steps after
//     it run, until the next asynchronous step waits for it, or a step planned to wait
//     (planWaits): its arguments live until that step (until the one before a step
//     planned to wait, which waits before anything else);
//   - the buffers are then placed in the arena by size, largest first, each at the
//     lowest offset that no buffer alive at the same time overlaps (best fit among the
//     gaps), as TensorFlow Lite's greedy-by-size strategy does.

// arenaAlign is the alignment of every buffer in the arena, in elements: 64 bytes of
// float32, a cache line and an AVX-512 register.
const arenaAlign = 16

// memPlan is a program's memory plan.
type memPlan struct {
	size int // the arena's length in elements
}

// interval is a buffer of the arena: the steps it is alive over and its length.
type interval struct{ first, last, size int }

// planMemory computes the values' lifetimes, merges the values written in place, and
// places the buffers in the arena.
func (p *program[T]) planMemory() {
	vals := p.vals
	for i := range vals {
		if vals[i].kind == valArena {
			vals[i].last = vals[i].first
		}
	}
	for i, s := range p.steps {
		vals[s.out].first = i
		if vals[s.out].kind == valArena {
			vals[s.out].last = max(vals[s.out].last, i)
		}
		for _, a := range s.args {
			if a >= 0 {
				vals[a].last = max(vals[a].last, i)
			}
		}
		if a := s.saved; a >= 0 {
			if s.kind == stepForward {
				vals[a].first = i
			}
			vals[a].last = max(vals[a].last, i)
		}
	}
	for i := range vals {
		if vals[i].output && vals[i].kind == valArena {
			vals[i].last = len(p.steps)
		}
	}
	// An asynchronous gradient's arguments live until the next step that waits for it:
	// the next asynchronous step, or the end of the run; or up to a step planned to wait
	// (planWaits), which waits before it writes anything, so that its output may take
	// their place.
	next := len(p.steps)
	for i := len(p.steps) - 1; i >= 0; i-- {
		s := p.steps[i]
		if s.waits && !s.async {
			next = i - 1
		}
		if !s.async {
			continue
		}
		for _, a := range append(s.args, s.saved) {
			if a >= 0 {
				vals[a].last = max(vals[a].last, next)
			}
		}
		next = i
	}
	// Buffers: each arena value starts in its own; a step in place merges its output
	// into its argument's buffer.
	bufOf := make([]int, len(vals))
	var bufs []interval
	for i, v := range vals {
		bufOf[i] = -1
		if v.kind == valArena {
			bufOf[i] = len(bufs)
			bufs = append(bufs, interval{first: v.first, last: v.last, size: v.size})
		}
	}
	for i, s := range p.steps {
		o := s.out
		if vals[o].kind != valArena {
			continue
		}
		for _, c := range inPlaceCandidates(s) {
			a := s.args[c]
			if a < 0 || vals[a].kind != valArena || vals[a].size != vals[o].size || bufs[bufOf[a]].last != i {
				continue
			}
			if slices.Contains(s.args[:c], a) || slices.Contains(s.args[c+1:], a) {
				continue // the step reads it as another argument too (a convolution's input and residual)
			}
			b := bufOf[a]
			bufs[b].last = max(bufs[b].last, bufs[bufOf[o]].last)
			bufs[bufOf[o]].size = 0 // merged away
			bufOf[o] = b
			break
		}
	}
	offs, size := packArena(bufs)
	for i := range vals {
		if bufOf[i] >= 0 {
			vals[i].off = offs[bufOf[i]]
		}
	}
	p.mem = memPlan{size: size}
}

// planSavedBF16 plans the program with the values its backward pass reads rounded kept
// in bfloat16 between the passes (compactSaved) where that makes the arena smaller, else
// as it is: where the peak is a gradient's, late in the backward pass, the copies save
// nothing there and would cost their two passes for nothing.
//
// The max poolings keep their positions for the copies' sake (their inputs, read by a
// Relu's mask besides, can then be copied too): the plan without the copies has them
// find their maxima again in their inputs, as without SavedBF16.
func (p *program[T]) planSavedBF16() {
	steps, vals := slices.Clone(p.steps), slices.Clone(p.vals)
	for i := range steps {
		steps[i].args = slices.Clone(steps[i].args)
	}
	p.compactSaved()
	p.planMemory()
	p.planWaits()
	cSteps, cVals, cMem := p.steps, p.vals, p.mem
	p.steps, p.vals = steps, vals
	pools := p.dropPoolPositions()
	if len(cSteps) == len(steps) && len(pools) == 0 {
		p.steps, p.vals, p.mem = cSteps, cVals, cMem // nothing kept in bfloat16
		return
	}
	p.planMemory()
	p.planWaits()
	if cMem.size < p.mem.size {
		p.steps, p.vals, p.mem = cSteps, cVals, cMem
		for _, k := range pools {
			k.keepPositions = true
		}
	}
}

// dropPoolPositions turns the max poolings that keep their positions back to finding
// their maxima again in their inputs (the steps read the input, the positions' value is
// dropped) and returns their kernels.
func (p *program[T]) dropPoolPositions() []*maxPool[T] {
	var pools []*maxPool[T]
	input := map[*nodeOp[T]]int{}
	for i := range p.steps {
		s := &p.steps[i]
		var op *nodeOp[T]
		switch s.kind {
		case stepForward:
			op = s.fwd
		case stepGrad:
			op = s.grad.op
		}
		if op == nil {
			continue
		}
		k, ok := op.k.(*maxPool[T])
		if !ok {
			continue
		}
		if s.kind == stepForward && k.keepPositions { // the forward step comes first
			k.keepPositions, k.positions = false, nil
			pools = append(pools, k)
			input[op] = s.args[0]
		}
		if !slices.Contains(pools, k) {
			continue
		}
		if s.saved >= 0 {
			p.vals[s.saved].size = 0
			s.saved = -1
		}
		if s.kind == stepGrad {
			s.args[0] = input[op]
		}
	}
	return pools
}

// planWaits makes steps wait for the asynchronous gradient under way where its running
// beside them would hold memory at the arena's peak: an asynchronous gradient keeps what
// it reads until the next step that waits for it, which may be past the steps where the
// most values are alive (VGG19's 112-pixel weight gradients, whose inputs stayed alive
// through the 224-pixel layers' gradients). At the step of the most live values, if the
// last asynchronous gradient started before it is not yet waited for, that step or a
// neighbour waits for it first, whichever makes the arena smallest, if any does; and
// again at the new peak.
// The values computed are the same; only where the two run beside each other changes.
func (p *program[T]) planWaits() {
	if len(p.steps) == 0 {
		return
	}
	for range 16 {
		peak := p.peakStep()
		last := -1 // the last asynchronous gradient started before the peak, not waited for
		for i := peak; i >= 0 && !(p.steps[i].waits && !p.steps[i].async); i-- {
			if i < peak && p.steps[i].async {
				last = i
				break
			}
		}
		if last < 0 {
			return
		}
		// The peak step waiting, or a neighbour (the live values' sum is not the packed
		// arena, whose greedy placement does not always come out smaller for the
		// earliest release): the smallest arena.
		size, best, bestSize := p.mem.size, -1, p.mem.size
		for _, w := range []int{peak - 1, peak, peak + 1} {
			if w <= last || w >= len(p.steps) || p.steps[w].async || p.steps[w].waits {
				continue // before the gradient, or waiting already
			}
			p.steps[w].waits = true
			p.planMemory()
			if p.mem.size < bestSize {
				best, bestSize = w, p.mem.size
			}
			p.steps[w].waits = false
		}
		if best >= 0 {
			p.steps[best].waits = true
		}
		p.planMemory()
		if p.mem.size >= size {
			return
		}
	}
}

// peakStep returns the step at which the arena values alive add up to the most.
func (p *program[T]) peakStep() int {
	live := make([]int, len(p.steps)+1)
	for _, v := range p.vals {
		if v.kind == valArena && v.first >= 0 && v.first <= v.last {
			live[v.first] += v.size
			live[min(v.last, len(p.steps)-1)+1] -= v.size
		}
	}
	peak, most, sum := 0, -1, 0
	for i := range p.steps {
		sum += live[i]
		if sum > most {
			peak, most = i, sum
		}
	}
	return peak
}

// recomputable is implemented by kernels whose output is cheap to compute again from
// their input (an element-wise function next to the matrix products around it).
type recomputable interface {
	recomputable() bool
}

// rematerialize computes again, just before the first gradient step that reads it, the
// output of a cheap element-wise step whose input the backward pass keeps anyway (its
// own gradient reads it): the output then lives through the forward pass only, and its
// copy for the backward pass from there to its last gradient reader. A Gelu or a SiLU
// between two matrix products keeps its input for its derivative, and the product after
// it its output for the weight gradient; PyTorch keeps both, the plan keeps the input
// alone (ConvNeXt-T, a ViT: the output is 4 times the width of the blocks).
func (p *program[T]) rematerialize() {
	// The steps reading each value.
	readers := make([][]int, len(p.vals))
	for i, s := range p.steps {
		for _, a := range s.args {
			if a >= 0 {
				readers[a] = append(readers[a], i)
			}
		}
	}
	type remat struct {
		at   int // insert before this step
		from int // the forward step to repeat
	}
	var todo []remat
	for i, s := range p.steps {
		if s.kind != stepForward || len(s.args) != 1 || s.args[0] < 0 {
			continue
		}
		if r, ok := s.fwd.k.(recomputable); !ok || !r.recomputable() {
			continue
		}
		v, u := s.out, s.args[0]
		if p.vals[v].kind != valArena || p.vals[v].output || p.vals[u].kind == valOwn {
			continue
		}
		if _, probed := p.probes[v]; probed {
			continue
		}
		firstBack := -1
		for _, r := range readers[v] {
			if p.steps[r].kind == stepGrad {
				firstBack = r
				break
			}
		}
		lastU := -1
		for _, r := range readers[u] {
			lastU = max(lastU, r)
		}
		// u must be read at or after the first gradient reader of v (so kept until
		// then). (The copy lives until its last reader, or the step that waits for an
		// asynchronous one, as any value.)
		if firstBack < 0 || lastU < firstBack {
			continue
		}
		todo = append(todo, remat{at: firstBack, from: i})
	}
	if len(todo) == 0 {
		return
	}
	slices.SortStableFunc(todo, func(a, b remat) int { return cmp.Compare(a.at, b.at) })
	steps := make([]step[T], 0, len(p.steps)+len(todo))
	next := 0
	for i, s := range p.steps {
		for next < len(todo) && todo[next].at == i {
			f := p.steps[todo[next].from]
			v := f.out
			c := f
			c.args = slices.Clone(f.args)
			c.inPlace = -1 // its input lives on
			c.name = f.name + " again"
			c.out = p.newValue(p.vals[v].name+"'", p.vals[v].size)
			steps = append(steps, c)
			p.gradientsRead(i, v, c.out)
			next++
		}
		steps = append(steps, s)
	}
	p.steps = steps
}

// compactMinSize is the smallest value compactSaved keeps in bfloat16, in elements: the
// two passes cost more than the memory saved on smaller ones.
const compactMinSize = 1 << 12

// compactSaved keeps in bfloat16 between the passes the values that the backward pass
// reads only rounded (Options.SavedBF16, roundedReader): a float32 value written by the
// forward pass whose every gradient reader reads it rounded is copied, right after its
// last forward reader, to a compact value of half its size (kernels.ToBF16; by that
// reader itself, as its saved value, where it can write the copy as it reads the value:
// inputCopier), read back
// right before its first gradient reader into a float32 value (kernels.FromBF16) that
// the gradient steps read instead. The value then lives through the forward pass only,
// the compact copy between the passes, and the one read back through the gradients
// that read it (until the step that waits for an asynchronous one, as any value).
// Where every gradient reader reads the copy itself (compactReader: a convolution's
// weight gradient and its fused Relu's mask), nothing is read back: the copy lives
// through those gradients instead.
func (p *program[T]) compactSaved() {
	if _, ok := any(p).(*program[float32]); !ok {
		return
	}
	readers := make([][]int, len(p.vals))
	writer := make([]int, len(p.vals))
	firstGrad := len(p.steps)
	for i, s := range p.steps {
		writer[s.out] = i
		if s.kind != stepForward {
			firstGrad = min(firstGrad, i)
		}
		for _, a := range s.args {
			if a >= 0 && (len(readers[a]) == 0 || readers[a][len(readers[a])-1] != i) {
				readers[a] = append(readers[a], i)
			}
		}
	}
	type compaction struct {
		v, after, before int
		direct           bool // every gradient reader reads the copy itself (compactReader)
	}
	var todo []compaction
	for v := range p.vals {
		val := p.vals[v]
		if val.kind != valArena || val.output || val.size < compactMinSize || len(readers[v]) == 0 {
			continue
		}
		if w := p.steps[writer[v]]; w.kind != stepForward || w.out != v {
			continue
		}
		lastFwd, firstBack := writer[v], -1
		ok, direct := true, true
		for _, r := range readers[v] {
			s := p.steps[r]
			if s.kind == stepForward && firstBack < 0 {
				lastFwd = r
				continue
			}
			if s.kind != stepGrad || !readsRounded(s, v) {
				ok = false
				break
			}
			direct = direct && readsCompactly(s, v)
			if firstBack < 0 {
				firstBack = r
			}
		}
		if ok && firstBack >= 0 && lastFwd < firstGrad {
			// Read back before the first of that op's gradients (a convolution's data
			// gradient, which does not read it, comes before its weight gradient, which
			// does): the data gradient's output is not yet alive beside the compact copy
			// and the float32 one as the step that reads it back writes it.
			for op := p.steps[firstBack].grad.op; firstBack > 0; firstBack-- {
				if prev := p.steps[firstBack-1]; prev.kind != stepGrad || prev.grad.op != op {
					break
				}
			}
			todo = append(todo, compaction{v: v, after: lastFwd, before: firstBack, direct: direct})
		}
	}
	if len(todo) == 0 {
		return
	}
	// The values to copy after each step and to read back before each step.
	after, before := map[int][]compaction{}, map[int][]compaction{}
	for _, c := range todo {
		after[c.after] = append(after[c.after], c)
		before[c.before] = append(before[c.before], c)
	}
	compactOf := map[int]int{}
	steps := make([]step[T], 0, len(p.steps)+2*len(todo))
	for i := range p.steps {
		for _, c := range before[i] {
			v := c.v
			if c.direct {
				p.gradientsRead(i, v, compactOf[v])
				continue
			}
			back := p.newValue(p.vals[v].name+" (from bfloat16)", p.vals[v].size)
			steps = append(steps, step[T]{kind: stepFromBF16, name: "FromBF16(" + p.vals[v].name + ")", args: []int{compactOf[v]}, out: back, inPlace: -1, saved: -1})
			p.gradientsRead(i, v, back)
		}
		steps = append(steps, p.steps[i]) // its arguments, as just rewritten
		for _, c := range after[i] {
			v := c.v
			compact := p.newValue(p.vals[v].name+" (bfloat16)", kernels.BF16Len(p.vals[v].size))
			compactOf[v] = compact
			if s := &steps[len(steps)-1]; copiesInput(*s, v) {
				s.saved = compact // written by the step as it reads v
				continue
			}
			steps = append(steps, step[T]{kind: stepToBF16, name: "ToBF16(" + p.vals[v].name + ")", args: []int{v}, out: compact, inPlace: -1, saved: -1})
		}
	}
	p.steps = steps
}

// copiesInput reports whether forward step s, which keeps no other saved value, writes
// the compact copy of its input v as it reads it (inputCopier).
func copiesInput[T float](s step[T], v int) bool {
	if s.kind != stepForward || s.saved >= 0 {
		return false
	}
	ic, ok := s.fwd.k.(inputCopier)
	if !ok {
		return false
	}
	for i, a := range s.args {
		if a == v && ic.copiesInput(i) {
			return true
		}
	}
	return false
}

// readsRounded reports whether gradient step s reads value v only rounded (roundedReader).
func readsRounded[T float](s step[T], v int) bool {
	rr, ok := s.grad.op.k.(roundedReader)
	return ok && readsOnly(s, v, rr.readsRounded(s.grad.input))
}

// readsCompactly reports whether gradient step s reads value v, which it reads rounded,
// straight from its compact copy (compactReader).
func readsCompactly[T float](s step[T], v int) bool {
	cr, ok := s.grad.op.k.(compactReader)
	return ok && readsOnly(s, v, cr.readsCompact(s.grad.input))
}

// readsOnly reports whether gradient step s reads value v only where r names (its
// forward inputs by index, its forward output), not as its output's gradient.
func readsOnly[T float](s step[T], v int, r reads) bool {
	nin := len(s.grad.op.inShapes)
	for k, a := range s.args {
		if a == v && (k > nin || k == nin && !r.out || k < nin && !slices.Contains(r.in, k)) {
			return false
		}
	}
	return true
}

// gradientsRead makes the gradient steps from step i on read value to where they read v
// (a copy of v made for them: rematerialize, compactSaved).
func (p *program[T]) gradientsRead(i, v, to int) {
	for j := i; j < len(p.steps); j++ {
		if p.steps[j].kind != stepGrad {
			continue
		}
		for k, a := range p.steps[j].args {
			if a == v {
				p.steps[j].args[k] = to
			}
		}
	}
}

// newValue adds an arena value the executor made (not a graph node's) and returns it.
func (p *program[T]) newValue(name string, size int) int {
	p.vals = append(p.vals, value[T]{name: name, size: size, kind: valArena, first: -1, last: -1})
	return len(p.vals) - 1
}

// inPlaceCandidates returns the arguments a step may write its output over, in order of
// preference.
func inPlaceCandidates[T float](s step[T]) []int {
	switch {
	case s.kind == stepSum:
		return []int{0, 1}
	case s.inPlace >= 0:
		return []int{s.inPlace}
	}
	return nil
}

// packArena places buffers in one arena: largest first, each in the smallest gap (or
// after the last buffer) among the buffers already placed that are alive at the same
// time. It returns each buffer's offset and the arena's length. Buffers of size 0 take
// no room.
func packArena(bufs []interval) (offs []int, size int) {
	offs = make([]int, len(bufs))
	order := make([]int, 0, len(bufs))
	for i, b := range bufs {
		if b.size > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(bufs[b].size, bufs[a].size), cmp.Compare(bufs[a].first, bufs[b].first))
	})
	aligned := func(n int) int { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }
	var placed []int // by offset
	var live []int
	for _, i := range order {
		b := bufs[i]
		need := aligned(b.size)
		live = live[:0]
		for _, j := range placed {
			if q := bufs[j]; q.first <= b.last && b.first <= q.last {
				live = append(live, j)
			}
		}
		best, bestGap, end := -1, 0, 0
		for _, j := range live {
			if gap := offs[j] - end; gap >= need && (best < 0 || gap < bestGap) {
				best, bestGap = end, gap
			}
			end = max(end, offs[j]+aligned(bufs[j].size))
		}
		if best < 0 {
			best = end
		}
		offs[i] = best
		size = max(size, best+need)
		at, _ := slices.BinarySearchFunc(placed, best, func(j, off int) int { return cmp.Compare(offs[j], off) })
		placed = slices.Insert(placed, at, i)
	}
	return offs, size
}

// memory returns the program's arena and own buffers in bytes.
func (p *program[T]) memory() Memory {
	var z T
	size := int64(unsafe.Sizeof(z))
	m := Memory{Arena: int64(p.mem.size) * size}
	shared := map[int]bool{}
	for _, s := range p.steps {
		if s.kind == stepGrad && s.grad.buf != nil {
			shared[s.out] = true // a parameter's gradient, the model's
		}
	}
	for i, v := range p.vals {
		if v.kind == valOwn && !shared[i] {
			m.Own += int64(v.size) * size
		}
	}
	return m
}

// liveAt returns the names of the arena values alive at step i (for tests and
// printing).
func (p *program[T]) liveAt(i int) []string {
	var names []string
	for _, v := range p.vals {
		if v.kind == valArena && v.first <= i && i <= v.last {
			names = append(names, v.name)
		}
	}
	return names
}
