package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"toolkit/onnx/onnxpb"
)

// maxElements bounds the element count a tensor's dims may claim (2^48), far above any
// real tensor and low enough that no product of dims overflows.
const maxElements = 1 << 48

// String returns the ONNX name of a data type, e.g. "FLOAT" or "INT64".
func (t DataType) String() string {
	if s, ok := onnxpb.TensorProto_DataType_name[int32(t)]; ok {
		return s
	}
	return "DataType(" + strconv.Itoa(int(t)) + ")"
}

// IsFloat reports whether t is a floating-point type (held as float32 in the IR).
func (t DataType) IsFloat() bool {
	return t == Float || t == Float16 || t == Double || t == BFloat16
}

// IsInt reports whether t is an integer or bool type (held as int64 in the IR).
func (t DataType) IsInt() bool {
	switch t {
	case Uint8, Int8, Uint16, Int16, Int32, Int64, Bool, Uint32, Uint64:
		return true
	}
	return false
}

// elemSize is the size in bytes of one element of t in raw_data, 0 for types raw_data
// cannot hold.
func elemSize(t DataType) int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Uint64, Double:
		return 8
	}
	return 0
}

// countElements is the element count of dims: 1 for a scalar.
func countElements(dims []int64) (int, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", dims)
		}
		if d != 0 && n > maxElements/d {
			return 0, fmt.Errorf("dims %v give too many elements", dims)
		}
		n *= d
	}
	return int(n), nil
}

