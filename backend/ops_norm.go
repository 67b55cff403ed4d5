package backend

import (
	"slices"

	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// The normalization family (schemas in onnx/ops_norm.go): BatchNormalization and
// LayerNormalization.

func init() {
	register("BatchNormalization", newBatchNorm[float32], newBatchNorm[float64])
	register("LayerNormalization", newLayerNorm[float32], newLayerNorm[float64])
}

// batchNorm is BatchNormalization over NCHW (or [N C]) input. Inputs: X, scale, B,
// mean, var. In inference it uses the running mean and variance. In training (a
// training program that trains the layer's scale or shift, or training_mode=1 in the
// file) it normalises with the batch's statistics; a training program also updates the
// running statistics in place, the way PyTorch's train() mode does (unbiased variance),
// so that an exported model carries them. A layer whose scale and shift are frozen stays
// in inference mode, statistics included, as a frozen Keras layer does: freezing a group
// leaves all of it as it was. The optional outputs 1 and 2 (running mean and variance, opset 14's
// training mode) follow the ONNX definition, with the biased batch variance.
type batchNorm[T float] struct {
	p        kernels.BatchNormParams
	training bool
	// act is the Relu, Clip or SiLU the output goes through, the node's only consumer
	// (planFusions); dzValid says the output gradient has been masked by its
	// derivative this run. A SiLU's input is recomputed from X for its derivative
	// (kernels.BatchNormActivationMask), with runningInvStd in inference.
	act           kernels.Activation
	dzValid       bool
	runningInvStd []T
	// updateRunning is set in training programs: the running statistics are model
	// buffers updated in place.
	updateRunning bool
	mean, invStd  []T
	// sumDy and sumDyXhat are the per-channel sums the three gradients share in
	// training (kernels.BatchNormTrainBackwardSums), computed by the first of them after
	// each forward pass (haveSums).
	sumDy, sumDyXhat []float64
	haveSums         bool
	// roundX is set in a training program with Options.NormBF16: the gradients read
	// X rounded, straight from its compact copy (readsRounded; only float32 programs
	// keep copies), which the forward pass writes into xCopy when the plan gives one
	// (inputCopier).
	roundX bool
	xCopy  []T
}

func newBatchNorm[T float](c *opContext) (*opKernels[T], error) {
	x := c.in[0]
	if len(x) < 2 {
		return nil, c.errorf("X has rank %d: want [N C ...]", len(x))
	}
	if c.opset < 9 && c.node.AttrInt("spatial", 1) != 1 {
		return nil, c.errorf("spatial=0 is not supported")
	}
	for i := 1; i < 5; i++ {
		if !c.has(i) || len(c.in[i]) != 1 || c.in[i][0] != x[1] {
			return nil, c.errorf("input %d must have shape [%d]", i, x[1])
		}
	}
	fileTraining := c.node.AttrInt("training_mode", 0) != 0
	programTraining := c.training && (c.trained(1) || c.trained(2))
	p := kernels.BatchNormParams{
		N: x[0], C: x[1], HW: numElements(x[2:]),
		Epsilon:  float64(c.node.AttrFloat("epsilon", 1e-5)),
		Momentum: float64(c.node.AttrFloat("momentum", 0.9)),
	}
	k := &batchNorm[T]{
		p:             p,
		act:           c.fuseAct,
		training:      programTraining || fileTraining,
		updateRunning: programTraining,
		mean:          make([]T, p.C),
		invStd:        make([]T, p.C),
		sumDy:         make([]float64, p.C),
		sumDyXhat:     make([]float64, p.C),
		roundX:        programTraining && c.normBF16,
	}
	ks := &opKernels[T]{
		outputs: []kernel[T]{k},
		data:    []int{0, 1, 2, 3, 4},
	}
	if k.training && c.opset >= 14 {
		ks.outputs = append(ks.outputs, &runningStat[T]{p: p, variance: false}, &runningStat[T]{p: p, variance: true})
	}
	return ks, nil
}

func (k *batchNorm[T]) forward(ins [][]T, out []T) error {
	k.haveSums, k.dzValid = false, false
	x, scale, bias, mean, variance := ins[0], ins[1], ins[2], ins[3], ins[4]
	if !k.training {
		kernels.BatchNormInferenceAct(k.p, x, scale, bias, mean, variance, out, k.act)
		return nil
	}
	if !k.updateRunning {
		mean, variance = nil, nil
	}
	// With X's compact copy to write where the plan gives one (copiesInput).
	kernels.BatchNormTrainForwardCopy(k.p, x, scale, bias, out, k.mean, k.invStd, mean, variance, k.act, k.xCopy)
	return nil
}

// backwardReads: in training the data gradient reads X and the scale, the scale's
// gradient X (with the batch statistics the kernel keeps); in inference the data
// gradient reads the scale and the running variance, the scale's X and both running
// statistics; the shift's gradient reads none.
// With a fused Relu or Clip each also reads the output (its derivative's mask); with a
// fused SiLU each reads X, the scale and the shift (and in inference the running
// statistics), from which the mask recomputes the SiLU's input.
func (k *batchNorm[T]) backwardReads(i int) reads {
	if k.act.Kind == kernels.SiLUActivation {
		if k.training {
			return readsIn(0, 1, 2)
		}
		return readsIn(0, 1, 2, 3, 4)
	}
	var r reads
	switch {
	case i == 2:
	case k.training && i == 0:
		r = readsIn(0, 1)
	case k.training:
		r = readsIn(0)
	case i == 0:
		r = readsIn(1, 4)
	default:
		r = readsIn(0, 3, 4)
	}
	r.out = k.act.Kind != kernels.NoActivation
	return r
}

// readsRounded: a fused Relu's output (its mask); with Options.NormBF16, in training,
// X too, wherever a gradient reads it (the kernels' gradients then differ from the
// float32 X's by its rounding: not the same bits, unlike the others'); otherwise not X,
// whose statistics are float32.
func (k *batchNorm[T]) readsRounded(i int) reads {
	r := reads{out: k.act.Kind == kernels.ReluActivation}
	if k.roundX && slices.Contains(k.backwardReads(i).in, 0) {
		r.in = []int{0}
	}
	return r
}

// copiesInput: X, where its gradients read it rounded (roundX).
func (k *batchNorm[T]) copiesInput(i int) bool { return i == 0 && k.roundX }

// savedLen: nothing unless the plan has the forward pass write X's compact copy
// (copiesInput), into the value setSaved gives.
func (k *batchNorm[T]) savedLen() int  { return 0 }
func (k *batchNorm[T]) setSaved(s []T) { k.xCopy = s }

// readsCompact: what readsRounded names, straight from the compact copies (the
// kernels read a fused Relu's output back a plane at a time, X a channel at a time).
func (k *batchNorm[T]) readsCompact(i int) reads { return k.readsRounded(i) }

func (k *batchNorm[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	x, scale, bias, mean, variance := ins[0], ins[1], ins[2], ins[3], ins[4]
	// The gradient at the activation's output becomes the one at the normalization's,
	// once a run, in place (as a fused convolution's, conv.maskAct): by the data
	// gradient's kernel a channel at a time when it runs first in training, else here.
	act := k.act
	if k.dzValid {
		act = kernels.Activation{}
	}
	if fused := k.training && i == 0 && !k.haveSums; act.Kind != kernels.NoActivation && !fused {
		statMean, statInv := k.mean, k.invStd
		if !k.training && act.Kind == kernels.SiLUActivation { // only a SiLU's mask reads the statistics
			if k.runningInvStd == nil {
				k.runningInvStd = make([]T, k.p.C)
			}
			kernels.BatchNormInvStd(k.p, variance, k.runningInvStd)
			statMean, statInv = mean, k.runningInvStd
		}
		kernels.BatchNormActivationMask(k.p, act, x, scale, bias, statMean, statInv, out, gout)
		k.dzValid, act = true, kernels.Activation{}
	}
	switch {
	case !k.training && i == 2:
		kernels.BatchNormBackwardBias(k.p, gout, gin)
	case !k.training && i == 0:
		kernels.BatchNormInferenceBackwardData(k.p, scale, variance, gout, gin)
	case !k.training && i == 1:
		kernels.BatchNormInferenceBackwardScale(k.p, x, mean, variance, gout, gin)
	case i == 2 && !k.haveSums:
		// The shift's gradient alone (it reads no X).
		kernels.BatchNormBackwardBias(k.p, gout, gin)
	case i == 2:
		for c, v := range k.sumDy {
			gin[c] = T(v)
		}
	default:
		// The data and the scale's gradients (which run before the shift's): the first
		// computes the sums both need, and the shift's.
		switch {
		case i == 0 && !k.haveSums:
			kernels.BatchNormTrainBackward(k.p, x, scale, bias, k.mean, k.invStd, act, out, gout, gin, k.sumDy, k.sumDyXhat)
			k.haveSums, k.dzValid = true, true
			return nil
		case !k.haveSums:
			kernels.BatchNormTrainBackwardSums(k.p, x, k.mean, k.invStd, gout, k.sumDy, k.sumDyXhat)
			k.haveSums = true
		}
		if i == 0 {
			kernels.BatchNormTrainBackwardDataSums(k.p, x, scale, k.mean, k.invStd, k.sumDy, k.sumDyXhat, gout, gin)
		} else {
			for c, v := range k.sumDyXhat {
				gin[c] = T(v)
			}
		}
	}
	return nil
}

// runningStat is output 1 (running mean) or 2 (running variance) of a training-mode
// BatchNormalization: input*momentum + batch statistic*(1-momentum), with the biased
// batch variance as in the ONNX definition.
type runningStat[T float] struct {
	p        kernels.BatchNormParams
	variance bool
}

func (k *runningStat[T]) forward(ins [][]T, out []T) error {
	x := ins[0]
	m := float64(k.p.N * k.p.HW)
	for c := 0; c < k.p.C; c++ {
		var sum, sq float64
		for n := 0; n < k.p.N; n++ {
			for _, v := range x[(n*k.p.C+c)*k.p.HW : (n*k.p.C+c+1)*k.p.HW] {
				sum += float64(v)
			}
		}
		mean := sum / m
		stat, running := mean, ins[3][c]
		if k.variance {
			for n := 0; n < k.p.N; n++ {
				for _, v := range x[(n*k.p.C+c)*k.p.HW : (n*k.p.C+c+1)*k.p.HW] {
					sq += (float64(v) - mean) * (float64(v) - mean)
				}
			}
			stat, running = sq/m, ins[4][c]
		}
		out[c] = T(float64(running)*k.p.Momentum + stat*(1-k.p.Momentum))
	}
	return nil
}

func (k *runningStat[T]) backwardReads(int) reads { return reads{} }

func (k *runningStat[T]) backward(int, [][]T, []T, []T, []T) error { return nil }

// layerNorm is LayerNormalization (opset 17): X viewed as rows × cols, cols the
// product of the dimensions from axis on, each row normalised; Scale and B have the
// normalized shape. The optional outputs Mean and InvStdDev are the saved statistics
// (no gradient flows back through them).
type layerNorm[T float] struct {
	rows, cols   int
	eps          float64
	bias         bool
	mean, invStd []T
}

func newLayerNorm[T float](c *opContext) (*opKernels[T], error) {
	x := c.in[0]
	axis, err := onnx.LayerNormAxis(c.node, len(x))
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	if st := c.node.AttrInt("stash_type", 1); st != 1 {
		return nil, c.errorf("stash_type=%d: only float statistics (1) are supported", st)
	}
	rows, cols := numElements(x[:axis]), numElements(x[axis:])
	for i := 1; i < 3; i++ {
		if c.has(i) && numElements(c.in[i]) != cols {
			return nil, c.errorf("input %d has shape %v; want the normalized shape %v (broadcasting it is not supported)", i, c.in[i], x[axis:])
		}
	}
	k := &layerNorm[T]{rows: rows, cols: cols, eps: float64(c.node.AttrFloat("epsilon", 1e-5)), bias: c.has(2),
		mean: make([]T, rows), invStd: make([]T, rows)}
	ks := &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}
	if k.bias {
		ks.data = append(ks.data, 2)
	}
	ks.outputs = append(ks.outputs, &layerNormStat[T]{ln: k, invStd: false}, &layerNormStat[T]{ln: k, invStd: true})
	return ks, nil
}

func (k *layerNorm[T]) forward(ins [][]T, out []T) error {
	var bias []T
	if k.bias {
		bias = ins[2]
	}
	kernels.LayerNormForward(k.rows, k.cols, k.eps, ins[0], ins[1], bias, out, k.mean, k.invStd)
	return nil
}

// overwritesGrad: the three gradients overwrite their outputs.
func (k *layerNorm[T]) overwritesGrad() bool { return true }

// backwardReads: the data gradient reads X and the scale, the scale's X (with the
// statistics the kernel keeps), the shift's neither.
func (k *layerNorm[T]) backwardReads(i int) reads {
	switch i {
	case 0:
		return readsIn(0, 1)
	case 1:
		return readsIn(0)
	}
	return reads{}
}

func (k *layerNorm[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	switch i {
	case 0:
		kernels.LayerNormBackwardData(k.rows, k.cols, ins[0], ins[1], k.mean, k.invStd, gout, gin)
	case 1:
		kernels.LayerNormBackwardScale(k.rows, k.cols, ins[0], k.mean, k.invStd, gout, gin)
	case 2:
		kernels.LayerNormBackwardBias(k.rows, k.cols, gout, gin)
	}
	return nil
}

// layerNormStat is output 1 (Mean) or 2 (InvStdDev) of a LayerNormalization: the
// statistics are computed again (the outputs' kernels may run in any order).
type layerNormStat[T float] struct {
	ln     *layerNorm[T]
	invStd bool
	y      []T
}

func (k *layerNormStat[T]) forward(ins [][]T, out []T) error {
	ln := k.ln
	k.y = reuse(k.y, ln.rows*ln.cols)
	mean, inv := make([]T, ln.rows), make([]T, ln.rows)
	var bias []T
	if ln.bias {
		bias = ins[2]
	}
	kernels.LayerNormForward(ln.rows, ln.cols, ln.eps, ins[0], ins[1], bias, k.y, mean, inv)
	if k.invStd {
		copy(out, inv)
	} else {
		copy(out, mean)
	}
	return nil
}

func (k *layerNormStat[T]) backwardReads(int) reads { return reads{} }

func (k *layerNormStat[T]) backward(int, [][]T, []T, []T, []T) error { return nil }
