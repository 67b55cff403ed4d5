package crosscheck

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	onnxgo "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"

	"toolkit/backend"
	"toolkit/npy"
	"toolkit/onnx"
)

// The test in this file is a differential test against onnx-go v0.5.0 and its gorgonia
// backend, gorgonnx: it decodes each model with onnx-go, runs its forward pass and
// compares the outputs with the toolkit backend's.

// onnxgoOps are the operator types gorgonnx v0.5.0 registers (backend/x/gorgonnx, the
// register calls). It ignores opset_import: each is implemented in one version only.
var onnxgoOps = map[string]bool{}

func init() {
	for _, op := range strings.Fields(`Abs Add BatchNormalization Ceil Concat Constant Conv Cos
		Cube Div Dropout Exp Expm1 Flatten Floor Gemm GlobalAveragePool Identity ImageScaler
		Inverse LeakyRelu Log Log1p Log2 MatMul Max MaxPool Min Mul Neg Relu Reshape Sigmoid
		Sign Sin Softmax Softplus Sqrt Square Squeeze Sub Tanh Transpose Unsqueeze`) {
		onnxgoOps[op] = true
	}
}

// outcome is what happened when onnx-go ran a case.
type outcome string

const (
	agrees   outcome = "agrees"   // every compared output within tolerance of the toolkit's
	errs     outcome = "error"    // onnx-go returned an error (decoding or running)
	panics   outcome = "panic"    // onnx-go (or gorgonia under it) panicked
	disagree outcome = "disagree" // onnx-go ran but its output differs from the toolkit's
)

// knownFailure is a case onnx-go v0.5.0 cannot run or gets wrong, and why.
type knownFailure struct {
	outcome outcome
	reason  string
}

