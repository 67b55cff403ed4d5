package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// The shape family: operators that move, select or reshape data without arithmetic
// (Identity, Dropout, Cast, Flatten, Reshape, Transpose's neighbours Squeeze and
// Unsqueeze, Concat, Split, Slice, Gather, Expand, Tile) and the ones that compute
// shapes and constants (Shape, Size, Constant, ConstantOfShape, Range), which shape
// inference folds. The backend's kernels are in backend/ops_shape.go.

func init() {
	define(
		&OpSchema{name: "Identity", since: v(1, 13, 14, 16), infer: nodeCtx.identity},
		&OpSchema{name: "Dropout", since: v(1, 6, 7, 10, 12, 13), diff: onlyData, infer: nodeCtx.dropout,
			upgrade: (*upgrader).dropout},
		&OpSchema{name: "Cast", since: v(1, 6, 9, 13), diff: onlyData, infer: nodeCtx.cast},
		&OpSchema{name: "Flatten", since: v(1, 9, 11, 13), infer: nodeCtx.flatten},
		&OpSchema{name: "Reshape", since: v(1, 5, 13, 14), diff: onlyData, infer: nodeCtx.reshape},
		&OpSchema{name: "Unsqueeze", since: v(1, 11, 13), diff: onlyData, infer: nodeCtx.unsqueeze,
			upgrade: upgradeAt(13, (*upgrader).axesInput)},
		&OpSchema{name: "Squeeze", since: v(1, 11, 13), diff: onlyData, infer: nodeCtx.squeeze,
			upgrade: upgradeAt(13, (*upgrader).axesInput)},
		&OpSchema{name: "Concat", since: v(1, 4, 11, 13), infer: nodeCtx.concat},
		&OpSchema{name: "Slice", since: v(1, 10, 11, 13), diff: onlyData, infer: nodeCtx.slice,
			upgrade: upgradeAt(10, (*upgrader).slice)},
		&OpSchema{name: "Gather", since: v(1, 11, 13), diff: onlyData, infer: nodeCtx.gather},
		&OpSchema{name: "Expand", since: v(8, 13), diff: onlyData, infer: nodeCtx.expand},
		&OpSchema{name: "Split", since: v(1, 2, 11, 13), diff: onlyData, infer: nodeCtx.split,
			upgrade: upgradeAt(13, (*upgrader).splitInput)},
		&OpSchema{name: "Tile", since: v(1, 6, 13), diff: onlyData, infer: nodeCtx.tile},
		&OpSchema{name: "ScatterND", since: v(11, 13, 16), diff: []int{0, 2}, infer: nodeCtx.scatterND},
		&OpSchema{name: "Constant", since: v(1, 9, 11, 12, 13), noDiff: true, infer: nodeCtx.constant},
		&OpSchema{name: "ConstantOfShape", since: v(9), noDiff: true, infer: nodeCtx.constantOfShape},
		&OpSchema{name: "Shape", since: v(1, 13, 15), noDiff: true, infer: nodeCtx.shapeOp},
		&OpSchema{name: "Size", since: v(1, 13), noDiff: true, infer: nodeCtx.size},
		&OpSchema{name: "Range", since: v(11), noDiff: true, infer: nodeCtx.rangeOp},
	)
}

func (c nodeCtx) identity() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, t)
		return nil
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	return nil
}

func (c nodeCtx) dropout() error {
	if err := c.inputs(1, 3); err != nil {
		return err
	}
	if err := c.outputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	c.set(0, x, c.typ(0))
	c.set(1, x, Bool)
	return nil
}

func (c nodeCtx) cast() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	a := c.n.Attr("to")
	if a == nil || a.Type != AttrInt {
		return fmt.Errorf("attribute \"to\" missing")
	}
	to := DataType(a.Int)
	if to.String() == fmt.Sprintf("DataType(%d)", a.Int) || to == Undefined {
		return fmt.Errorf("cast to unknown data type %d", a.Int)
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil && (t.DataType.IsInt() || to.IsInt()) && t.NumElements() <= foldLimit {
		if out := castTensor(t, to); out != nil {
			c.setConst(0, out)
			return nil
		}
	}
	c.set(0, x, to)
	return nil
}

