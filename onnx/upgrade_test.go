package onnx

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parityDir holds the PyTorch parity fixtures (testdata/parity/README.md).
const parityDir = "../testdata/parity"

func floatAttr(name string, v float32) *Attribute {
	return &Attribute{Name: name, Type: AttrFloat, Float: v}
}

// opModel is a one-input, one-output model of the given nodes at opset.
func opModel(opset int64, x, y *ValueInfo, inits []*Tensor, nodes ...*Node) *Model {
	return &Model{
		IRVersion:    3,
		OpsetImports: []OpsetImport{{Version: opset}},
		Graph:        &Graph{Name: "g", Nodes: nodes, Initializers: inits, Inputs: []*ValueInfo{x}, Outputs: []*ValueInfo{y}},
	}
}

func opNode(op string, in, out []string, attrs ...*Attribute) *Node {
	return &Node{Name: "n", OpType: op, Inputs: in, Outputs: out, Attributes: attrs}
}

// describe lists a graph's nodes as "Op(inputs)->outputs{attributes}" and its
// initializers as "name=values", for comparing a rewrite with what is expected.
func describe(g *Graph) string {
	var parts []string
	for _, n := range g.Nodes {
		var attrs []string
		for _, a := range n.Attributes {
			switch a.Type {
			case AttrInt:
				attrs = append(attrs, fmt.Sprintf("%s=%d", a.Name, a.Int))
			case AttrInts:
				attrs = append(attrs, fmt.Sprintf("%s=%v", a.Name, a.Ints))
			case AttrFloat:
				attrs = append(attrs, fmt.Sprintf("%s=%g", a.Name, a.Float))
			case AttrString:
				attrs = append(attrs, fmt.Sprintf("%s=%s", a.Name, a.String))
			default:
				attrs = append(attrs, a.Name)
			}
		}
		parts = append(parts, fmt.Sprintf("%s(%s)->%s{%s}", n.OpType, strings.Join(n.Inputs, ","), strings.Join(n.Outputs, ","), strings.Join(attrs, ",")))
	}
	for _, t := range g.Initializers {
		v := any(t.Ints)
		if t.DataType == Float {
			v = t.Floats
		}
		parts = append(parts, fmt.Sprintf("%s:%s%v=%v", t.Name, t.DataType, t.Dims, v))
	}
	return strings.Join(parts, " ")
}