// onnxgoCannotRun lists every parity fixture ("parity/<dir>") and node test
// ("node/<test>") of operators both implementations have that onnx-go v0.5.0 does not
// reproduce. TestOnnxGo checks the list: a listed case that starts agreeing, or fails
// in another way, is reported, as is any unlisted case that does not agree. For a
// disagreement, the test also checks that the reference output (PyTorch's, or the node
// test's) sides with the toolkit.
var onnxgoCannotRun = map[string]knownFailure{
	// The parity fixtures.
	"parity/bn_train": {errs, "BatchNormalization in training mode (opset 15, training_mode=1) with its running_mean and " +
		"running_var outputs: onnx-go computes Y only, with the running statistics, and fails on the unconsumed " +
		"outputs (root node is nil)"},
	"parity/transpose_nhwc_opset9":  {errs, "AveragePool is not implemented"},
	"parity/transpose_nhwc_opset13": {errs, "AveragePool is not implemented"},
	"parity/transpose_nhwc_opset17": {errs, "AveragePool is not implemented"},
	"parity/vgg_features_opset9":    {errs, "Pad is not implemented (nor AveragePool)"},
	"parity/vgg_features_opset13":   {errs, "MaxPool ceil_mode is not implemented (nor Pad, AveragePool)"},
	"parity/vgg_features_opset17":   {errs, "MaxPool ceil_mode is not implemented (nor Pad, AveragePool)"},
	"parity/vgg_view_flatten_opset9": {errs, "Shape, Gather and LogSoftmax are not implemented; it fails first on an " +
		"Unsqueeze of a Constant, whose gorgonia node onnx-go keeps outside the graph (No Graph Supplied)"},
	"parity/vgg_view_flatten_opset13": {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the " +
		"attribute (it ignores opset_import); Shape, Gather and LogSoftmax are not implemented either"},
	"parity/vgg_view_flatten_opset17": {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the " +
		"attribute (it ignores opset_import); Shape, Gather and LogSoftmax are not implemented either"},

	// The ONNX node tests (opset 13 to 15 in onnx 1.12's test data).
	"node/test_batchnorm_epsilon_training_mode": {errs, "training-mode BatchNormalization with three outputs (root node is nil)"},
	"node/test_batchnorm_example_training_mode": {errs, "training-mode BatchNormalization with three outputs (root node is nil)"},
	"node/test_concat_1d_axis_negative_1": {panics, "negative axis: index out of range [-1] in gorgonia's Concat, " +
		"on the TapeMachine's goroutine, where it cannot be recovered"},
	"node/test_concat_2d_axis_negative_1": {panics, "negative axis: index out of range [-1] in gorgonia's Concat, " +
		"on the TapeMachine's goroutine, where it cannot be recovered"},
	"node/test_concat_3d_axis_negative_1": {panics, "negative axis: index out of range [-1] in gorgonia's Concat, " +
		"on the TapeMachine's goroutine, where it cannot be recovered"},
	"node/test_concat_2d_axis_negative_2":                {errs, "negative axis: rejected by gorgonia's shape inference"},
	"node/test_concat_3d_axis_negative_2":                {errs, "negative axis: rejected by gorgonia's shape inference"},
	"node/test_concat_3d_axis_negative_3":                {errs, "negative axis: rejected by gorgonia's shape inference"},
	"node/test_conv_with_autopad_same":                   {errs, "Conv auto_pad SAME_LOWER is not implemented"},
	"node/test_conv_with_strides_and_asymmetric_padding": {errs, "Conv with asymmetric pads is not implemented"},
	"node/test_flatten_negative_axis1":                   {disagree, "negative axis: onnx-go flattens everything into the second dimension ([1 120])"},
	"node/test_flatten_negative_axis2":                   {disagree, "negative axis: onnx-go flattens everything into the second dimension ([1 120])"},
	"node/test_flatten_negative_axis3":                   {disagree, "negative axis: onnx-go flattens everything into the second dimension ([1 120])"},
	"node/test_gemm_default_no_bias":                     {errs, "Gemm without its optional C input (bad arity)"},
	"node/test_gemm_default_scalar_bias":                 {errs, "Gemm's type wants a 2-D C: a scalar C fails gorgonia's type inference"},
	"node/test_matmul_3d":                                {errs, "MatMul of more than two dimensions is not implemented"},
	"node/test_matmul_4d":                                {errs, "MatMul of more than two dimensions is not implemented"},
	"node/test_maxpool_2d_ceil":                          {errs, "MaxPool ceil_mode is not implemented"},
	"node/test_maxpool_2d_dilations":                     {errs, "MaxPool dilations are not implemented"},
	"node/test_maxpool_2d_same_lower":                    {errs, "MaxPool auto_pad SAME_LOWER is not implemented"},
	"node/test_reshape_negative_extended_dims": {disagree, "Reshape to [-1 2 3 4] of a [2 3 4] tensor: onnx-go " +
		"returns shape [2 3 4] instead of [1 2 3 4] (same values)"},
	"node/test_reshape_zero_and_negative_dim": {errs, "Reshape's 0 (copy the input's dimension) is not implemented"},
	"node/test_softmax_axis_0": {disagree, "Softmax: onnx-go coerces the input to 2-D at axis (the opset 1-11 " +
		"semantics) whatever the opset; from opset 13 Softmax normalises along that one axis"},
	"node/test_softmax_axis_1": {disagree, "Softmax: onnx-go coerces the input to 2-D at axis (the opset 1-11 " +
		"semantics) whatever the opset; from opset 13 Softmax normalises along that one axis"},
	"node/test_softmax_default_axis": {disagree, "Softmax: onnx-go's default axis is 0 (-1 from opset 13, 1 before) " +
		"and it coerces the input to 2-D"},
	"node/test_softmax_negative_axis": {disagree, "Softmax: a negative axis is not handled, and onnx-go coerces " +
		"the input to 2-D (the opset 1-11 semantics)"},
	"node/test_squeeze":                 {errs, "Squeeze's axes became an input in opset 13: bad arity"},
	"node/test_squeeze_negative_axes":   {errs, "Squeeze's axes became an input in opset 13: bad arity"},
	"node/test_transpose_default":       {errs, "Transpose without perm (reverse the axes) is not implemented"},
	"node/test_unsqueeze_axis_0":        {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_axis_1":        {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_axis_2":        {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_negative_axes": {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_three_axes":    {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_two_axes":      {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
	"node/test_unsqueeze_unsorted_axes": {errs, "Unsqueeze's axes became an input in opset 13: onnx-go reads only the attribute"},
}

// mustAgree are cases that must stay compared: the conv / batchnorm / relu / maxpool /
// gemm networks and their operators' basic node tests.
var mustAgree = []string{
	"parity/vgg_classifier_opset9", "parity/vgg_classifier_opset13", "parity/vgg_classifier_opset17",
	"parity/vgg_bn_opset9", "parity/vgg_bn_opset13", "parity/vgg_bn_opset17",
	"parity/vgg_bn_fused_opset9", "parity/vgg_bn_fused_opset13", "parity/vgg_bn_fused_opset17",
	"node/test_basic_conv_with_padding", "node/test_conv_with_strides_padding", "node/test_relu",
	"node/test_maxpool_2d_default", "node/test_maxpool_2d_pads", "node/test_gemm_all_attributes",
	"node/test_batchnorm_example", "node/test_globalaveragepool", "node/test_flatten_axis1",
}

// notCompared lists the cases selected by operator type that the toolkit does not run,
// or whose outputs its Program does not return, with the reason (the backend's own node
// tests leave them out for the same reasons). A listed case that becomes comparable is
// reported.
var notCompared = map[string]string{
	"node/test_constant":                                   "a Constant-only graph: the backend folds it, and a Program returns only the outputs it computes",
	"node/test_dropout_default_mask":                       "the boolean mask output of Dropout is not supported",
	"node/test_dropout_default_mask_ratio":                 "the boolean mask output of Dropout is not supported; the ratio is a run-time input",
	"node/test_dropout_default_ratio":                      "the ratio is a run-time input: the backend needs a constant",
	"node/test_maxpool_1d_default":                         "1-D pooling: the backend pools over 2-D NCHW input only",
	"node/test_maxpool_3d_default":                         "3-D pooling: the backend pools over 2-D NCHW input only",
	"node/test_maxpool_with_argmax_2d_precomputed_pads":    "the Indices output of MaxPool is not supported",
	"node/test_maxpool_with_argmax_2d_precomputed_strides": "the Indices output of MaxPool is not supported",
	"node/test_reshape_allowzero_reordered":                "zero-sized tensors are not supported",
}

// onnxgoCase is one model run by both implementations.
type onnxgoCase struct {
	name string
	file string
	ir   *onnx.Model
	// inputs in graph-input order; non-float inputs are constants to the toolkit.
	inputs []*onnx.Tensor
	// reference holds the expected outputs in graph-output order, nil when unknown.
	reference []*npy.Array
	// refTol is the (relative) tolerance at which the reference decides a disagreement.
	refTol float64
}

// onnxgoCases returns the parity fixtures and the node tests whose operators both
// onnx-go and the toolkit implement, whose inputs are float32 or integer, and with at
// least one float output.
func onnxgoCases(t *testing.T) []onnxgoCase {
	t.Helper()
	var cases []onnxgoCase
	for _, f := range parityFixtures(t) {
		x := readNPY(t, filepath.Join(f.dir, "input.npy"))
		file := filepath.Join(f.dir, "model.onnx")
		ir := readIR(t, file)
		in := ir.Graph.RealInputs()
		if len(in) != 1 {
			t.Fatalf("%s: %d inputs", f.name, len(in))
		}
		cases = append(cases, onnxgoCase{
			name:      "parity/" + f.name,
			file:      file,
			ir:        ir,
			inputs:    []*onnx.Tensor{{Name: in[0].Name, DataType: onnx.Float, Dims: onnxShape(x.Shape), Floats: x.Data}},
			reference: []*npy.Array{readNPY(t, filepath.Join(f.dir, "output.npy"))},
			refTol:    1e-4,
		})
	}
	if _, err := os.Stat(nodeTestDir); err != nil {
		t.Fatalf("the ONNX node tests are missing (%v): install Debian's libonnx-testdata", err)
	}
	dirs, err := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		file := filepath.Join(dir, "model.onnx")
		ir, err := onnx.Read(file)
		if err != nil {
			continue // the onnx package's own tests cover what it cannot read
		}
		both := true
		for _, n := range ir.Graph.Nodes {
			if n.Domain != "" && n.Domain != "ai.onnx" || !onnxgoOps[n.OpType] || !backend.Supports(n.OpType) {
				both = false
				break
			}
		}
		if !both {
			continue
		}
		set := filepath.Join(dir, "test_data_set_0")
		c := onnxgoCase{name: "node/" + filepath.Base(dir), file: file, ir: ir, refTol: 1e-3}
		usable := true
		for i, vi := range ir.Graph.RealInputs() {
			tensor, err := onnx.ReadTensor(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if tensor.DataType != onnx.Float && tensor.DataType != onnx.Int64 {
				usable = false // uint8, bool, ...: not something both compute in float32
			}
			tensor.Name = vi.Name
			c.inputs = append(c.inputs, tensor)
		}
		floatOut := false
		for j, vi := range ir.Graph.Outputs {
			if vi.ElemType != onnx.Float {
				c.reference = append(c.reference, nil)
				continue
			}
			floatOut = true
			tensor, err := onnx.ReadTensor(filepath.Join(set, fmt.Sprintf("output_%d.pb", j)))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			c.reference = append(c.reference, &npy.Array{Shape: intShape(tensor.Dims), Data: tensor.Floats})
		}
		if usable && floatOut {
			cases = append(cases, c)
		}
	}
	return cases
}

func intShape(dims []int64) []int {
	s := make([]int, len(dims))
	for i, d := range dims {
		s[i] = int(d)
	}
	return s
}

// toolkitOutputs runs a case with the toolkit's backend: float inputs are inputs, integer
// ones become initializers. It returns the float outputs by graph-output index (nil for
// an output the toolkit folds into a constant or that is not float).
func toolkitOutputs(c onnxgoCase) ([]*npy.Array, error) {
	m := *c.ir
	g := *m.Graph
	m.Graph = &g
	g.Initializers = append([]*onnx.Tensor(nil), g.Initializers...)
	constant := map[string]bool{}
	feeds := map[string]*onnx.Tensor{}
	for _, in := range c.inputs {
		if in.DataType != onnx.Float {
			g.Initializers = append(g.Initializers, in)
			constant[in.Name] = true
			continue
		}
		feeds[in.Name] = in
	}
	g.Inputs = nil
	for _, vi := range c.ir.Graph.Inputs {
		if !constant[vi.Name] {
			g.Inputs = append(g.Inputs, vi)
		}
	}
	bm, err := backend.NewModel(&m)
	if err != nil {
		return nil, err
	}
	opts := backend.Options{InputShapes: map[string][]int{}}
	var xs [][]float32
	for _, in := range bm.Inputs() {
		f := feeds[in.Name]
		if f == nil {
			return nil, fmt.Errorf("no data for input %q", in.Name)
		}
		opts.InputShapes[in.Name] = intShape(f.Dims)
		xs = append(xs, f.Floats)
	}
	p, err := bm.Program(opts)
	if err != nil {
		return nil, err
	}
	if err := p.Run(xs, nil); err != nil {
		return nil, err
	}
	outs := make([]*npy.Array, len(g.Outputs))
	names := p.OutputNames()
	for j, vi := range g.Outputs {
		for i, name := range names {
			if name == vi.Name {
				outs[j] = &npy.Array{Shape: append([]int(nil), p.OutputShape(i)...), Data: append([]float32(nil), p.Output(i)...)}
			}
		}
	}
	return outs, nil
}

// onnxgoOutputs decodes and runs a case with onnx-go and gorgonnx. A panic comes back as
// an error wrapped in panicked.
func onnxgoOutputs(c onnxgoCase) (outs []*npy.Array, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, panicked{fmt.Sprint(r)}
		}
	}()
	data, err := os.ReadFile(c.file)
	if err != nil {
		return nil, err
	}
	g := gorgonnx.NewGraph()
	m := onnxgo.NewModel(g)
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	for i, in := range c.inputs {
		var x tensor.Tensor
		shape := tensor.WithShape(intShape(in.Dims)...)
		switch in.DataType {
		case onnx.Float:
			x = tensor.New(shape, tensor.WithBacking(append([]float32(nil), in.Floats...)))
		default:
			x = tensor.New(shape, tensor.WithBacking(append([]int64(nil), in.Ints...)))
		}
		if err := m.SetInput(i, x); err != nil {
			return nil, fmt.Errorf("input %d: %w", i, err)
		}
	}
	if err := g.Run(); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	ts, err := m.GetOutputTensors()
	if err != nil {
		return nil, fmt.Errorf("outputs: %w", err)
	}
	for _, x := range ts {
		if x == nil {
			outs = append(outs, nil)
			continue
		}
		a := &npy.Array{Shape: append([]int(nil), x.Shape()...)}
		switch v := x.Data().(type) {
		case []float32:
			a.Data = append([]float32(nil), v...)
		case float32:
			a.Data = []float32{v}
		default:
			return nil, fmt.Errorf("output of type %T", v)
		}
		outs = append(outs, a)
	}
	return outs, nil
}

type panicked struct{ msg string }

func (p panicked) Error() string { return "panic: " + p.msg }

// onnxgoResult is what the onnx-go child process reports for one case.
type onnxgoResult struct {
	Outs  []*npy.Array
	Err   string
	Panic bool
}

// Environment variables of the child process that runs onnx-go (see runOnnxGo).
const (
	childDirEnv  = "CROSSCHECK_ONNXGO_DIR"
	childFromEnv = "CROSSCHECK_ONNXGO_FROM"
)

// TestOnnxGoChild is not a test: it is the child process of TestOnnxGo, which sets its
// environment. It runs the cases from index $CROSSCHECK_ONNXGO_FROM on with onnx-go and
// writes each one's result to $CROSSCHECK_ONNXGO_DIR/<index>.gob.
func TestOnnxGoChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("the child process of TestOnnxGo")
	}
	from, err := strconv.Atoi(os.Getenv(childFromEnv))
	if err != nil {
		t.Fatal(err)
	}
	cases := onnxgoCases(t)
	for i := from; i < len(cases); i++ {
		var r onnxgoResult
		outs, err := onnxgoOutputs(cases[i])
		r.Outs = outs
		if err != nil {
			r.Err = err.Error()
			_, r.Panic = err.(panicked)
		}
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(&r); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.gob", i)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runOnnxGo runs every case with onnx-go in a child process (this test binary running
// TestOnnxGoChild). Gorgonia's TapeMachine executes the graph on a goroutine of its own,
// where a panic cannot be recovered and ends the process: the case that was running is
// then recorded as a panic with the child's message, and a new child goes on with the
// next case.
func runOnnxGo(t *testing.T, n int) []onnxgoResult {
	t.Helper()
	dir := t.TempDir()
	results := make([]onnxgoResult, n)
	for from := 0; from < n; {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOnnxGoChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childFromEnv+"="+strconv.Itoa(from))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		runErr := cmd.Run()
		cancel()
		next := from
		for ; next < n; next++ {
			data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.gob", next)))
			if err != nil {
				break
			}
			if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&results[next]); err != nil {
				t.Fatal(err)
			}
		}
		if next == n {
			if runErr != nil {
				t.Fatalf("the onnx-go child process: %v\n%s", runErr, out.String())
			}
			break
		}
		if runErr == nil {
			t.Fatalf("the onnx-go child process stopped at case %d without an error:\n%s", next, out.String())
		}
		results[next] = onnxgoResult{Panic: true, Err: crashMessage(out.String(), runErr)}
		from = next + 1
	}
	return results
}