// castTensor converts a constant to type to, or returns nil when it cannot.
func castTensor(t *Tensor, to DataType) *Tensor {
	out := &Tensor{DataType: to, Dims: t.Dims}
	switch {
	case to.IsInt() && t.DataType.IsInt():
		out.Ints = make([]int64, len(t.Ints))
		for i, v := range t.Ints {
			out.Ints[i] = wrapInt(v, to)
		}
	case to.IsInt() && t.DataType.IsFloat():
		out.Ints = make([]int64, len(t.Floats))
		for i, v := range t.Floats {
			if to == Bool {
				if v != 0 {
					out.Ints[i] = 1
				}
				continue
			}
			out.Ints[i] = wrapInt(int64(v), to)
		}
	case to.IsFloat() && t.DataType.IsInt():
		out.DataType = Float
		out.Floats = make([]float32, len(t.Ints))
		for i, v := range t.Ints {
			out.Floats[i] = float32(v)
		}
	default:
		return nil
	}
	return out
}

// wrapInt cuts v to the range of integer type t, as a C cast would.
func wrapInt(v int64, t DataType) int64 {
	switch t {
	case Int8:
		return int64(int8(v))
	case Uint8:
		return int64(uint8(v))
	case Int16:
		return int64(int16(v))
	case Uint16:
		return int64(uint16(v))
	case Int32:
		return int64(int32(v))
	case Uint32:
		return int64(uint32(v))
	case Bool:
		if v != 0 {
			return 1
		}
		return 0
	}
	return v
}

func (c nodeCtx) flatten() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axis, err := normAxis(c.n.AttrInt("axis", 1), len(x), true)
	if err != nil {
		return err
	}
	a, b := int64(1), int64(1)
	for i, d := range x {
		if i < axis {
			a *= d
		} else {
			b *= d
		}
	}
	out := []int64{a, b}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

// reshaped is t with new dims, sharing its values.
func reshaped(t *Tensor, dims []int64) *Tensor {
	return &Tensor{DataType: t.DataType, Dims: dims, Floats: t.Floats, Ints: t.Ints, Strings: t.Strings}
}

func (c nodeCtx) reshape() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	target, err := c.intsInput(1, "shape")
	if err != nil {
		return err
	}
	allowZero := c.opset >= 14 && c.n.AttrInt("allowzero", 0) != 0
	out, err := reshapeDims(x, target, allowZero)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

// reshapeDims resolves Reshape's target shape (0 copies the input dimension unless
// allowZero, -1 is inferred) for an input of shape x.
func reshapeDims(x, target []int64, allowZero bool) ([]int64, error) {
	total, err := countElements(x)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(target))
	infer := -1
	known := int64(1)
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("target shape %v has more than one -1", target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(x) {
				return nil, fmt.Errorf("target shape %v copies dimension %d, the input %v has rank %d", target, i, x, len(x))
			}
			d = x[i]
		case d < 0:
			return nil, fmt.Errorf("target shape %v has a negative dimension", target)
		}
		out[i] = d
		known *= d
		if known > maxElements {
			return nil, fmt.Errorf("target shape %v is too large", target)
		}
	}
	if infer >= 0 {
		if known == 0 || int64(total)%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", x, total, target)
		}
		out[infer] = int64(total) / known
	} else if known != int64(total) {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", x, total, out, known)
	}
	return out, nil
}

