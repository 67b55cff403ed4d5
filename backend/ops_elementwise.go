package backend

import (
	"toolkit/backend/kernels"
)

func init() {
	register("Relu", newActivation[float32], newActivation[float64])
	register("LeakyRelu", newActivation[float32], newActivation[float64])
	register("Sigmoid", newActivation[float32], newActivation[float64])
	register("Tanh", newActivation[float32], newActivation[float64])
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		register(op, newBinary[float32], newBinary[float64])
	}
}

// activation is a one-input element-wise function.
type activation[T float] struct {
	op    string
	alpha T
}

func newActivation[T float](c *opContext) (*opKernels[T], error) {
	k := &activation[T]{op: c.node.OpType, alpha: T(c.node.AttrFloat("alpha", 0.01))}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

func (k *activation[T]) forward(ins [][]T, out []T) error {
	switch k.op {
	case "Relu":
		kernels.ReluForward(ins[0], out)
	case "LeakyRelu":
		kernels.LeakyReluForward(k.alpha, ins[0], out)
	case "Sigmoid":
		kernels.SigmoidForward(ins[0], out)
	case "Tanh":
		kernels.TanhForward(ins[0], out)
	}
	return nil
}

// overwritesGrad: the activations' backward functions write every element.
func (k *activation[T]) overwritesGrad() bool { return true }

func (k *activation[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	switch k.op {
	case "Relu":
		kernels.ReluBackward(ins[0], gout, gin)
	case "LeakyRelu":
		kernels.LeakyReluBackward(k.alpha, ins[0], gout, gin)
	case "Sigmoid":
		kernels.SigmoidBackward(out, gout, gin)
	case "Tanh":
		kernels.TanhBackward(out, gout, gin)
	}
	return nil
}

// binary is Add, Sub, Mul or Div with numpy broadcasting.
type binary[T float] struct {
	op     string
	sa, sb []int
}

func newBinary[T float](c *opContext) (*opKernels[T], error) {
	if _, err := kernels.BroadcastShape(c.in[0], c.in[1]); err != nil {
		return nil, c.errorf("A %v and B %v do not broadcast: %v", c.in[0], c.in[1], err)
	}
	k := &binary[T]{op: c.node.OpType, sa: c.in[0], sb: c.in[1]}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0, 1}}, nil
}

func (k *binary[T]) forward(ins [][]T, out []T) error {
	a, b := ins[0], ins[1]
	switch k.op {
	case "Add":
		kernels.Add(k.sa, a, k.sb, b, out)
	case "Sub":
		kernels.Sub(k.sa, a, k.sb, b, out)
	case "Mul":
		kernels.Mul(k.sa, a, k.sb, b, out)
	case "Div":
		kernels.Div(k.sa, a, k.sb, b, out)
	}
	return nil
}

func (k *binary[T]) backward(i int, ins [][]T, out, gout, gin []T) error {
	a, b := ins[0], ins[1]
	type grad func(aShape []int, a []T, bShape []int, b []T, dy, d []T)
	fns := map[string][2]grad{
		"Add": {kernels.AddBackwardA[T], kernels.AddBackwardB[T]},
		"Sub": {kernels.SubBackwardA[T], kernels.SubBackwardB[T]},
		"Mul": {kernels.MulBackwardA[T], kernels.MulBackwardB[T]},
		"Div": {kernels.DivBackwardA[T], kernels.DivBackwardB[T]},
	}
	fns[k.op][i](k.sa, a, k.sb, b, gout, gin)
	return nil
}
