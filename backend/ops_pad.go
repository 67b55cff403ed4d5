package backend

func init() {
	register("Pad", newPad[float32], newPad[float64])
}

// pad is Pad in constant, edge or reflect mode: pads (begin values for each axis, then
// end values) are an attribute before opset 11 and a constant input from opset 11.
// Negative pads crop.
type pad[T float] struct {
	mode    string
	in, out []int
	begin   []int
	value   T
}

func newPad[T float](c *opContext) (*opKernels[T], error) {
	mode := c.node.AttrString("mode", "constant")
	switch mode {
	case "constant", "edge", "reflect":
	default:
		return nil, c.errorf("mode %q is not supported: constant, edge or reflect", mode)
	}
	rank := len(c.in[0])
	var pads []int64
	var value float64
	if c.opset < 11 {
		pads = c.node.AttrInts("pads", nil)
		value = float64(c.node.AttrFloat("value", 0))
	} else {
		if !c.has(1) || c.consts[1] == nil {
			return nil, c.errorf("the pads input must be a constant")
		}
		pads = c.consts[1].Ints
		if c.has(2) {
			k := c.consts[2]
			if k == nil || len(k.Floats) != 1 {
				return nil, c.errorf("the constant_value input must be a constant scalar")
			}
			value = float64(k.Floats[0])
		}
		if c.has(3) {
			return nil, c.errorf("the axes input is not supported")
		}
	}
	if len(pads) != 2*rank {
		return nil, c.errorf("pads %v: want %d values for rank %d", pads, 2*rank, rank)
	}
	k := &pad[T]{mode: mode, in: c.in[0], out: c.out[0], value: T(value)}
	for i := 0; i < rank; i++ {
		k.begin = append(k.begin, int(pads[i]))
		if k.in[i]+int(pads[i])+int(pads[i+rank]) != k.out[i] {
			return nil, c.errorf("pads %v do not turn %v into %v", pads, k.in, k.out)
		}
		if mode == "reflect" && (int(pads[i]) >= k.in[i] || int(pads[i+rank]) >= k.in[i]) {
			return nil, c.errorf("reflect pads %v must be smaller than the input %v", pads, k.in)
		}
	}
	return &opKernels[T]{outputs: []kernel[T]{k}, data: []int{0}}, nil
}

// source maps an output coordinate along axis d to the input coordinate it copies, or
// -1 for a constant cell.
func (k *pad[T]) source(d, o int) int {
	i, n := o-k.begin[d], k.in[d]
	if i >= 0 && i < n {
		return i
	}
	switch k.mode {
	case "edge":
		return min(max(i, 0), n-1)
	case "reflect":
		if i < 0 {
			return -i
		}
		return 2*(n-1) - i
	}
	return -1
}

// walk calls f(inIndex, outIndex) for every output element, inIndex -1 for constants.
func (k *pad[T]) walk(f func(i, o int)) {
	rank := len(k.in)
	inStride := make([]int, rank)
	outStride := make([]int, rank)
	s, t := 1, 1
	for d := rank - 1; d >= 0; d-- {
		inStride[d], outStride[d] = s, t
		s *= k.in[d]
		t *= k.out[d]
	}
	total := numElements(k.out)
	for o := 0; o < total; o++ {
		rem, i := o, 0
		for d := 0; d < rank; d++ {
			src := k.source(d, rem/outStride[d])
			rem %= outStride[d]
			if src < 0 {
				i = -1
				break
			}
			i += src * inStride[d]
		}
		f(i, o)
	}
}

func (k *pad[T]) forward(ins [][]T, out []T) error {
	x := ins[0]
	k.walk(func(i, o int) {
		if i < 0 {
			out[o] = k.value
		} else {
			out[o] = x[i]
		}
	})
	return nil
}

func (k *pad[T]) backwardReads(int) reads { return reads{} }

func (k *pad[T]) backward(_ int, ins [][]T, out, gout, gin []T) error {
	clear(gin)
	k.walk(func(i, o int) {
		if i >= 0 {
			gin[i] += gout[o]
		}
	})
	return nil
}