func (c nodeCtx) constant() error {
	if err := c.inputs(0, 0); err != nil {
		return err
	}
	if err := c.outputs(1, 1); err != nil {
		return err
	}
	if len(c.n.Attributes) != 1 {
		return fmt.Errorf("has %d attributes, want exactly one value", len(c.n.Attributes))
	}
	a := c.n.Attributes[0]
	var t *Tensor
	switch {
	case a.Name == "value" && a.Type == AttrTensor && a.Tensor != nil:
		t = a.Tensor
	case a.Name == "value_float" && a.Type == AttrFloat:
		t = &Tensor{DataType: Float, Dims: []int64{}, Floats: []float32{a.Float}}
	case a.Name == "value_floats" && a.Type == AttrFloats:
		t = &Tensor{DataType: Float, Dims: []int64{int64(len(a.Floats))}, Floats: a.Floats}
	case a.Name == "value_int" && a.Type == AttrInt:
		t = &Tensor{DataType: Int64, Dims: []int64{}, Ints: []int64{a.Int}}
	case a.Name == "value_ints" && a.Type == AttrInts:
		t = &Tensor{DataType: Int64, Dims: []int64{int64(len(a.Ints))}, Ints: a.Ints}
	case a.Name == "value_string" && a.Type == AttrString:
		t = &Tensor{DataType: String, Dims: []int64{}, Strings: []string{a.String}}
	case a.Name == "value_strings" && a.Type == AttrStrings:
		t = &Tensor{DataType: String, Dims: []int64{int64(len(a.Strings))}, Strings: a.Strings}
	default:
		return fmt.Errorf("attribute %q (%s) is not a supported constant value", a.Name, attrTypeName(a.Type))
	}
	c.setConst(0, t)
	return nil
}

func attrTypeName(t AttrType) string {
	names := [...]string{"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS"}
	if int(t) >= 0 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("AttrType(%d)", int(t))
}

func (c nodeCtx) constantOfShape() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	shape, err := c.intsInput(0, "shape")
	if err != nil {
		return err
	}
	out := slices.Clone(shape)
	n, err := countElements(out)
	if err != nil {
		return err
	}
	val := &Tensor{DataType: Float, Floats: []float32{0}}
	if a := c.n.Attr("value"); a != nil && a.Type == AttrTensor && a.Tensor != nil {
		val = a.Tensor
		if val.NumElements() != 1 {
			return fmt.Errorf("value attribute has %d elements, want 1", val.NumElements())
		}
	}
	if val.DataType.IsInt() && len(val.Ints) == 1 && n <= foldLimit {
		res := &Tensor{DataType: val.DataType, Dims: out, Ints: make([]int64, n)}
		for i := range res.Ints {
			res.Ints[i] = val.Ints[0]
		}
		c.setConst(0, res)
		return nil
	}
	if val.DataType == Float && len(val.Floats) == 1 && n <= foldLimit {
		res := &Tensor{DataType: Float, Dims: out, Floats: make([]float32, n)}
		for i := range res.Floats {
			res.Floats[i] = val.Floats[0]
		}
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, val.DataType)
	return nil
}

func (c nodeCtx) shapeOp() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	r := int64(len(x))
	start, end := int64(0), r
	if c.opset >= 15 {
		clamp := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		start = clamp(c.n.AttrInt("start", 0))
		end = clamp(c.n.AttrInt("end", r))
	}
	vals := []int64{}
	if start < end {
		vals = slices.Clone(x[start:end])
	}
	c.setConst(0, &Tensor{DataType: Int64, Dims: []int64{int64(len(vals))}, Ints: vals})
	return nil
}

func (c nodeCtx) size() error {
	if err := c.inputs(1, 1); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	n, err := countElements(x)
	if err != nil {
		return err
	}
	c.setConst(0, &Tensor{DataType: Int64, Dims: []int64{}, Ints: []int64{int64(n)}})
	return nil
}

func (c nodeCtx) gather() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	ind, err := c.shape(1)
	if err != nil {
		return err
	}
	if len(x) == 0 {
		return fmt.Errorf("data is a scalar")
	}
	axis, err := normAxis(c.n.AttrInt("axis", 0), len(x), false)
	if err != nil {
		return err
	}
	out := append(append(slices.Clone(x[:axis]), ind...), x[axis+1:]...)
	it := c.konst(1)
	if it != nil && it.DataType.IsInt() {
		for _, v := range it.Ints {
			if v < -x[axis] || v >= x[axis] {
				return fmt.Errorf("index %d is out of range for axis %d of size %d", v, axis, x[axis])
			}
		}
	}
	t, back := c.movable(0)
	if t != nil && it != nil && it.DataType.IsInt() {
		n, err := countElements(out)
		if err == nil && n <= foldLimit {
			outer, inner := 1, 1
			for _, d := range x[:axis] {
				outer *= int(d)
			}
			for _, d := range x[axis+1:] {
				inner *= int(d)
			}
			res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, 0, n)}
			for o := 0; o < outer; o++ {
				for _, v := range it.Ints {
					if v < 0 {
						v += x[axis]
					}
					base := (o*int(x[axis]) + int(v)) * inner
					res.Ints = append(res.Ints, t.Ints[base:base+inner]...)
				}
			}
			c.setConst(0, back(res))
			return nil
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

