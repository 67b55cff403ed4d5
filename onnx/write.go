package onnx

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"toolkit/internal/atomicfile"
	"toolkit/onnx/onnxpb"
)

// Encode serializes m as an ONNX ModelProto. Floating-point tensors are written as
// FLOAT raw_data, integer tensors as raw_data of their own type; everything lives in
// the one message (no external data), so the model must stay under protobuf's 2 GB.
func Encode(m *Model) ([]byte, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("encode ONNX model: no graph")
	}
	mp, err := modelProto(m)
	if err != nil {
		return nil, fmt.Errorf("encode ONNX model: %w", err)
	}
	size := mp.Size()
	if size > math.MaxInt32 {
		return nil, fmt.Errorf("encode ONNX model: %d bytes is over protobuf's 2 GB limit", size)
	}
	data := make([]byte, size)
	if _, err := mp.MarshalToSizedBuffer(data); err != nil {
		return nil, fmt.Errorf("encode ONNX model: %w", err)
	}
	return data, nil
}

// Write writes m to path as an ONNX file. It writes a temporary file in the same
// folder, syncs it and renames it over path, so path never holds a half-written model;
// a new file gets mode 0666 less the umask, as os.Create gives.
func Write(path string, m *Model) error {
	if err := atomicfile.Write(path, func(f *os.File) error { return WriteTo(f, m) }); err != nil {
		return fmt.Errorf("write ONNX model: %w", err)
	}
	return nil
}

// WriteTo writes m to w as an ONNX file, streaming the weights from where they are
// (Encode's bytes, but for the order of fields; see writeModelProto).
func WriteTo(w io.Writer, m *Model) error {
	if m == nil || m.Graph == nil {
		return errors.New("encode ONNX model: no graph")
	}
	mp, err := modelProto(m)
	if err != nil {
		return fmt.Errorf("encode ONNX model: %w", err)
	}
	return streamModelProto(w, mp)
}

// streamModelProto checks mp's size and writes it to w through writeModelProto.
func streamModelProto(w io.Writer, mp *onnxpb.ModelProto) error {
	if size := mp.Size(); size > math.MaxInt32 {
		return fmt.Errorf("encode ONNX model: %d bytes is over protobuf's 2 GB limit", size)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := writeModelProto(bw, mp); err != nil {
		return err
	}
	return bw.Flush()
}

// writeModelProto writes mp in the protobuf wire format without marshalling it into
// one buffer: the tensors' raw data (the weights, which Encode would copy into the
// buffer whole) goes to w from where it is. The bytes differ from Encode's only in the
// order of fields (the graph and each initializer's raw_data come last), which the
// format allows; parsers, Read included, give the same model.
func writeModelProto(w io.Writer, mp *onnxpb.ModelProto) error {
	graph := mp.Graph
	rest := *mp
	rest.Graph = nil
	head, err := rest.Marshal()
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	if graph == nil {
		return nil
	}
	inits := graph.Initializer
	g := *graph
	g.Initializer = nil
	gHead, err := g.Marshal()
	if err != nil {
		return err
	}
	type part struct {
		head []byte // the tensor without its raw data
		raw  []byte
		size int // of the whole TensorProto
	}
	parts := make([]part, len(inits))
	gSize := len(gHead)
	for i, t := range inits {
		tc := *t
		tc.RawData = nil
		th, err := tc.Marshal()
		if err != nil {
			return err
		}
		size := len(th)
		if t.RawData != nil {
			size += 1 + varintLen(uint64(len(t.RawData))) + len(t.RawData) // raw_data = 9
		}
		parts[i] = part{th, t.RawData, size}
		gSize += 1 + varintLen(uint64(size)) + size // initializer = 5
	}
	var buf [2 * binary.MaxVarintLen64]byte
	tagged := func(field int, n int) []byte { // the tag of a length-delimited field, then n
		b := binary.AppendUvarint(buf[:0], uint64(field<<3|2))
		return binary.AppendUvarint(b, uint64(n))
	}
	if _, err := w.Write(tagged(7, gSize)); err != nil { // ModelProto.graph = 7
		return err
	}
	if _, err := w.Write(gHead); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(tagged(5, p.size)); err != nil {
			return err
		}
		if _, err := w.Write(p.head); err != nil {
			return err
		}
		if p.raw != nil {
			if _, err := w.Write(tagged(9, len(p.raw))); err != nil {
				return err
			}
			if _, err := w.Write(p.raw); err != nil {
				return err
			}
		}
	}
	return nil
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func modelProto(m *Model) (*onnxpb.ModelProto, error) {
	mp := &onnxpb.ModelProto{
		IrVersion:       m.IRVersion,
		ProducerName:    optString(m.ProducerName),
		ProducerVersion: optString(m.ProducerVersion),
		Domain:          optString(m.Domain),
		DocString:       optString(m.DocString),
	}
	if m.ModelVersion != 0 {
		v := m.ModelVersion
		mp.ModelVersion = &v
	}
	for _, op := range m.OpsetImports {
		mp.OpsetImport = append(mp.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: optString(op.Domain), Version: op.Version})
	}
	for _, e := range m.Metadata {
		mp.MetadataProps = append(mp.MetadataProps, &onnxpb.StringStringEntryProto{Key: e.Key, Value: e.Value})
	}
	g, err := graphProto(m.Graph)
	if err != nil {
		return nil, err
	}
	mp.Graph = g
	return mp, nil
}

