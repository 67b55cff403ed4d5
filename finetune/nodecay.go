package finetune

import (
	"fmt"
	"path"

	"toolkit/backend"
)

// defaultNoDecay is optimizer.no_decay's default, timm's and fastai's: no weight decay
// on biases and normalisation layers.
var defaultNoDecay = []string{"bias", "norm"}

// normOps are the ONNX normalisation layers whose scale (input 1) and shift (input 2)
// no_decay's norm names.
var normOps = map[string]bool{
	"BatchNormalization": true, "LayerNormalization": true, "InstanceNormalization": true, "GroupNormalization": true,
}

// noDecayParams resolves optimizer.no_decay against the model's trainable parameters:
// bias, every parameter of at most one dimension that is not a normalisation layer's
// (timm's ndim <= 1: the biases of Conv, Gemm and a MatMul's Add, layer scales); norm,
// the scales and shifts of the normalisation layers (fastai's bn_wd=False); anything
// else a glob over the parameters' ONNX names (path.Match), which must match one.
func noDecayParams(entries []string, m *backend.Model) (map[string]bool, error) {
	norm := map[string]bool{}
	for _, n := range m.IR().Graph.Nodes {
		if normOps[n.OpType] {
			for _, in := range n.Inputs[1:min(3, len(n.Inputs))] {
				norm[in] = true
			}
		}
	}
	out := map[string]bool{}
	names := m.TrainableNames()
	for _, e := range entries {
		matched := false
		for _, name := range names {
			var hit bool
			switch e {
			case "bias":
				hit = len(m.ParamShape(name)) <= 1 && !norm[name]
			case "norm":
				hit = norm[name]
			default:
				var err error
				if hit, err = path.Match(e, name); err != nil {
					return nil, fmt.Errorf("optimizer.no_decay: %q: %w; want bias, norm or a glob over the parameters' names", e, err)
				}
			}
			if hit {
				out[name], matched = true, true
			}
		}
		if !matched && e != "bias" && e != "norm" {
			return nil, fmt.Errorf("optimizer.no_decay: %q matches no trainable parameter of the model", e)
		}
	}
	return out, nil
}