// axesArg returns the axes of Squeeze/Unsqueeze: an attribute before opset 13, an
// input from 13 on. ok is false when none are given.
func (c nodeCtx) axesArg() (axes []int64, ok bool, err error) {
	if c.opset >= 13 {
		if !c.has(1) {
			return nil, false, nil
		}
		v, err := c.intsInput(1, "axes")
		return v, true, err
	}
	if a := c.n.Attr("axes"); a != nil {
		return a.Ints, true, nil
	}
	return nil, false, nil
}

func (c nodeCtx) unsqueeze() error {
	if err := c.inputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axes, ok, err := c.axesArg()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("axes missing")
	}
	r := len(x) + len(axes)
	insert := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(a, r, false)
		if err != nil {
			return fmt.Errorf("axes %v: %w", axes, err)
		}
		if insert[ax] {
			return fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		insert[ax] = true
	}
	out := make([]int64, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if insert[i] {
			out = append(out, 1)
		} else {
			out = append(out, x[j])
			j++
		}
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) squeeze() error {
	if err := c.inputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axes, ok, err := c.axesArg()
	if err != nil {
		return err
	}
	drop := make([]bool, len(x))
	if ok {
		for _, a := range axes {
			ax, err := normAxis(a, len(x), false)
			if err != nil {
				return fmt.Errorf("axes %v: %w", axes, err)
			}
			if x[ax] != 1 {
				return fmt.Errorf("axes %v: dimension %d of %v is %d, not 1", axes, ax, x, x[ax])
			}
			drop[ax] = true
		}
	} else {
		for i, d := range x {
			drop[i] = d == 1
		}
	}
	out := []int64{}
	for i, d := range x {
		if !drop[i] {
			out = append(out, d)
		}
	}
	if t := c.konst(0); t != nil {
		c.setConst(0, reshaped(t, out))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) concat() error {
	if err := c.inputs(1, 1<<20); err != nil {
		return err
	}
	a := c.n.Attr("axis")
	if a == nil || a.Type != AttrInt {
		return fmt.Errorf("attribute \"axis\" missing")
	}
	shapes := make([][]int64, len(c.n.Inputs))
	for i := range c.n.Inputs {
		s, err := c.shape(i)
		if err != nil {
			return err
		}
		shapes[i] = s
	}
	r := len(shapes[0])
	axis, err := normAxis(a.Int, r, false)
	if err != nil {
		return err
	}
	out := slices.Clone(shapes[0])
	out[axis] = 0
	for i, s := range shapes {
		if len(s) != r {
			return fmt.Errorf("input %q is %v, input %q is %v: ranks differ", c.n.Inputs[0], shapes[0], c.n.Inputs[i], s)
		}
		for k := range s {
			if k != axis && s[k] != shapes[0][k] {
				return fmt.Errorf("input %q is %v, input %q is %v: they differ outside axis %d",
					c.n.Inputs[0], shapes[0], c.n.Inputs[i], s, axis)
			}
		}
		out[axis] += s[axis]
	}
	// Fold when every input is an integer constant, or every one a float constant not
	// read from a parameter (positions into their values, one after another).
	ts := make([]*Tensor, len(c.n.Inputs))
	var values []float32
	for i := range ts {
		t, _ := c.movable(i)
		if t == nil || len(t.Ints) > foldLimit || (i > 0 && (values == nil) != (c.konst(i).DataType.IsInt())) {
			ts = nil
			break
		}
		if k := c.konst(i); k.DataType == Float {
			if i == 0 {
				values = []float32{}
			}
			shifted := &Tensor{DataType: Int64, Dims: t.Dims, Ints: make([]int64, len(t.Ints))}
			for j, p := range t.Ints {
				shifted.Ints[j] = p + int64(len(values))
			}
			values = append(values, k.Floats...)
			t = shifted
		}
		ts[i] = t
	}
	if ts != nil {
		outer := 1
		for _, d := range out[:axis] {
			outer *= int(d)
		}
		res := &Tensor{DataType: ts[0].DataType, Dims: out}
		for o := 0; o < outer; o++ {
			for i, t := range ts {
				chunk := 1
				for _, d := range shapes[i][axis:] {
					chunk *= int(d)
				}
				res.Ints = append(res.Ints, t.Ints[o*chunk:(o+1)*chunk]...)
			}
		}
		if res.Ints == nil {
			res.Ints = []int64{}
		}
		if values != nil {
			f := &Tensor{DataType: Float, Dims: res.Dims, Floats: make([]float32, len(res.Ints))}
			for k, p := range res.Ints {
				f.Floats[k] = values[p]
			}
			res = f
		}
		c.setConst(0, res)
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) slice() error {
	if err := c.inputs(1, 5); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	consts := make([]*Tensor, 5)
	for i := range consts {
		consts[i] = c.konst(i)
	}
	first, step, out, err := SliceGeometry(c.n, c.opset, x, consts)
	if err != nil {
		return err
	}
	r := len(x)
	if t, back := c.movable(0); t != nil && len(t.Ints) <= foldLimit {
		n, _ := countElements(out)
		res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, n)}
		inStrides := stridesOf(x)
		pos := make([]int64, r)
		for k := 0; k < n; k++ {
			src := 0
			for i := range pos {
				src += int(first[i]+pos[i]*step[i]) * inStrides[i]
			}
			res.Ints[k] = t.Ints[src]
			incr(pos, out)
		}
		c.setConst(0, back(res))
		return nil
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) expand() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	shape, err := c.intsInput(1, "shape")
	if err != nil {
		return err
	}
	out, err := broadcastShapes(x, shape)
	if err != nil {
		return err
	}
	if t := c.konst(0); t != nil && (t.DataType.IsInt() || t.DataType == Float) {
		if n, err := countElements(out); err == nil && n <= foldLimit {
			idx := broadcastIndex(out, x)
			res := &Tensor{DataType: t.DataType, Dims: out}
			if t.DataType == Float {
				res.Floats = make([]float32, n)
				for k, i := range idx {
					res.Floats[k] = t.Floats[i]
				}
			} else {
				res.Ints = make([]int64, n)
				for k, i := range idx {
					res.Ints[k] = t.Ints[i]
				}
			}
			c.setConst(0, res)
			return nil
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

func (c nodeCtx) rangeOp() error {
	if err := c.inputs(3, 3); err != nil {
		return err
	}
	var v [3]*Tensor
	for i := range v {
		v[i] = c.konst(i)
		if v[i] == nil || v[i].NumElements() != 1 || v[i].DataType != v[0].DataType {
			return fmt.Errorf("start, limit and delta must be constant scalars")
		}
	}
	if v[0].DataType.IsInt() {
		start, limit, delta := v[0].Ints[0], v[1].Ints[0], v[2].Ints[0]
		if delta == 0 {
			return fmt.Errorf("delta is 0")
		}
		n := max((limit-start+delta-sign(delta))/delta, 0)
		if n > foldLimit {
			c.set(0, []int64{n}, v[0].DataType)
			return nil
		}
		res := &Tensor{DataType: v[0].DataType, Dims: []int64{n}, Ints: make([]int64, n)}
		for i := range res.Ints {
			res.Ints[i] = start + int64(i)*delta
		}
		c.setConst(0, res)
		return nil
	}
	start, limit, delta := float64(v[0].Floats[0]), float64(v[1].Floats[0]), float64(v[2].Floats[0])
	if delta == 0 {
		return fmt.Errorf("delta is 0")
	}
	n := int64(max(ceil((limit-start)/delta), 0))
	c.set(0, []int64{n}, Float)
	return nil
}

func sign(v int64) int64 {
	if v < 0 {
		return -1
	}
	return 1
}

func ceil(v float64) float64 {
	f := float64(int64(v))
	if f < v {
		f++
	}
	return f
}

// SliceGeometry resolves a Slice node for an input of shape x: for each axis, the first
// index read, the step, and the output's size (axes the node does not slice have first
// 0, step 1 and their full size). consts holds the constant value of each of the
// node's inputs (nil where not constant); from opset 10 starts, ends, axes and steps
// are inputs and must be constants.
func SliceGeometry(n *Node, opset int64, x []int64, consts []*Tensor) (first, step, out []int64, err error) {
	input := func(i int, what string) ([]int64, error) {
		if i >= len(n.Inputs) || n.Inputs[i] == "" {
			return nil, nil
		}
		if i >= len(consts) || consts[i] == nil {
			return nil, fmt.Errorf("%s input %q is not a constant", what, n.Inputs[i])
		}
		if !consts[i].DataType.IsInt() {
			return nil, fmt.Errorf("%s input %q is %s, want integers", what, n.Inputs[i], consts[i].DataType)
		}
		return consts[i].Ints, nil
	}
	var starts, ends, axes, steps []int64
	if opset < 10 {
		starts = n.AttrInts("starts", nil)
		ends = n.AttrInts("ends", nil)
		axes = n.AttrInts("axes", nil)
		if starts == nil || ends == nil {
			return nil, nil, nil, fmt.Errorf("attributes starts and ends are required")
		}
	} else {
		for i, p := range []*[]int64{&starts, &ends, &axes, &steps} {
			if *p, err = input(i+1, [...]string{"starts", "ends", "axes", "steps"}[i]); err != nil {
				return nil, nil, nil, err
			}
		}
		if starts == nil || ends == nil {
			return nil, nil, nil, fmt.Errorf("inputs starts and ends are required")
		}
	}
	if len(ends) != len(starts) {
		return nil, nil, nil, fmt.Errorf("starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if steps == nil {
		steps = ones(len(starts))
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, nil, nil, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	r := len(x)
	first = make([]int64, r)
	step = ones(r)
	out = slices.Clone(x)
	seen := make([]bool, r)
	for i := range starts {
		ax, err := normAxis(axes[i], r, false)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("axes %v: %w", axes, err)
		}
		if seen[ax] {
			return nil, nil, nil, fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		seen[ax] = true
		s, e, st := starts[i], ends[i], steps[i]
		if st == 0 {
			return nil, nil, nil, fmt.Errorf("steps %v: a step is 0", steps)
		}
		d := x[ax]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if st > 0 {
			s = min(max(s, 0), d)
			e = min(max(e, 0), d)
		} else {
			s = min(max(s, 0), d-1)
			e = min(max(e, -1), d-1)
		}
		var n int64
		if st > 0 && e > s {
			n = (e - s + st - 1) / st
		} else if st < 0 && s > e {
			n = (s - e + (-st) - 1) / (-st)
		}
		if n == 0 {
			s = 0
		}
		out[ax], first[ax], step[ax] = n, s, st
	}
	return first, step, out, nil
}

// axesInput moves the axes attribute of Unsqueeze or Squeeze to an input (opset 13).
func (u *upgrader) axesInput(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	a := n.Attr("axes")
	if a == nil {
		if n.OpType == "Unsqueeze" {
			return nil, errors.New("attribute \"axes\" missing")
		}
		return []*Node{n}, nil
	}
	n.Inputs = append(n.Inputs, u.constInput(n, "axes", int64Tensor(a.Ints)))
	n.Attributes = without(n.Attributes, "axes")
	return []*Node{n}, nil
}

// slice moves Slice's starts, ends and axes attributes to inputs (opset 10).
func (u *upgrader) slice(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	starts, ends := n.Attr("starts"), n.Attr("ends")
	if starts == nil || ends == nil {
		return nil, errors.New("attributes \"starts\" and \"ends\" are required")
	}
	if len(starts.Ints) != len(ends.Ints) {
		return nil, fmt.Errorf("%d starts and %d ends", len(starts.Ints), len(ends.Ints))
	}
	n.Inputs = append(n.Inputs, u.constInput(n, "starts", int64Tensor(starts.Ints)), u.constInput(n, "ends", int64Tensor(ends.Ints)))
	if axes := n.Attr("axes"); axes != nil {
		n.Inputs = append(n.Inputs, u.constInput(n, "axes", int64Tensor(axes.Ints)))
	}
	n.Attributes = without(n.Attributes, "starts", "ends", "axes")
	return []*Node{n}, nil
}

// dropout drops is_test and moves ratio to an input (opset 12).
func (u *upgrader) dropout(n *Node) ([]*Node, error) {
	if u.crosses(10) && len(n.Outputs) > 1 && n.Outputs[1] != "" {
		if u.used[n.Outputs[1]] {
			return nil, fmt.Errorf("the mask output %q is used: it is a float tensor before opset 10 and bool after", n.Outputs[1])
		}
		u.stale[n.Outputs[1]] = true
	}
	n.Attributes = without(n.Attributes, "is_test")
	if !u.crosses(12) {
		return []*Node{n}, nil
	}
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	if r := n.Attr("ratio"); r != nil {
		if r.Float < 0 || r.Float >= 1 || math.IsNaN(float64(r.Float)) {
			return nil, fmt.Errorf("ratio %v is outside [0, 1)", r.Float)
		}
		n.Inputs = append(n.Inputs, u.constInput(n, "ratio", floatScalar(r.Float)))
	}
	n.Attributes = without(n.Attributes, "ratio")
	return []*Node{n}, nil
}

// SplitSizes resolves a Split node for an input of shape x: the axis and the size of
// each output along it, from the split attribute (before opset 13) or the constant
// split input (split, nil when absent), or else equal parts, one per output.
func SplitSizes(n *Node, opset int64, x []int64, split *Tensor) (axis int, sizes []int64, err error) {
	if axis, err = normAxis(n.AttrInt("axis", 0), len(x), false); err != nil {
		return 0, nil, err
	}
	if opset < 13 {
		sizes = n.AttrInts("split", nil)
	} else if len(n.Inputs) > 1 && n.Inputs[1] != "" {
		if split == nil || !split.DataType.IsInt() {
			return 0, nil, fmt.Errorf("the split input %q is not an integer constant", n.Inputs[1])
		}
		sizes = split.Ints
	}
	outs := len(n.Outputs)
	if sizes == nil {
		if outs == 0 || x[axis]%int64(outs) != 0 {
			return 0, nil, fmt.Errorf("axis %d of %v does not split into %d equal parts", axis, x, outs)
		}
		sizes = make([]int64, outs)
		for i := range sizes {
			sizes[i] = x[axis] / int64(outs)
		}
		return axis, sizes, nil
	}
	if len(sizes) != outs {
		return 0, nil, fmt.Errorf("split %v has %d sizes for %d outputs", sizes, len(sizes), outs)
	}
	var total int64
	for _, d := range sizes {
		if d < 0 {
			return 0, nil, fmt.Errorf("split %v has a negative size", sizes)
		}
		total += d
	}
	if total != x[axis] {
		return 0, nil, fmt.Errorf("split %v sums to %d, axis %d of %v is %d", sizes, total, axis, x, x[axis])
	}
	return axis, slices.Clone(sizes), nil
}

func (c nodeCtx) split() error {
	if err := c.inputs(1, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	axis, sizes, err := SplitSizes(c.n, c.opset, x, c.konst(1))
	if err != nil {
		return err
	}
	t, back := c.movable(0)
	fold := t != nil && len(t.Ints) <= foldLimit
	offset := int64(0)
	for i, d := range sizes {
		out := slices.Clone(x)
		out[axis] = d
		if !fold {
			c.set(i, out, c.typ(0))
			offset += d
			continue
		}
		outer, inner := 1, 1
		for _, v := range x[:axis] {
			outer *= int(v)
		}
		for _, v := range x[axis+1:] {
			inner *= int(v)
		}
		res := &Tensor{DataType: t.DataType, Dims: out, Ints: []int64{}}
		for o := 0; o < outer; o++ {
			base := (o*int(x[axis]) + int(offset)) * inner
			res.Ints = append(res.Ints, t.Ints[base:base+int(d)*inner]...)
		}
		c.setConst(i, back(res))
		offset += d
	}
	return nil
}

// splitInput moves Split's split attribute to an input (opset 13).
func (u *upgrader) splitInput(n *Node) ([]*Node, error) {
	if len(n.Inputs) != 1 {
		return nil, fmt.Errorf("has %d inputs, want 1", len(n.Inputs))
	}
	if a := n.Attr("split"); a != nil {
		n.Inputs = append(n.Inputs, u.constInput(n, "split", int64Tensor(a.Ints)))
	}
	n.Attributes = without(n.Attributes, "split")
	return []*Node{n}, nil
}

func (c nodeCtx) tile() error {
	if err := c.inputs(2, 2); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	repeats, err := c.intsInput(1, "repeats")
	if err != nil {
		return err
	}
	if len(repeats) != len(x) {
		return fmt.Errorf("repeats %v: want %d values for input %v", repeats, len(x), x)
	}
	out := make([]int64, len(x))
	for i, r := range repeats {
		if r < 0 {
			return fmt.Errorf("repeats %v has a negative value", repeats)
		}
		out[i] = x[i] * r
	}
	if t, back := c.movable(0); t != nil {
		if n, err := countElements(out); err == nil && n <= foldLimit {
			res := &Tensor{DataType: t.DataType, Dims: out, Ints: make([]int64, n)}
			inStrides := stridesOf(x)
			pos := make([]int64, len(out))
			for k := 0; k < n; k++ {
				src := 0
				for i := range pos {
					src += int(pos[i]%x[i]) * inStrides[i]
				}
				res.Ints[k] = t.Ints[src]
				incr(pos, out)
			}
			c.setConst(0, back(res))
			return nil
		}
	}
	c.set(0, out, c.typ(0))
	return nil
}

// scatterND is ScatterND: data with the slices that indices name replaced by updates.
// With constant inputs (a Swin transformer's attention mask, built by slice assignment
// into zeros) it is folded, float data included.
func (c nodeCtx) scatterND() error {
	if err := c.inputs(3, 3); err != nil {
		return err
	}
	x, err := c.shape(0)
	if err != nil {
		return err
	}
	ind, err := c.shape(1)
	if err != nil {
		return err
	}
	upd, err := c.shape(2)
	if err != nil {
		return err
	}
	if len(ind) == 0 {
		return fmt.Errorf("indices is a scalar")
	}
	k := ind[len(ind)-1]
	if k < 1 || int(k) > len(x) {
		return fmt.Errorf("indices %v address %d axes of data %v", ind, k, x)
	}
	want := append(slices.Clone(ind[:len(ind)-1]), x[k:]...)
	if !slices.Equal(upd, want) {
		return fmt.Errorf("updates is %v, want %v for data %v and indices %v", upd, want, x, ind)
	}
	if red := c.n.AttrString("reduction", "none"); red != "none" {
		c.set(0, x, c.typ(0))
		return nil
	}
	data, idx, up := c.konst(0), c.konst(1), c.konst(2)
	if data == nil || idx == nil || up == nil || !idx.DataType.IsInt() || data.DataType != up.DataType ||
		data.NumElements() > foldLimit || data.DataType == String {
		c.set(0, x, c.typ(0))
		return nil
	}
	out := &Tensor{DataType: data.DataType, Dims: x}
	if data.DataType.IsFloat() {
		out.Floats = slices.Clone(data.Floats)
	} else {
		out.Ints = slices.Clone(data.Ints)
	}
	strides := stridesOf(x)
	slice := 1
	for _, d := range x[k:] {
		slice *= int(d)
	}
	n := len(idx.Ints) / int(k)
	for i := 0; i < n; i++ {
		off := 0
		for j := 0; j < int(k); j++ {
			v := idx.Ints[i*int(k)+j]
			if v < 0 {
				v += x[j]
			}
			if v < 0 || v >= x[j] {
				return fmt.Errorf("index %d out of range for axis %d of size %d", idx.Ints[i*int(k)+j], j, x[j])
			}
			off += int(v) * strides[j]
		}
		if out.Floats != nil {
			copy(out.Floats[off:off+slice], up.Floats[i*slice:(i+1)*slice])
		} else {
			copy(out.Ints[off:off+slice], up.Ints[i*slice:(i+1)*slice])
		}
	}
	c.setConst(0, out)
	return nil
}
