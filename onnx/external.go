package onnx

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"toolkit/onnx/onnxpb"
)

// ExternalFile is a file of external data beside a model: the raw little-endian bytes
// of the named initializers, one after another in the order given, as the ONNX
// external-data convention lays them out (data_location EXTERNAL, with the file's
// location, the tensor's offset in it and its length).
type ExternalFile struct {
	Location string   // relative to the model's folder, slash-separated
	Tensors  []string // initializer names
}

// WriteToExternal writes m to w as WriteTo does, except that every initializer an
// ExternalFile lists refers to its data in that file instead of holding it.
// WriteExternalData writes the files; Read resolves them against the model's folder.
// A tensor named twice, a name no initializer has, a string tensor and a location
// outside the model's folder are errors.
func WriteToExternal(w io.Writer, m *Model, files []ExternalFile) error {
	if m == nil || m.Graph == nil {
		return errors.New("encode ONNX model: no graph")
	}
	where, err := externalPlaces(m, files)
	if err != nil {
		return fmt.Errorf("encode ONNX model: %w", err)
	}
	mp, err := modelProto(m)
	if err != nil {
		return fmt.Errorf("encode ONNX model: %w", err)
	}
	for _, tp := range mp.Graph.Initializer {
		p, ok := where[tp.GetName()]
		if !ok {
			continue
		}
		tp.RawData = nil
		tp.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		tp.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: "location", Value: p.location},
			{Key: "offset", Value: strconv.FormatInt(p.offset, 10)},
			{Key: "length", Value: strconv.FormatInt(p.length, 10)},
		}
	}
	return streamModelProto(w, mp)
}

// WriteExternalData writes the external data file f of m: its tensors' raw bytes in
// order, from where they are.
func WriteExternalData(w io.Writer, m *Model, f ExternalFile) error {
	if m == nil || m.Graph == nil {
		return errors.New("write external data: no graph")
	}
	for _, name := range f.Tensors {
		t := m.Graph.Initializer(name)
		if t == nil {
			return fmt.Errorf("write external data %s: no initializer %q", f.Location, name)
		}
		raw, err := externalBytes(t)
		if err != nil {
			return fmt.Errorf("write external data %s: %w", f.Location, err)
		}
		if _, err := w.Write(raw); err != nil {
			return fmt.Errorf("write external data %s: %w", f.Location, err)
		}
	}
	return nil
}

type externalPlace struct {
	location       string
	offset, length int64
}

// externalPlaces checks files against m and gives each listed tensor its place.
func externalPlaces(m *Model, files []ExternalFile) (map[string]externalPlace, error) {
	where := map[string]externalPlace{}
	for _, f := range files {
		if !filepath.IsLocal(filepath.FromSlash(f.Location)) {
			return nil, fmt.Errorf("external data location %q must be a relative path inside the model's folder", f.Location)
		}
		var offset int64
		for _, name := range f.Tensors {
			if _, dup := where[name]; dup {
				return nil, fmt.Errorf("tensor %q is placed in external data twice", name)
			}
			t := m.Graph.Initializer(name)
			if t == nil {
				return nil, fmt.Errorf("external data %s: no initializer %q", f.Location, name)
			}
			raw, err := externalBytes(t)
			if err != nil {
				return nil, fmt.Errorf("external data %s: %w", f.Location, err)
			}
			where[name] = externalPlace{f.Location, offset, int64(len(raw))}
			offset += int64(len(raw))
		}
	}
	return where, nil
}

// externalBytes is rawBytes for the tensors external data can hold.
func externalBytes(t *Tensor) ([]byte, error) {
	if t.DataType == String {
		return nil, fmt.Errorf("tensor %q: a STRING tensor cannot be external data", t.Name)
	}
	raw, err := rawBytes(t)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return raw, nil
}