func TestUpgradeOpsetRewrites(t *testing.T) {
	x4 := floatInput("x", 2, 3, 4, 5)
	y4 := floatInput("y", 2, 3, 4, 5)
	bn := []*Tensor{floatInit("s", 1, 1, 1), floatInit("b", 0, 0, 0), floatInit("m", 0, 0, 0), floatInit("v", 1, 1, 1)}
	const bnInits = " s:FLOAT[3]=[1 1 1] b:FLOAT[3]=[0 0 0] m:FLOAT[3]=[0 0 0] v:FLOAT[3]=[1 1 1]"
	x2 := floatInput("x", 2, 3)
	y2 := floatInput("y", 2, 3)
	noShape := &ValueInfo{Name: "x", ElemType: Float}
	xy := []string{"x"}
	out := []string{"y"}
	for _, c := range []struct {
		name   string
		m      *Model
		target int64
		want   string
	}{
		{"unsqueeze", opModel(11, x2, floatInput("y", 1, 2, 1, 3), nil, opNode("Unsqueeze", xy, out, ints("axes", 0, 2))), 13,
			"Unsqueeze(x,n_axes)->y{} n_axes:INT64[2]=[0 2]"},
		{"squeeze", opModel(9, floatInput("x", 1, 3, 1), y2, nil, opNode("Squeeze", xy, out, ints("axes", -1))), 13,
			"Squeeze(x,n_axes)->y{} n_axes:INT64[1]=[-1]"},
		{"squeeze all", opModel(9, floatInput("x", 1, 3, 1), floatInput("y", 3), nil, opNode("Squeeze", xy, out)), 13,
			"Squeeze(x)->y{}"},
		{"unsqueeze at 13 already", opModel(13, x2, floatInput("y", 1, 2, 3), []*Tensor{{Name: "a", DataType: Int64, Dims: []int64{1}, Ints: []int64{0}}},
			opNode("Unsqueeze", []string{"x", "a"}, out)), 17,
			"Unsqueeze(x,a)->y{} a:INT64[1]=[0]"},
		{"slice", opModel(9, x4, floatInput("y", 2, 3, 2, 5), nil, opNode("Slice", xy, out, ints("starts", 1), ints("ends", 3), ints("axes", 2))), 13,
			"Slice(x,n_starts,n_ends,n_axes)->y{} n_starts:INT64[1]=[1] n_ends:INT64[1]=[3] n_axes:INT64[1]=[2]"},
		{"slice without axes", opModel(9, x2, floatInput("y", 1, 3), nil, opNode("Slice", xy, out, ints("starts", 0, 0), ints("ends", 1, 1000))), 13,
			"Slice(x,n_starts,n_ends)->y{} n_starts:INT64[2]=[0 0] n_ends:INT64[2]=[1 1000]"},
		{"clip", opModel(9, x2, y2, nil, opNode("Clip", xy, out, floatAttr("min", -1), floatAttr("max", 6))), 13,
			"Clip(x,n_min,n_max)->y{} n_min:FLOAT[]=[-1] n_max:FLOAT[]=[6]"},
		{"clip max", opModel(10, x2, y2, nil, opNode("Clip", xy, out, floatAttr("max", 6))), 13,
			"Clip(x,,n_max)->y{} n_max:FLOAT[]=[6]"},
		{"clip min", opModel(10, x2, y2, nil, opNode("Clip", xy, out, floatAttr("min", 0))), 13,
			"Clip(x,n_min)->y{} n_min:FLOAT[]=[0]"},
		{"clip neither", opModel(10, x2, y2, nil, opNode("Clip", xy, out)), 13, "Clip(x)->y{}"},
		{"pad", opModel(9, x2, floatInput("y", 2, 6), nil, opNode("Pad", xy, out, ints("pads", 0, 1, 0, 2), floatAttr("value", 1.5))), 13,
			"Pad(x,n_pads,n_value)->y{} n_pads:INT64[4]=[0 1 0 2] n_value:FLOAT[]=[1.5]"},
		{"pad zero", opModel(9, x2, floatInput("y", 2, 6), nil, opNode("Pad", xy, out, str("mode", "constant"), ints("pads", 0, 1, 0, 2), floatAttr("value", 0))), 13,
			"Pad(x,n_pads)->y{mode=constant} n_pads:INT64[4]=[0 1 0 2]"},
		{"pad reflect", opModel(9, x2, floatInput("y", 2, 5), nil, opNode("Pad", xy, out, str("mode", "reflect"), ints("pads", 0, 1, 0, 1), floatAttr("value", 3))), 13,
			"Pad(x,n_pads)->y{mode=reflect} n_pads:INT64[4]=[0 1 0 1]"},
		{"dropout", opModel(7, x2, y2, nil, opNode("Dropout", xy, []string{"y", "mask"}, floatAttr("ratio", 0.3), intAttr("is_test", 1))), 13,
			"Dropout(x,n_ratio)->y,mask{} n_ratio:FLOAT[]=[0.3]"},
		{"dropout default", opModel(10, x2, y2, nil, opNode("Dropout", xy, out)), 13, ""},
		{"dropout 11 mask used", opModel(11, x2, floatInput("mask", 2, 3), nil,
			opNode("Dropout", xy, []string{"y", "mask"}, floatAttr("ratio", 0.5), intAttr("seed", 3))), 13,
			"Dropout(x,n_ratio)->y,mask{seed=3} n_ratio:FLOAT[]=[0.5]"},
		{"batchnorm", opModel(7, x4, y4, bn, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mean", "var", "", "saved_var"},
			floatAttr("epsilon", 1e-3), intAttr("spatial", 1), floatAttr("momentum", 0.8))), 14,
			"BatchNormalization(x,s,b,m,v)->y{epsilon=0.001,momentum=0.8}" + bnInits},
		{"batchnorm 13 to 17", opModel(13, x4, y4, bn, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mean"})), 17,
			"BatchNormalization(x,s,b,m,v)->y{}" + bnInits},
		{"batchnorm 9 to 13", opModel(9, x4, y4, bn, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mean", "var", "sm", "sv"})), 13,
			"BatchNormalization(x,s,b,m,v)->y{}" + bnInits},
		{"batchnorm 9 to 13 training", opModel(9, x4, floatInput("mean", 3), bn, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mean", "var", "sm", "sv"})), 13,
			"BatchNormalization(x,s,b,m,v)->y,mean,var,sm,sv{}" + bnInits},
		{"softmax 2-D", opModel(9, x2, y2, nil, opNode("Softmax", xy, out)), 13, "Softmax(x)->y{}"},
		{"softmax 2-D axis -1", opModel(11, x2, y2, nil, opNode("Softmax", xy, out, intAttr("axis", -1))), 13, "Softmax(x)->y{axis=-1}"},
		{"softmax last axis", opModel(11, x4, y4, nil, opNode("LogSoftmax", xy, out, intAttr("axis", 3))), 13, "LogSoftmax(x)->y{axis=3}"},
		{"softmax 4-D", opModel(9, x4, y4, nil, opNode("Softmax", xy, out)), 13,
			"Shape(x)->n_input_shape{} Flatten(x)->n_flat{axis=1} Softmax(n_flat)->n_2d{axis=1} Reshape(n_2d,n_input_shape)->y{}"},
		{"logsoftmax axis 0", opModel(11, x2, y2, nil, opNode("LogSoftmax", xy, out, intAttr("axis", 0))), 17,
			"Shape(x)->n_input_shape{} Flatten(x)->n_flat{axis=0} LogSoftmax(n_flat)->n_2d{axis=1} Reshape(n_2d,n_input_shape)->y{}"},
		{"softmax unknown rank", opModel(11, noShape, &ValueInfo{Name: "y", ElemType: Float}, nil, opNode("Softmax", xy, out, intAttr("axis", -2))), 13,
			"Shape(x)->n_input_shape{} Flatten(x)->n_flat{axis=-2} Softmax(n_flat)->n_2d{axis=1} Reshape(n_2d,n_input_shape)->y{}"},
		{"softmax rank from inference", opModel(11, x4, floatInput("y", 2, 60), nil,
			opNode("Flatten", xy, []string{"f"}), &Node{Name: "s", OpType: "Softmax", Inputs: []string{"f"}, Outputs: out}), 13,
			"Flatten(x)->f{} Softmax(f)->y{}"},
		{"opset 1 pooling", opModel(1, x4, floatInput("y", 2, 3, 1, 1), nil, opNode("GlobalAveragePool", xy, out)), 13, "GlobalAveragePool(x)->y{}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, err := Encode(c.m)
			if err != nil {
				t.Fatal(err)
			}
			u, err := UpgradeOpset(c.m, c.target)
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := Encode(c.m); !bytes.Equal(before, after) {
				t.Error("UpgradeOpset changed its argument")
			}
			want := c.want
			if want == "" {
				want = describe(c.m.Graph)
			}
			if got := describe(u.Graph); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if u.Opset("") != max(c.target, c.m.Opset("")) {
				t.Errorf("opset %d", u.Opset(""))
			}
			if wantIR := map[bool]int64{true: 8, false: 7}[c.target >= 15]; u.IRVersion != wantIR && c.m.Opset("") < c.target {
				t.Errorf("IR version %d, want %d", u.IRVersion, wantIR)
			}
			back := roundTrip(t, u)
			if len(back.Graph.Nodes) != len(u.Graph.Nodes) {
				t.Error("the upgraded model does not survive a round trip")
			}
		})
	}
}

func TestUpgradeOpsetErrors(t *testing.T) {
	x2 := floatInput("x", 2, 3)
	y2 := floatInput("y", 2, 3)
	xy, out := []string{"x"}, []string{"y"}
	mask := floatInput("mask", 2, 3)
	for _, c := range []struct {
		m      *Model
		target int64
		want   string
	}{
		{opModel(9, x2, y2, nil, opNode("Relu", xy, out)), 12, "upgrade opset: target opset 12: want 13 to 17"},
		{opModel(9, x2, y2, nil, opNode("Relu", xy, out)), 18, "upgrade opset: target opset 18: want 13 to 17"},
		{&Model{IRVersion: 3, Graph: &Graph{}}, 13, "upgrade opset: the model imports no ai.onnx opset"},
		{nil, 13, "upgrade opset: no graph"},
		{opModel(9, x2, y2, nil, &Node{Name: "up", OpType: "Upsample", Inputs: xy, Outputs: out}), 13,
			`upgrade opset 9 to 13: node "up" (Upsample): operator Upsample is not supported by the upgrade (supported: [`},
		{opModel(9, x2, y2, nil, &Node{Name: "ms", OpType: "Gelu", Domain: "com.microsoft", Inputs: xy, Outputs: out}), 13,
			`upgrade opset 9 to 13: node "ms" (Gelu): operator Gelu of domain "com.microsoft" is not supported by the upgrade`},
		{opModel(13, x2, y2, nil, &Node{Name: "r", OpType: "Resize", Inputs: xy, Outputs: out}), 17,
			`upgrade opset 13 to 17: node "r" (Resize): operator Resize is not supported`},
		{opModel(5, x2, y2, nil, opNode("Relu", xy, out)), 13,
			`upgrade opset 5 to 13: node "n" (Relu): Relu of opset 5 (definition of opset 1) predates opset 7, the oldest the upgrade handles`},
		{opModel(7, x2, mask, nil, opNode("Dropout", xy, []string{"y", "mask"})), 13,
			`upgrade opset 7 to 13: node "n" (Dropout): the mask output "mask" is used: it is a float tensor before opset 10 and bool after`},
		{opModel(9, x2, y2, nil, opNode("Dropout", xy, out, floatAttr("ratio", 1))), 13,
			`upgrade opset 9 to 13: node "n" (Dropout): ratio 1 is outside [0, 1)`},
		{opModel(7, x2, y2, nil, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, out, intAttr("spatial", 0))), 13,
			`upgrade opset 7 to 13: node "n" (BatchNormalization): spatial=0 (statistics per activation, not per channel) has no equivalent from opset 9`},
		{opModel(9, x2, mask, nil, opNode("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y", "mask"})), 14,
			`upgrade opset 9 to 14: node "n" (BatchNormalization): the training-mode output "mask" is used: from opset 14 an inference BatchNormalization has one output`},
		{opModel(11, x2, y2, nil, opNode("Unsqueeze", xy, out)), 13, `upgrade opset 11 to 13: node "n" (Unsqueeze): attribute "axes" missing`},
		{opModel(9, x2, y2, nil, opNode("Slice", xy, out, ints("starts", 0))), 13,
			`upgrade opset 9 to 13: node "n" (Slice): attributes "starts" and "ends" are required`},
		{opModel(9, x2, y2, nil, opNode("Pad", xy, out)), 13, `upgrade opset 9 to 13: node "n" (Pad): attribute "pads" missing`},
		{opModel(11, x2, y2, nil, opNode("Softmax", xy, out, intAttr("axis", 2))), 13,
			`upgrade opset 11 to 13: node "n" (Softmax): axis 2 is out of range for rank 2`},
	} {
		_, err := UpgradeOpset(c.m, c.target)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got %v\nwant %s", err, c.want)
		}
	}
}

