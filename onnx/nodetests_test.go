package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// skipShapeTests are node tests whose operators InferShapes supports but whose
// expected outputs it is not meant to reproduce, with the reason.
var skipShapeTests = map[string]string{
	"test_castlike_BFLOAT16_to_FLOAT":          "input_1.pb has shape [1], the model declares [3 4]",
	"test_castlike_BFLOAT16_to_FLOAT_expanded": "input_1.pb has shape [1], the model declares [3 4]",
}

// TestNodeTestShapes infers, for every ONNX node test whose operators InferShapes
// supports, the output shapes from the shapes of the test's inputs, and compares them
// with the dims of the expected outputs (output_N.pb). Integer and scalar inputs are
// given to inference as constants, as they would be initializers in a real model.
func TestNodeTestShapes(t *testing.T) {
	var checked, unsupported, unreadable []string
	for _, dir := range nodeTests(t) {
		name := filepath.Base(dir)
		m, err := Read(filepath.Join(dir, "model.onnx"))
		if err != nil {
			unreadable = append(unreadable, name)
			continue
		}
		if why, ok := skipShapeTests[name]; ok {
			t.Logf("skip %s: %s", name, why)
			continue
		}
		inputs, outputs, err := loadTestData(m, filepath.Join(dir, "test_data_set_0"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		shapes, err := InferShapes(m, inputs)
		if err != nil {
			if strings.Contains(err.Error(), "is not supported by shape inference") {
				unsupported = append(unsupported, name)
				continue
			}
			t.Errorf("%s: %v", name, err)
			continue
		}
		for i, out := range m.Graph.Outputs {
			if i >= len(outputs) {
				break
			}
			got, ok := shapes.Dims[out.Name]
			if !ok {
				t.Errorf("%s: no shape for output %q", name, out.Name)
				continue
			}
			if !slices.Equal(got, outputs[i].Dims) && !(len(got) == 0 && len(outputs[i].Dims) == 0) {
				t.Errorf("%s: output %q: inferred %v, the test expects %v", name, out.Name, got, outputs[i].Dims)
			}
			if c := shapes.Consts[out.Name]; c != nil && c.DataType.IsInt() && outputs[i].DataType.IsInt() {
				if !slices.Equal(c.Ints, outputs[i].Ints) {
					t.Errorf("%s: output %q: folded %v, the test expects %v", name, out.Name, c.Ints, outputs[i].Ints)
				}
			}
		}
		checked = append(checked, name)
	}
	t.Logf("checked %d node tests, %d use operators shape inference does not support, %d do not read",
		len(checked), len(unsupported), len(unreadable))
	if len(checked) < 200 {
		t.Errorf("only %d node tests checked", len(checked))
	}
	// The operators the backend depends on must be among those checked.
	for _, want := range []string{
		"test_conv_with_autopad_same", "test_conv_with_strides_and_asymmetric_padding",
		"test_maxpool_2d_ceil", "test_maxpool_2d_same_lower", "test_maxpool_2d_dilations",
		"test_maxpool_with_argmax_2d_precomputed_pads", "test_averagepool_2d_pads_count_include_pad",
		"test_averagepool_2d_same_upper", "test_globalaveragepool", "test_flatten_negative_axis1",
		"test_reshape_allowzero_reordered", "test_reshape_negative_extended_dims", "test_gemm_all_attributes",
		"test_matmul_4d", "test_batchnorm_epsilon_training_mode", "test_dropout_default_mask_ratio",
		"test_shape_start_negative_1", "test_gather_negative_indices", "test_unsqueeze_negative_axes",
		"test_squeeze_negative_axes", "test_concat_3d_axis_negative_1", "test_slice_neg_steps",
		"test_cast_FLOAT_to_FLOAT16", "test_clip_default_inbounds", "test_softmax_axis_0",
		"test_transpose_all_permutations_3", "test_constant_pad", "test_leakyrelu",
	} {
		if !slices.Contains(checked, want) {
			t.Errorf("node test %s was not checked", want)
		}
	}
	if testing.Verbose() {
		t.Logf("checked: %v", checked)
		t.Logf("unreadable (non-tensor types): %v", unreadable)
	}
}

// loadTestData reads a node test's inputs and expected outputs. Integer and scalar
// inputs become initializers of m; the shapes of the others are returned for InferShapes.
func loadTestData(m *Model, dir string) (map[string][]int64, []*Tensor, error) {
	inputs := map[string][]int64{}
	real := m.Graph.RealInputs()
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("input_%d.pb", i))
		if _, err := os.Stat(p); err != nil {
			break
		}
		if i >= len(real) {
			return nil, nil, fmt.Errorf("more input files than graph inputs")
		}
		t, err := ReadTensor(p)
		if err != nil {
			return nil, nil, err
		}
		if t.DataType.IsInt() || len(t.Dims) == 0 {
			t.Name = real[i].Name
			m.Graph.Initializers = append(m.Graph.Initializers, t)
			continue
		}
		inputs[real[i].Name] = t.Dims
	}
	var outputs []*Tensor
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("output_%d.pb", i))
		if _, err := os.Stat(p); err != nil {
			break
		}
		t, err := ReadTensor(p)
		if err != nil {
			return nil, nil, err
		}
		outputs = append(outputs, t)
	}
	return inputs, outputs, nil
}
