package finetune

import (
	"toolkit/onnx"
)

// probe is a ReLU whose output the training programs report on the diagnostics'
// sampled steps (backend.Options.Probes), so that diagnostics can count its dead units;
// it is owned by the layer group of the parameter Param that feeds it.
type probe struct {
	Tensor string
	Param  string
	Group  string
}

// findProbes returns the model's probes: the output of every Relu node. A ReLU belongs
// to the parameter found by walking up from its input through single-input nodes to the
// first node with a float initializer input (the Conv, Gemm or BatchNormalization that
// feeds it).
func findProbes(m *onnx.Model) []probe {
	g := m.Graph
	var probes []probe
	for _, n := range g.Nodes {
		if n.OpType != "Relu" || len(n.Inputs) == 0 || len(n.Outputs) == 0 {
			continue
		}
		param := feedingParam(g, n.Inputs[0])
		if param == "" {
			continue
		}
		probes = append(probes, probe{Tensor: n.Outputs[0], Param: param})
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

// deadUnits counts the units (channels of an [N C ...] activation, features of [N F])
// that are zero for every example and position.
func deadUnits(act []float32, shape []int) (dead, units int) {
	if len(shape) < 2 {
		return 0, 0
	}
	n, c := shape[0], shape[1]
	spatial := 1
	for _, d := range shape[2:] {
		spatial *= d
	}
	if len(act) < n*c*spatial {
		return 0, 0
	}
	for ch := 0; ch < c; ch++ {
		alive := false
		for i := 0; i < n && !alive; i++ {
			row := act[(i*c+ch)*spatial : (i*c+ch+1)*spatial]
			for _, v := range row {
				if v > 0 {
					alive = true
					break
				}
			}
		}
		if !alive {
			dead++
		}
	}
	return dead, c
}