// optString is nil for "" so that empty optional strings are left out of the file.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func graphProto(g *Graph) (*onnxpb.GraphProto, error) {
	gp := &onnxpb.GraphProto{Name: g.Name, DocString: optString(g.DocString)}
	gp.Node = make([]*onnxpb.NodeProto, 0, len(g.Nodes))
	for _, n := range g.Nodes {
		np := &onnxpb.NodeProto{
			Input:     n.Inputs,
			Output:    n.Outputs,
			Name:      optString(n.Name),
			OpType:    n.OpType,
			Domain:    optString(n.Domain),
			DocString: optString(n.DocString),
		}
		for _, a := range n.Attributes {
			ap, err := attributeProto(a)
			if err != nil {
				return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
			}
			np.Attribute = append(np.Attribute, ap)
		}
		gp.Node = append(gp.Node, np)
	}
	for _, t := range g.Initializers {
		tp, err := tensorProto(t)
		if err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		gp.Initializer = append(gp.Initializer, tp)
	}
	gp.Input = valueInfoProtos(g.Inputs)
	gp.Output = valueInfoProtos(g.Outputs)
	gp.ValueInfo = valueInfoProtos(g.ValueInfo)
	return gp, nil
}

func valueInfoProtos(vs []*ValueInfo) []*onnxpb.ValueInfoProto {
	out := make([]*onnxpb.ValueInfoProto, 0, len(vs))
	for _, v := range vs {
		tt := &onnxpb.TypeProto_Tensor{ElemType: int32(v.ElemType)}
		if v.HasShape {
			tt.Shape = &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, len(v.Shape))}
			for i, d := range v.Shape {
				dp := &onnxpb.TensorShapeProto_Dimension{}
				switch {
				case d.Value > 0:
					dp.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
				case d.Param != "":
					dp.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
				}
				tt.Shape.Dim[i] = dp
			}
		}
		out = append(out, &onnxpb.ValueInfoProto{
			Name:      v.Name,
			Type:      &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}},
			DocString: optString(v.DocString),
		})
	}
	return out
}

func attributeProto(a *Attribute) (*onnxpb.AttributeProto, error) {
	ap := &onnxpb.AttributeProto{Name: a.Name}
	typ := onnxpb.AttributeProto_AttributeType(a.Type)
	ap.Type = &typ
	switch a.Type {
	case AttrFloat:
		f := a.Float
		ap.F = &f
	case AttrInt:
		i := a.Int
		ap.I = &i
	case AttrString:
		ap.S = []byte(a.String)
	case AttrTensor:
		if a.Tensor == nil {
			return nil, fmt.Errorf("attribute %q: no tensor", a.Name)
		}
		tp, err := tensorProto(a.Tensor)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		ap.T = tp
	case AttrGraph:
		if a.Graph == nil {
			return nil, fmt.Errorf("attribute %q: no graph", a.Name)
		}
		gp, err := graphProto(a.Graph)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
		}
		ap.G = gp
	case AttrFloats:
		ap.Floats = a.Floats
	case AttrInts:
		ap.Ints = a.Ints
	case AttrStrings:
		ap.Strings = make([][]byte, len(a.Strings))
		for i, s := range a.Strings {
			ap.Strings[i] = []byte(s)
		}
	case AttrTensors:
		for _, t := range a.Tensors {
			tp, err := tensorProto(t)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
			}
			ap.Tensors = append(ap.Tensors, tp)
		}
	case AttrGraphs:
		for _, g := range a.Graphs {
			gp, err := graphProto(g)
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", a.Name, err)
			}
			ap.Graphs = append(ap.Graphs, gp)
		}
	default:
		return nil, fmt.Errorf("attribute %q: unknown type %d", a.Name, a.Type)
	}
	return ap, nil
}

func tensorProto(t *Tensor) (*onnxpb.TensorProto, error) {
	if t == nil {
		return nil, errors.New("nil tensor")
	}
	tp := &onnxpb.TensorProto{Dims: t.Dims, DataType: int32(t.DataType), Name: optString(t.Name)}
	if t.DataType.IsFloat() {
		tp.DataType = int32(Float) // Floats hold float32 whatever the type says
	}
	if t.DataType == String {
		n, err := countElements(t.Dims)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if len(t.Strings) != n {
			return nil, fmt.Errorf("tensor %q: dims %v need %d elements, Strings has %d", t.Name, t.Dims, n, len(t.Strings))
		}
		tp.StringData = make([][]byte, n)
		for i, s := range t.Strings {
			tp.StringData[i] = []byte(s)
		}
		return tp, nil
	}
	raw, err := rawBytes(t)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	tp.RawData = raw
	return tp, nil
}
