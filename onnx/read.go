package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"toolkit/onnx/onnxpb"
)

// ErrNotModel is wrapped by the errors of Read and Decode for data that is not an ONNX
// model (or tensor) at all: not protobuf, or protobuf of some other kind.
var ErrNotModel = errors.New("not an ONNX model")

// ErrTruncated is wrapped by the errors of Read and Decode for data that ends in the
// middle of a message. It also wraps io.ErrUnexpectedEOF.
var ErrTruncated = errors.New("truncated")

// maxGraphDepth bounds how deeply subgraphs (If, Loop, Scan bodies) may nest.
const maxGraphDepth = 64

// Read reads and validates the ONNX model in the file at path. External data is
// resolved relative to the file's folder. Errors name the file.
//
// The model's nodes come back in topological order, each with a unique name: a node
// without a name in the file is called "<OpType>_<index>", index being its position
// in the file.
func Read(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ONNX model: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read ONNX model: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("read ONNX model: %s is a folder", path)
	}
	m, err := decode(f, fi.Size(), filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode decodes and validates a serialized ONNX model (a ModelProto). baseDir is the
// folder that external-data locations are relative to (the model file's folder); with
// an empty baseDir a model with external data is an error. See Read.
func Decode(data []byte, baseDir string) (*Model, error) {
	return decode(bytes.NewReader(data), int64(len(data)), baseDir)
}

// ReadTensor reads a file holding one serialized TensorProto, such as the
// input_0.pb and output_0.pb files of the ONNX node tests. Errors name the file.
func ReadTensor(path string) (*Tensor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ONNX tensor: %w", err)
	}
	t, err := DecodeTensor(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// DecodeTensor decodes one serialized TensorProto. Its data must be inside the
// message: a tensor with external data is an error here.
func DecodeTensor(data []byte) (*Tensor, error) {
	var tp onnxpb.TensorProto
	if err := tp.Unmarshal(data); err != nil {
		return nil, protoError("tensor", err)
	}
	if len(data) > 0 && tp.DataType == 0 && len(tp.Dims) == 0 && tp.RawData == nil && tp.GetName() == "" {
		return nil, fmt.Errorf("%w: no data type, dims, data or name", ErrNotModel)
	}
	d := &decoder{}
	t, err := d.tensor(&tp)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// protoError turns a protobuf decoding error into one that says what went wrong.
func protoError(what string, err error) error {
	if errors.Is(err, errWire) {
		return fmt.Errorf("%w: %w", ErrNotModel, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w ONNX %s: unexpected end of data: %w", ErrTruncated, what, err)
	}
	return fmt.Errorf("%w: %w", ErrNotModel, err)
}

// decode reads a ModelProto of size bytes from r and converts it into the IR.
func decode(r io.Reader, size int64, baseDir string) (*Model, error) {
	if size == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrNotModel)
	}
	mp, err := newStreamer(r, size).model(size)
	if err != nil {
		if errors.Is(err, ErrNotModel) {
			return nil, err
		}
		return nil, protoError("model", err)
	}
	if mp.Graph == nil {
		return nil, fmt.Errorf("%w: no graph", ErrNotModel)
	}
	if mp.IrVersion <= 0 {
		return nil, fmt.Errorf("%w: no IR version", ErrNotModel)
	}
	if len(mp.OpsetImport) == 0 && mp.IrVersion >= 3 {
		return nil, fmt.Errorf("%w ONNX model: no opset_import", ErrTruncated)
	}
	d := &decoder{baseDir: baseDir}
	m := &Model{
		IRVersion:       mp.IrVersion,
		ProducerName:    mp.GetProducerName(),
		ProducerVersion: mp.GetProducerVersion(),
		Domain:          mp.GetDomain(),
		ModelVersion:    mp.GetModelVersion(),
		DocString:       mp.GetDocString(),
	}
	for _, op := range mp.OpsetImport {
		if op == nil {
			continue
		}
		m.OpsetImports = append(m.OpsetImports, OpsetImport{Domain: op.GetDomain(), Version: op.Version})
	}
	for _, e := range mp.MetadataProps {
		if e == nil {
			continue
		}
		m.Metadata = append(m.Metadata, MetadataEntry{Key: e.Key, Value: e.Value})
	}
	g, err := d.graph(mp.Graph, 0)
	if err != nil {
		return nil, err
	}
	m.Graph = g
	if err := prepareGraph(g, true); err != nil {
		return nil, err
	}
	return m, nil
}

// decoder converts protobuf messages into the IR.
type decoder struct {
	baseDir string // folder of the model file, for external data; "" for none
}

func (d *decoder) graph(gp *onnxpb.GraphProto, depth int) (*Graph, error) {
	if depth > maxGraphDepth {
		return nil, fmt.Errorf("subgraphs nested more than %d deep", maxGraphDepth)
	}
	g := &Graph{Name: gp.Name, DocString: gp.GetDocString()}
	g.Nodes = make([]*Node, 0, len(gp.Node))
	for i, np := range gp.Node {
		if np == nil {
			continue
		}
		n := &Node{
			Name:      np.GetName(),
			OpType:    np.OpType,
			Domain:    np.GetDomain(),
			Inputs:    np.Input,
			Outputs:   np.Output,
			DocString: np.GetDocString(),
		}
		for _, ap := range np.Attribute {
			if ap == nil {
				continue
			}
			a, err := d.attribute(ap, depth)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", nodeLabel(n, i), err)
			}
			n.Attributes = append(n.Attributes, a)
		}
		g.Nodes = append(g.Nodes, n)
	}
	g.Initializers = make([]*Tensor, 0, len(gp.Initializer))
	for _, tp := range gp.Initializer {
		if tp == nil {
			continue
		}
		t, err := d.tensor(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		g.Initializers = append(g.Initializers, t)
	}
	var err error
	if g.Inputs, err = valueInfos(gp.Input, "input"); err != nil {
		return nil, err
	}
	if g.Outputs, err = valueInfos(gp.Output, "output"); err != nil {
		return nil, err
	}
	if g.ValueInfo, err = valueInfos(gp.ValueInfo, "value_info"); err != nil {
		return nil, err
	}
	return g, nil
}

// nodeLabel names a node in messages, by its name or, for unnamed nodes, its position.
func nodeLabel(n *Node, i int) string {
	if n.Name != "" {
		return fmt.Sprintf("%q (%s)", n.Name, n.OpType)
	}
	return fmt.Sprintf("#%d (%s)", i, n.OpType)
}

func valueInfos(vps []*onnxpb.ValueInfoProto, what string) ([]*ValueInfo, error) {
	out := make([]*ValueInfo, 0, len(vps))
	for _, vp := range vps {
		if vp == nil {
			continue
		}
		v := &ValueInfo{Name: vp.Name, DocString: vp.GetDocString()}
		if vp.Type != nil {
			tt := vp.Type.GetTensorType()
			if tt == nil {
				return nil, fmt.Errorf("graph %s %q: only tensor types are supported", what, vp.Name)
			}
			v.ElemType = DataType(tt.ElemType)
			if tt.Shape != nil {
				v.HasShape = true
				v.Shape = make([]Dim, len(tt.Shape.Dim))
				for i, dp := range tt.Shape.Dim {
					if dp == nil {
						continue
					}
					switch x := dp.Value.(type) {
					case *onnxpb.TensorShapeProto_Dimension_DimValue:
						if x.DimValue > 0 {
							v.Shape[i].Value = x.DimValue
						}
					case *onnxpb.TensorShapeProto_Dimension_DimParam:
						v.Shape[i].Param = x.DimParam
					}
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *decoder) attribute(ap *onnxpb.AttributeProto, depth int) (*Attribute, error) {
	a := &Attribute{Name: ap.Name}
	typ := ap.GetType()
	if ap.Type == nil || typ == onnxpb.AttributeProto_UNDEFINED {
		typ = guessAttrType(ap)
	}
	switch typ {
	case onnxpb.AttributeProto_FLOAT:
		a.Type, a.Float = AttrFloat, ap.GetF()
	case onnxpb.AttributeProto_INT:
		a.Type, a.Int = AttrInt, ap.GetI()
	case onnxpb.AttributeProto_STRING:
		a.Type, a.String = AttrString, string(ap.S)
	case onnxpb.AttributeProto_TENSOR:
		if ap.T == nil {
			return nil, fmt.Errorf("attribute %q: tensor missing", ap.Name)
		}
		t, err := d.tensor(ap.T)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", ap.Name, err)
		}
		a.Type, a.Tensor = AttrTensor, t
	case onnxpb.AttributeProto_GRAPH:
		if ap.G == nil {
			return nil, fmt.Errorf("attribute %q: graph missing", ap.Name)
		}
		g, err := d.subgraph(ap.G, depth)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", ap.Name, err)
		}
		a.Type, a.Graph = AttrGraph, g
	case onnxpb.AttributeProto_FLOATS:
		a.Type, a.Floats = AttrFloats, nonNilFloats(ap.Floats)
	case onnxpb.AttributeProto_INTS:
		a.Type, a.Ints = AttrInts, nonNilInts(ap.Ints)
	case onnxpb.AttributeProto_STRINGS:
		a.Type = AttrStrings
		a.Strings = make([]string, len(ap.Strings))
		for i, s := range ap.Strings {
			a.Strings[i] = string(s)
		}
	case onnxpb.AttributeProto_TENSORS:
		a.Type = AttrTensors
		a.Tensors = make([]*Tensor, 0, len(ap.Tensors))
		for _, tp := range ap.Tensors {
			if tp == nil {
				continue
			}
			t, err := d.tensor(tp)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", ap.Name, err)
			}
			a.Tensors = append(a.Tensors, t)
		}
	case onnxpb.AttributeProto_GRAPHS:
		a.Type = AttrGraphs
		a.Graphs = make([]*Graph, 0, len(ap.Graphs))
		for _, gp := range ap.Graphs {
			if gp == nil {
				continue
			}
			g, err := d.subgraph(gp, depth)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", ap.Name, err)
			}
			a.Graphs = append(a.Graphs, g)
		}
	default:
		return nil, fmt.Errorf("attribute %q: type %s is not supported", ap.Name, typ)
	}
	return a, nil
}

func (d *decoder) subgraph(gp *onnxpb.GraphProto, depth int) (*Graph, error) {
	g, err := d.graph(gp, depth+1)
	if err != nil {
		return nil, err
	}
	if err := prepareGraph(g, false); err != nil {
		return nil, fmt.Errorf("subgraph %q: %w", g.Name, err)
	}
	return g, nil
}

// guessAttrType finds the type of an attribute written without one (very old files).
func guessAttrType(ap *onnxpb.AttributeProto) onnxpb.AttributeProto_AttributeType {
	switch {
	case ap.F != nil:
		return onnxpb.AttributeProto_FLOAT
	case ap.I != nil:
		return onnxpb.AttributeProto_INT
	case ap.S != nil:
		return onnxpb.AttributeProto_STRING
	case ap.T != nil:
		return onnxpb.AttributeProto_TENSOR
	case ap.G != nil:
		return onnxpb.AttributeProto_GRAPH
	case len(ap.Floats) > 0:
		return onnxpb.AttributeProto_FLOATS
	case len(ap.Ints) > 0:
		return onnxpb.AttributeProto_INTS
	case len(ap.Strings) > 0:
		return onnxpb.AttributeProto_STRINGS
	case len(ap.Tensors) > 0:
		return onnxpb.AttributeProto_TENSORS
	case len(ap.Graphs) > 0:
		return onnxpb.AttributeProto_GRAPHS
	}
	return onnxpb.AttributeProto_UNDEFINED
}

func nonNilFloats(f []float32) []float32 {
	if f == nil {
		return []float32{}
	}
	return f
}

func nonNilInts(v []int64) []int64 {
	if v == nil {
		return []int64{}
	}
	return v
}