// hostLittleEndian reports whether this machine stores numbers little-endian, as ONNX
// raw_data does.
func hostLittleEndian() bool {
	var x uint16 = 1
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// tensor converts a TensorProto into the IR.
func (d *decoder) tensor(tp *onnxpb.TensorProto) (*Tensor, error) {
	name := tp.GetName()
	t, err := d.tensorData(tp)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return t, nil
}

func (d *decoder) tensorData(tp *onnxpb.TensorProto) (*Tensor, error) {
	dt := DataType(tp.DataType)
	t := &Tensor{Name: tp.GetName(), DataType: dt, Dims: tp.Dims}
	if tp.Segment != nil {
		return nil, fmt.Errorf("segmented tensors are not supported")
	}
	n, err := countElements(tp.Dims)
	if err != nil {
		return nil, err
	}
	switch {
	case dt.IsFloat():
		t.DataType = Float
	case dt.IsInt(), dt == String:
	case dt == Complex64 || dt == Complex128:
		return nil, fmt.Errorf("data type %s is not supported", dt)
	default:
		return nil, fmt.Errorf("unknown data type %d", int32(dt))
	}

	raw := tp.RawData
	external := tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
	if external {
		if dt == String {
			return nil, fmt.Errorf("external data for a STRING tensor")
		}
		raw, err = d.externalData(tp, n*elemSize(dt))
		if err != nil {
			return nil, err
		}
	}
	if raw != nil {
		if dt == String {
			return nil, fmt.Errorf("raw_data for a STRING tensor")
		}
		size := elemSize(dt)
		if len(raw) != n*size {
			return nil, fmt.Errorf("dims %v need %d elements (%d bytes of %s), raw_data has %d bytes",
				tp.Dims, n, n*size, dt, len(raw))
		}
		decodeRaw(t, dt, raw, n)
		return t, nil
	}
	return t, typedData(t, tp, dt, n)
}

// typedData fills t from the type-specific fields of tp.
func typedData(t *Tensor, tp *onnxpb.TensorProto, dt DataType, n int) error {
	is32 := dt == Int32 || dt == Int16 || dt == Int8 || dt == Uint16 || dt == Uint8 || dt == Bool || dt == Float16 || dt == BFloat16
	field, got := "", 0
	// At most one typed field may hold data, and it must fit the data type.
	for _, c := range []struct {
		name string
		l    int
		ok   bool
	}{
		{"float_data", len(tp.FloatData), dt == Float},
		{"int32_data", len(tp.Int32Data), is32},
		{"int64_data", len(tp.Int64Data), dt == Int64},
		{"double_data", len(tp.DoubleData), dt == Double},
		{"uint64_data", len(tp.Uint64Data), dt == Uint32 || dt == Uint64},
		{"string_data", len(tp.StringData), dt == String},
	} {
		if c.l == 0 {
			continue
		}
		if !c.ok {
			return fmt.Errorf("%s tensor has %s", dt, c.name)
		}
		if field != "" {
			return fmt.Errorf("data in both %s and %s", field, c.name)
		}
		field, got = c.name, c.l
	}
	if got != n {
		if field == "" {
			field = "the tensor"
		}
		return fmt.Errorf("dims %v need %d elements, %s has %d", tp.Dims, n, field, got)
	}
	switch dt {
	case Float:
		t.Floats = tp.FloatData
	case Double:
		t.Floats = make([]float32, n)
		for i, v := range tp.DoubleData {
			t.Floats[i] = float32(v)
		}
	case Float16, BFloat16:
		t.Floats = make([]float32, n)
		for i, v := range tp.Int32Data {
			if dt == Float16 {
				t.Floats[i] = float16ToFloat32(uint16(v))
			} else {
				t.Floats[i] = math.Float32frombits(uint32(uint16(v)) << 16)
			}
		}
	case Int64:
		t.Ints = tp.Int64Data
	case Uint32, Uint64:
		t.Ints = make([]int64, n)
		for i, v := range tp.Uint64Data {
			if dt == Uint32 {
				v = uint64(uint32(v))
			}
			t.Ints[i] = int64(v)
		}
	case String:
		t.Strings = make([]string, n)
		for i, s := range tp.StringData {
			t.Strings[i] = string(s)
		}
	default: // the int32_data types, each value cut to its type as raw_data would
		t.Ints = make([]int64, n)
		for i, v := range tp.Int32Data {
			switch dt {
			case Int16:
				v = int32(int16(v))
			case Uint16:
				v = int32(uint16(v))
			case Int8:
				v = int32(int8(v))
			case Uint8:
				v = int32(uint8(v))
			case Bool:
				if v != 0 {
					v = 1
				}
			}
			t.Ints[i] = int64(v)
		}
	}
	if n == 0 {
		// An empty tensor holds an empty, not a nil, slice, whichever field it came from.
		switch {
		case dt.IsFloat():
			t.Floats = []float32{}
		case dt == String:
			t.Strings = []string{}
		default:
			t.Ints = []int64{}
		}
	}
	return nil
}

// decodeRaw fills t from little-endian raw bytes holding n elements of type dt. Float32
// and int64 data are reinterpreted in place where the host and the alignment allow, so
// the only copy of a large weight is the one the protobuf decoder made.
func decodeRaw(t *Tensor, dt DataType, raw []byte, n int) {
	le := hostLittleEndian()
	switch dt {
	case Float:
		if n == 0 {
			t.Floats = []float32{}
			return
		}
		if le && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
			t.Floats = unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n)
			return
		}
		t.Floats = make([]float32, n)
		for i := range t.Floats {
			t.Floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case Double:
		t.Floats = make([]float32, n)
		for i := range t.Floats {
			t.Floats[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case Float16:
		t.Floats = make([]float32, n)
		for i := range t.Floats {
			t.Floats[i] = float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BFloat16:
		t.Floats = make([]float32, n)
		for i := range t.Floats {
			t.Floats[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case Int64, Uint64:
		if n == 0 {
			t.Ints = []int64{}
			return
		}
		if le && uintptr(unsafe.Pointer(&raw[0]))%8 == 0 {
			t.Ints = unsafe.Slice((*int64)(unsafe.Pointer(&raw[0])), n)
			return
		}
		t.Ints = make([]int64, n)
		for i := range t.Ints {
			t.Ints[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	default:
		t.Ints = make([]int64, n)
		for i := range t.Ints {
			switch dt {
			case Int32:
				t.Ints[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			case Uint32:
				t.Ints[i] = int64(binary.LittleEndian.Uint32(raw[4*i:]))
			case Int16:
				t.Ints[i] = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
			case Uint16:
				t.Ints[i] = int64(binary.LittleEndian.Uint16(raw[2*i:]))
			case Int8:
				t.Ints[i] = int64(int8(raw[i]))
			case Uint8:
				t.Ints[i] = int64(raw[i])
			case Bool:
				if raw[i] != 0 {
					t.Ints[i] = 1
				}
			}
		}
	}
}

// externalData reads the bytes of a tensor stored outside the model file. size is the
// number of bytes the tensor's dims and type call for.
func (d *decoder) externalData(tp *onnxpb.TensorProto, size int) ([]byte, error) {
	var location string
	offset, length := int64(0), int64(-1)
	for _, e := range tp.ExternalData {
		if e == nil {
			continue
		}
		switch e.Key {
		case "location":
			location = e.Value
		case "offset", "length":
			v, err := strconv.ParseInt(e.Value, 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("external data: bad %s %q", e.Key, e.Value)
			}
			if e.Key == "offset" {
				offset = v
			} else {
				length = v
			}
		}
	}
	if location == "" {
		return nil, fmt.Errorf("external data without a location")
	}
	local := filepath.FromSlash(location)
	if !filepath.IsLocal(local) {
		return nil, fmt.Errorf("external data location %q must be a relative path inside the model's folder", location)
	}
	if d.baseDir == "" {
		return nil, fmt.Errorf("external data %q: no base folder to resolve it in", location)
	}
	if length >= 0 && length != int64(size) {
		return nil, fmt.Errorf("external data %q: length %d, but the tensor needs %d bytes", location, length, size)
	}
	path := filepath.Join(d.baseDir, local)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data: %w", err)
	}
	if offset > fi.Size() || fi.Size()-offset < int64(size) {
		return nil, fmt.Errorf("external data %q: needs %d bytes at offset %d, the file has %d bytes",
			location, size, offset, fi.Size())
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, offset); err != nil && !(err == io.EOF && size == 0) {
		return nil, fmt.Errorf("external data %q: %w", location, err)
	}
	return buf, nil
}

// float16ToFloat32 converts IEEE 754 half-precision bits to float32, exactly.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: mant * 2^-24, exact in float32.
	f := float32(mant) / (1 << 24)
	if sign != 0 {
		f = -f
	}
	return f
}

// rawBytes returns the little-endian raw_data encoding of t, sharing memory with
// t.Floats or t.Ints where the host allows.
func rawBytes(t *Tensor) ([]byte, error) {
	n, err := countElements(t.Dims)
	if err != nil {
		return nil, err
	}
	le := hostLittleEndian()
	switch {
	case t.DataType.IsFloat():
		if len(t.Floats) != n {
			return nil, fmt.Errorf("dims %v need %d elements, Floats has %d", t.Dims, n, len(t.Floats))
		}
		if n == 0 {
			return []byte{}, nil
		}
		if le {
			return unsafe.Slice((*byte)(unsafe.Pointer(&t.Floats[0])), 4*n), nil
		}
		b := make([]byte, 4*n)
		for i, v := range t.Floats {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case t.DataType.IsInt():
		if len(t.Ints) != n {
			return nil, fmt.Errorf("dims %v need %d elements, Ints has %d", t.Dims, n, len(t.Ints))
		}
		size := elemSize(t.DataType)
		if n == 0 {
			return []byte{}, nil
		}
		if size == 8 && le {
			return unsafe.Slice((*byte)(unsafe.Pointer(&t.Ints[0])), 8*n), nil
		}
		b := make([]byte, size*n)
		for i, v := range t.Ints {
			switch size {
			case 8:
				binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
			case 4:
				binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
			case 2:
				binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
			case 1:
				if t.DataType == Bool && v != 0 {
					v = 1
				}
				b[i] = byte(v)
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("data type %s cannot be written as raw data", t.DataType)
}
