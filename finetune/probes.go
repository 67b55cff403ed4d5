package finetune

import (
	"toolkit/onnx"
)

// probe is a ReLU whose output the training programs report on the diagnostics'
// sampled steps (backend.Options.Probes), so that diagnostics can count its dead units;
// it is owned by the layer group of the parameter Param that feeds it, and has Units
// units (channels of an [N C ...] activation, features of [N F]).
type probe struct {
	Tensor string
	Param  string
	Group  string
	Units  int
}

// findProbes returns the model's probes: the output of every Relu node whose shape for
// one image of input (the model's first input) is known. A ReLU belongs to the
// parameter found by walking up from its input through single-input nodes to the first
// node with a float initializer input (the Conv, Gemm or BatchNormalization that feeds
// it).
func findProbes(m *onnx.Model, input string, dims []int64) []probe {
	g := m.Graph
	shapes, err := onnx.InferShapes(m, map[string][]int64{input: dims})
	if err != nil {
		return nil // the program's build reports what the shapes lack
	}
	var probes []probe
	for _, n := range g.Nodes {
		if n.OpType != "Relu" || len(n.Inputs) == 0 || len(n.Outputs) == 0 {
			continue
		}
		param := feedingParam(g, n.Inputs[0])
		shape := shapes.Dims[n.Outputs[0]]
		if param == "" || len(shape) < 2 {
			continue
		}
		probes = append(probes, probe{Tensor: n.Outputs[0], Param: param, Units: int(shape[1])})
	}
	return probes
}

// feedingParam walks up from tensor to the first node with a float initializer input.
func feedingParam(g *onnx.Graph, tensor string) string {
	for hops := 0; hops < 8; hops++ {
		p := g.Producer(tensor)
		if p == nil {
			return ""
		}
		var next []string
		for _, in := range p.Inputs {
			if in == "" {
				continue
			}
			if init := g.Initializer(in); init != nil {
				if init.DataType == onnx.Float {
					return in
				}
				continue
			}
			next = append(next, in)
		}
		if len(next) != 1 {
			return ""
		}
		tensor = next[0]
	}
	return ""
}

// aliveUnits marks, in alive, the units (channels of an [N C ...] activation, features
// of [N F]) that are above zero for some example and position; it reports false when
// act does not hold the shape's values.
func aliveUnits(alive []float32, act []float32, shape []int) bool {
	n, c := shape[0], shape[1]
	spatial := 1
	for _, d := range shape[2:] {
		spatial *= d
	}
	if len(act) < n*c*spatial || len(alive) != c {
		return false
	}
	for ch := 0; ch < c; ch++ {
		for i := 0; i < n && alive[ch] == 0; i++ {
			for _, v := range act[(i*c+ch)*spatial : (i*c+ch+1)*spatial] {
				if v > 0 {
					alive[ch] = 1
					break
				}
			}
		}
	}
	return true
}
