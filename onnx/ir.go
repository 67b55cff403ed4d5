package onnx

// DataType is an ONNX tensor element type (TensorProto.DataType).
type DataType int32

// The element types of the ONNX specification.
const (
	Undefined  DataType = 0
	Float      DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Double     DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
)

// Tensor is a constant tensor: an initializer, a Constant value or a tensor attribute.
//
// Floating-point tensors (float16, bfloat16, float32, float64 in the file) are held as
// float32 in Floats and have DataType Float. Integer and bool tensors keep their
// DataType and hold their values as int64 in Ints (uint64 values above 1<<63 - 1 keep
// their bits). String tensors hold their values in Strings. Values are in row-major
// order; a tensor with no Dims is a scalar with one element.
type Tensor struct {
	Name     string
	DataType DataType
	Dims     []int64
	Floats   []float32
	Ints     []int64
	Strings  []string
}

// AttrType is an ONNX attribute type (AttributeProto.AttributeType).
type AttrType int32

// The attribute types the IR holds.
const (
	AttrUndefined AttrType = 0
	AttrFloat     AttrType = 1
	AttrInt       AttrType = 2
	AttrString    AttrType = 3
	AttrTensor    AttrType = 4
	AttrGraph     AttrType = 5
	AttrFloats    AttrType = 6
	AttrInts      AttrType = 7
	AttrStrings   AttrType = 8
	AttrTensors   AttrType = 9
	AttrGraphs    AttrType = 10
)

// Attribute is one named attribute of a node. Type says which value field is in use.
// Graph and Graphs hold the bodies of control-flow operators (If, Loop, Scan).
type Attribute struct {
	Name    string
	Type    AttrType
	Float   float32
	Int     int64
	String  string
	Tensor  *Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
	Graph   *Graph
	Tensors []*Tensor
	Graphs  []*Graph
}

// Node is one operator application. An empty input name marks an omitted optional input.
type Node struct {
	Name       string
	OpType     string
	Domain     string
	Inputs     []string
	Outputs    []string
	Attributes []*Attribute
	DocString  string
}

// Dim is one dimension of a value's shape: a fixed size (Value > 0), a named symbolic
// size (Param), or unknown (Value <= 0 and Param empty).
type Dim struct {
	Value int64
	Param string
}

// ValueInfo names a graph input, output or intermediate value with its type and shape.
type ValueInfo struct {
	Name      string
	ElemType  DataType
	Shape     []Dim
	HasShape  bool
	DocString string
}

// Graph is a computation graph: nodes in topological order, constant initializers and
// the typed inputs and outputs.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	// Inputs are the graph inputs in file order. Models with IR version < 4 also list
	// the initializers here; RealInputs leaves those out.
	Inputs    []*ValueInfo
	Outputs   []*ValueInfo
	ValueInfo []*ValueInfo
	DocString string
}

// OpsetImport is the operator set version a model uses for one domain.
type OpsetImport struct {
	Domain  string
	Version int64
}

// MetadataEntry is one key/value pair of a model's metadata_props.
type MetadataEntry struct {
	Key   string
	Value string
}

// Model is an ONNX model: the graph and what the file says about it.
type Model struct {
	IRVersion       int64
	OpsetImports    []OpsetImport
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Metadata        []MetadataEntry
	Graph           *Graph
}
