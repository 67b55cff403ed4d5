package backend

import (
	"toolkit/backend/kernels"
	"toolkit/onnx"
)

// The reduction family (schemas in onnx/ops_reduce.go): ReduceSum, ReduceMean and
// ReduceMax over a set of axes. keepdims changes the output's shape, not its layout.

func init() {
	for _, op := range []string{"ReduceSum", "ReduceMean", "ReduceMax"} {
		register(op, newReduce[float32], newReduce[float64])
	}
}

type reduce[T float] struct {
	op          string
	shape, axes []int
}

func newReduce[T float](c *opContext) (*opKernels[T], error) {
	var axesInput *onnx.Tensor
	if len(c.consts) > 1 {
		axesInput = c.consts[1]
	}
	axes, err := onnx.ReduceAxes(c.node, c.opset, len(c.in[0]), axesInput)
	if err != nil {
		return nil, c.errorf("%v", err)
	}
	k := &reduce[T]{op: c.node.OpType, shape: c.in[0], axes: axes}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *reduce[T]) forward(ins [][]T, out []T) error {
	switch k.op {
	case "ReduceSum":
		kernels.ReduceSum(k.shape, k.axes, ins[0], out)
	case "ReduceMean":
		kernels.ReduceMean(k.shape, k.axes, ins[0], out)
	case "ReduceMax":
		kernels.ReduceMax(k.shape, k.axes, ins[0], out)
	}
	return nil
}

// overwritesGrad: the reductions' backward functions write every element.
func (k *reduce[T]) overwritesGrad() bool { return true }

// backwardReads: ReduceMax's gradient finds the maxima again (X and the output); the
// others read nothing.
func (k *reduce[T]) backwardReads(int) reads {
	if k.op == "ReduceMax" {
		return reads{in: []int{0}, out: true}
	}
	return reads{}
}

func (k *reduce[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	switch k.op {
	case "ReduceSum":
		kernels.ReduceSumBackward(k.shape, k.axes, gout, gin)
	case "ReduceMean":
		kernels.ReduceMeanBackward(k.shape, k.axes, gout, gin)
	case "ReduceMax":
		kernels.ReduceMaxBackward(k.shape, k.axes, ins[0], out, gout, gin)
	}
	return nil
}
