package finetune

import (
	"toolkit/onnx"
)

// probe is a ReLU whose output the training program also returns, so that diagnostics
// can count its dead units: output Output of the programs, owned by the layer group of
// the parameter Param that feeds it.
type probe struct {
	Tensor string
	Param  string
	Output int
	Group  string
}

// withProbes returns the model with the output of every Relu node added to the graph's
// outputs (after the real ones, which keep their positions), and the probes. A ReLU
// belongs to the parameter found by walking up from its input through single-input
// nodes to the first node with a float initializer input (the Conv, Gemm or
// BatchNormalization that feeds it).
func withProbes(m *onnx.Model) (*onnx.Model, []probe) {
	g := m.Graph
	var probes []probe
	outputs := append([]*onnx.ValueInfo(nil), g.Outputs...)
	for _, n := range g.Nodes {
		if n.OpType != "Relu" || len(n.Inputs) == 0 || len(n.Outputs) == 0 {
			continue
		}
		param := feedingParam(g, n.Inputs[0])
		if param == "" {
			continue
		}
		probes = append(probes, probe{Tensor: n.Outputs[0], Param: param, Output: len(outputs)})
		outputs = append(outputs, &onnx.ValueInfo{Name: n.Outputs[0], ElemType: onnx.Float})
	}
	if len(probes) == 0 {
		return m, nil
	}
	out := *m
	gc := *g
	gc.Outputs = outputs
	out.Graph = &gc
	return &out, probes
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

// withoutProbes returns an exported model with the graph outputs the model had before
// withProbes.
func withoutProbes(m *onnx.Model, outputs int) *onnx.Model {
	if len(m.Graph.Outputs) == outputs {
		return m
	}
	out := *m
	g := *m.Graph
	g.Outputs = g.Outputs[:outputs]
	out.Graph = &g
	return &out
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