// crashMessage extracts the panic line, and the function that panicked, from a crashed
// child's output.
func crashMessage(out string, err error) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			msg := l
			for _, f := range lines[i+1:] {
				if f != "" && !strings.HasPrefix(f, "\t") && !strings.HasPrefix(f, "goroutine ") && !strings.HasPrefix(f, "[") {
					if i := strings.LastIndex(f, "("); i > 0 {
						f = f[:i] // drop the arguments
					}
					msg += " in " + f
					break
				}
			}
			return msg + " (uncaught, in gorgonia's TapeMachine goroutine: the process dies)"
		}
	}
	if len(out) > 500 {
		out = out[len(out)-500:]
	}
	return fmt.Sprintf("the process died (%v): %s", err, out)
}

func TestOnnxGo(t *testing.T) {
	cases := onnxgoCases(t)
	results := runOnnxGo(t, len(cases))
	var w worst
	seen := map[string]bool{}
	count := map[outcome]int{}
	outcomes := map[string]outcome{}
	skipped := 0
	for ci, c := range cases {
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			ours, err := toolkitOutputs(c)
			comparable := err == nil
			if err == nil {
				comparable = false
				for j := range ours {
					comparable = comparable || ours[j] != nil && c.reference[j] != nil
				}
				if !comparable {
					err = errors.New("the toolkit computes none of the float outputs")
				}
			}
			why, excluded := notCompared[c.name]
			switch {
			case !comparable && excluded:
				t.Logf("not compared (%s): %v", why, err)
				skipped++
				return
			case !comparable:
				t.Fatalf("the toolkit cannot run it: %v", err)
			case excluded:
				t.Errorf("listed in notCompared (%s), but the toolkit runs it now: remove it from the list", why)
			}
			r := results[ci]
			got := r.Outs
			var (
				result outcome
				detail string
			)
			switch {
			case r.Panic:
				result, detail = panics, r.Err
			case r.Err != "":
				result, detail = errs, r.Err
			case len(got) != len(ours):
				result, detail = disagree, fmt.Sprintf("%d outputs, the toolkit %d", len(got), len(ours))
			default:
				result = agrees
				for j := range ours {
					if ours[j] == nil || c.reference[j] == nil {
						continue // not a float output, or folded to a constant by the toolkit
					}
					name := fmt.Sprintf("%s output %d", c.name, j)
					if got[j] == nil {
						result, detail = disagree, fmt.Sprintf("output %d missing", j)
						break
					}
					if d := describeDiff(got[j], ours[j]); d != "" {
						result, detail = disagree, fmt.Sprintf("output %d: %s", j, d)
						// Who is right? The reference must side with the toolkit.
						if rd := describeRef(ours[j], c.reference[j], c.refTol); rd != "" {
							t.Errorf("the toolkit disagrees with onnx-go (%s) and with the reference output: %s", detail, rd)
						} else if describeRef(got[j], c.reference[j], c.refTol) == "" {
							t.Errorf("onnx-go and the toolkit disagree (%s) but both match the reference at %g", detail, c.refTol)
						}
						break
					}
					rel, abs := diff(got[j].Data, ours[j].Data)
					w.record(name, rel, abs)
				}
			}
			count[result]++
			outcomes[c.name] = result
			known, listed := onnxgoCannotRun[c.name]
			switch {
			case result == agrees && listed:
				t.Errorf("listed in onnxgoCannotRun (%s: %s) but onnx-go now agrees with the toolkit: remove it from the list", known.outcome, known.reason)
			case result == agrees:
			case !listed:
				t.Errorf("onnx-go: %s: %s", result, detail)
			case known.outcome != result:
				t.Errorf("listed in onnxgoCannotRun as %s (%s), but the outcome is %s: %s", known.outcome, known.reason, result, detail)
			default:
				t.Logf("onnx-go cannot run it, as listed (%s): %s", known.reason, detail)
			}
		})
	}
	var stale []string
	for name := range onnxgoCannotRun {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	for name := range notCompared {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		t.Errorf("onnxgoCannotRun or notCompared lists %s, which is not a case (renamed or no longer selected?)", name)
	}
	for _, name := range mustAgree {
		if outcomes[name] != agrees {
			t.Errorf("%s must be compared, and agree: outcome %q", name, outcomes[name])
		}
	}
	t.Logf("%d cases: %d agree, %d errors, %d panics, %d disagreements (all listed in onnxgoCannotRun unless reported); %d not run by the toolkit",
		len(cases), count[agrees], count[errs], count[panics], count[disagree], skipped)
	w.log(t, "onnx-go")
}

// describeDiff returns why got and want are not the same within tolerance, or "".
func describeDiff(got, want *npy.Array) string {
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return fmt.Sprintf("shape %v, the toolkit's %v", got.Shape, want.Shape)
	}
	rel, abs := diff(got.Data, want.Data)
	if rel <= tolerance {
		return ""
	}
	i := argmaxDiff(got.Data, want.Data)
	return fmt.Sprintf("relative difference %.3g (max |diff| %.3g), e.g. at %d: %v vs the toolkit's %v", rel, abs, i, got.Data[i], want.Data[i])
}

// describeRef returns how got misses the reference output, or "".
func describeRef(got, ref *npy.Array, tol float64) string {
	if fmt.Sprint(got.Shape) != fmt.Sprint(ref.Shape) {
		return fmt.Sprintf("shape %v, the reference's %v", got.Shape, ref.Shape)
	}
	rel, abs := diff(got.Data, ref.Data)
	if rel <= tol || math.IsNaN(rel) && abs == 0 {
		return ""
	}
	return fmt.Sprintf("relative difference %.3g (max |diff| %.3g) to the reference", rel, abs)
}