// TestUpgradeOpsetNames checks that the names the rewrite adds do not collide with
// the model's.
func TestUpgradeOpsetNames(t *testing.T) {
	m := opModel(11, floatInput("x", 2, 3), floatInput("y", 1, 1, 2, 3), []*Tensor{{Name: "u_axes", DataType: Int64, Dims: []int64{1}, Ints: []int64{7}}},
		&Node{Name: "u", OpType: "Unsqueeze", Inputs: []string{"x"}, Outputs: []string{"u_axes_1"}, Attributes: []*Attribute{ints("axes", 0)}},
		&Node{Name: "u_1", OpType: "Unsqueeze", Inputs: []string{"u_axes_1"}, Outputs: []string{"y"}, Attributes: []*Attribute{ints("axes", 0)}},
	)
	u, err := UpgradeOpset(m, 13)
	if err != nil {
		t.Fatal(err)
	}
	want := "Unsqueeze(x,u_axes_2)->u_axes_1{} Unsqueeze(u_axes_1,u_1_axes)->y{} u_axes:INT64[1]=[7] u_axes_2:INT64[1]=[0] u_1_axes:INT64[1]=[0]"
	if got := describe(u.Graph); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestUpgradeOpsetFixtures upgrades the opset 9 and 13 parity fixtures: the opset 13
// ones (whose ops did not change up to 17) come back as they were but for the opset
// and IR version, and nothing upgraded from 9 is left at an old definition.
func TestUpgradeOpsetFixtures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(parityDir, "*_opset13"))
	if len(dirs) < 6 {
		// The fixtures are part of the repository, not an installed reference.
		t.Fatalf("%d opset 13 parity fixtures under %s, want 6 (regenerate with /usr/bin/python3 tools/make_parity_fixtures.py)", len(dirs), parityDir)
	}
	for _, dir := range dirs {
		m := mustRead(t, filepath.Join(dir, "model.onnx"))
		u, err := UpgradeOpset(m, 17)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if u.Opset("") != 17 || u.IRVersion != 8 {
			t.Errorf("%s: opset %d, IR %d", dir, u.Opset(""), u.IRVersion)
		}
		u.OpsetImports, u.IRVersion = m.OpsetImports, m.IRVersion
		if !reflect.DeepEqual(u, m) {
			t.Errorf("%s: upgrading from 13 to 17 changed more than the opset", dir)
		}
		same, err := UpgradeOpset(m, 13)
		if err != nil || same == m || !reflect.DeepEqual(same, m) {
			t.Errorf("%s: upgrading to its own opset: %v", dir, err)
		}
	}
	dirs, _ = filepath.Glob(filepath.Join(parityDir, "*_opset9"))
	for _, dir := range dirs {
		m := mustRead(t, filepath.Join(dir, "model.onnx"))
		u, err := UpgradeOpset(m, 13)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, n := range u.Graph.Nodes {
			for _, a := range n.Attributes {
				if (n.OpType == "Unsqueeze" || n.OpType == "Squeeze") && a.Name == "axes" ||
					n.OpType == "Pad" && (a.Name == "pads" || a.Name == "value") {
					t.Errorf("%s: node %s keeps attribute %s", dir, n, a.Name)
				}
			}
		}
		want := mustRead(t, filepath.Join(strings.TrimSuffix(dir, "9")+"13", "model.onnx"))
		if got, err := Summarize(u); err != nil {
			t.Error(err)
		} else if w, _ := Summarize(want); got.TotalParams != w.TotalParams || !slices.Equal(got.Outputs[0].Shape, w.Outputs[0].Shape) {
			t.Errorf("%s: upgraded: %d params, output %v; PyTorch's opset 13 export: %d, %v",
				dir, got.TotalParams, got.Outputs[0].Shape, w.TotalParams, w.Outputs[0].Shape)
		}
	}
}

// upgradeNodeTests lists the ONNX node tests whose models use only operators
// UpgradeOpset handles, by the model's opset.
func upgradeNodeTests(t *testing.T) (old, recent map[string]*Model) {
	old, recent = map[string]*Model{}, map[string]*Model{}
	for _, dir := range nodeTests(t) {
		m, err := Read(filepath.Join(dir, "model.onnx"))
		if err != nil {
			continue
		}
		ok := true
		for _, n := range m.Graph.Nodes {
			if SchemaOf(n) == nil {
				ok = false
			}
		}
		switch v := m.Opset(""); {
		case !ok || len(m.Graph.Nodes) == 0:
		case v < 13:
			old[filepath.Base(dir)] = m
		case v < 17:
			recent[filepath.Base(dir)] = m
		}
	}
	return old, recent
}

// TestUpgradeOpsetChecker has the ONNX checker (full check: strict shape inference
// included) check the parity fixtures upgraded from opset 9 to 13 and 17 and from 13 to
// 17, and the ONNX node tests that use only the operators handled: those below opset 13
// upgraded to 13 and to 17, those at 13 to 16 upgraded to 17.
func TestUpgradeOpsetChecker(t *testing.T) {
	needPython(t, "onnx")
	dir := t.TempDir()
	var files []string
	write := func(name string, m *Model, target int64) {
		t.Helper()
		u, err := UpgradeOpset(m, target)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		p := filepath.Join(dir, fmt.Sprintf("%s_to%d.onnx", name, target))
		if err := Write(p, u); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	fixtures, _ := filepath.Glob(filepath.Join(parityDir, "*_opset9"))
	if len(fixtures) < 6 {
		t.Errorf("%d opset 9 parity fixtures under %s, want 6", len(fixtures), parityDir)
	}
	for _, d := range fixtures {
		m := mustRead(t, filepath.Join(d, "model.onnx"))
		write(filepath.Base(d), m, 13)
		write(filepath.Base(d), m, 17)
		write(filepath.Base(d)+"_via13", mustRead(t, filepath.Join(strings.TrimSuffix(d, "9")+"13", "model.onnx")), 17)
	}
	old, recent := upgradeNodeTests(t)
	if len(old) < 40 {
		t.Errorf("only %d node tests below opset 13 use just the operators handled", len(old))
	}
	for _, want := range []string{"test_dropout_default_old", "test_dropout_random_old", "test_unsqueeze_axis_3", "test_globalmaxpool", "test_maxpool_2d_uint8"} {
		if old[want] == nil {
			t.Errorf("node test %s is not among those upgraded", want)
		}
	}
	for name, m := range old {
		write(name, m, 13)
		write(name, m, 17)
	}
	for name, m := range recent {
		write(name, m, 17)
	}
	bad := checkWithONNX(t, dir, files, true)
	t.Logf("the ONNX checker (full check) accepted %d of %d upgraded models (%d node tests below opset 13, %d at 13 to 16)",
		len(files)-len(bad), len(files), len(old), len(recent))
}

// TestUpgradeOpsetValueInfo checks that value infos of outputs the rewrite drops or
// retypes go, the others stay, and that an opset import spelt "ai.onnx" is raised.
func TestUpgradeOpsetValueInfo(t *testing.T) {
	x := floatInput("x", 2, 3, 4, 5)
	m := opModel(9, x, floatInput("y", 2, 3, 4, 5),
		[]*Tensor{floatInit("s", 1, 1, 1), floatInit("b", 0, 0, 0), floatInit("m", 0, 0, 0), floatInit("v", 1, 1, 1)},
		&Node{Name: "drop", OpType: "Dropout", Inputs: []string{"x"}, Outputs: []string{"d", "mask"}},
		&Node{Name: "bn", OpType: "BatchNormalization", Inputs: []string{"d", "s", "b", "m", "v"}, Outputs: []string{"y", "mean", "var", "sm", "sv"}},
	)
	m.OpsetImports = []OpsetImport{{Domain: "ai.onnx", Version: 9}, {Domain: "ai.onnx.ml", Version: 2}}
	m.Graph.ValueInfo = []*ValueInfo{floatInput("d", 2, 3, 4, 5), floatInput("mask", 2, 3, 4, 5), floatInput("mean", 3), floatInput("sv", 3)}
	u, err := UpgradeOpset(m, 15)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range u.Graph.ValueInfo {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"d"}) {
		t.Errorf("value infos %v, want [d]", names)
	}
	if want := []OpsetImport{{Domain: "ai.onnx", Version: 15}, {Domain: "ai.onnx.ml", Version: 2}}; !slices.Equal(u.OpsetImports, want) {
		t.Errorf("opset imports %v, want %v", u.OpsetImports, want)
	}
	if u.IRVersion != 8 || len(m.Graph.ValueInfo) != 4 || m.OpsetImports[0].Version != 9 {
		t.Errorf("IR version %d; the original now has %d value infos, opset %d", u.IRVersion, len(m.Graph.ValueInfo), m.OpsetImports[0].Version)
	}
}
