package modelmeta

import (
	"encoding/json"
	"fmt"
	"slices"

	"toolkit/dataset"
	"toolkit/onnx"
)

// The keys, in metadata_props.
const (
	Classes    = "toolkit.classes"    // JSON list of class names, in logit order
	Preprocess = "toolkit.preprocess" // JSON of the input preprocessing
	Recipe     = "toolkit.recipe"     // the fine-tuning recipe, YAML
)

// Meta is the toolkit's metadata of a model; a nil field is absent.
type Meta struct {
	Classes    []string
	Preprocess *dataset.Preprocess
	Recipe     []byte
}

// Set replaces the toolkit's entries of m's metadata with those of meta, after the
// model's other entries, in the order classes, preprocessing, recipe.
func Set(m *onnx.Model, meta Meta) error {
	var entries []onnx.MetadataEntry
	if meta.Classes != nil {
		raw, err := json.Marshal(meta.Classes)
		if err != nil {
			return fmt.Errorf("metadata %s: %w", Classes, err)
		}
		entries = append(entries, onnx.MetadataEntry{Key: Classes, Value: string(raw)})
	}
	if meta.Preprocess != nil {
		raw, err := json.Marshal(meta.Preprocess)
		if err != nil {
			return fmt.Errorf("metadata %s: %w", Preprocess, err)
		}
		entries = append(entries, onnx.MetadataEntry{Key: Preprocess, Value: string(raw)})
	}
	if meta.Recipe != nil {
		entries = append(entries, onnx.MetadataEntry{Key: Recipe, Value: string(meta.Recipe)})
	}
	keep := slices.DeleteFunc(slices.Clone(m.Metadata), func(e onnx.MetadataEntry) bool {
		return e.Key == Classes || e.Key == Preprocess || e.Key == Recipe
	})
	m.Metadata = append(keep, entries...)
	return nil
}

// Get reads the toolkit's entries of m's metadata. Errors name the key.
func Get(m *onnx.Model) (Meta, error) {
	var meta Meta
	for _, e := range m.Metadata {
		switch e.Key {
		case Classes:
			if err := json.Unmarshal([]byte(e.Value), &meta.Classes); err != nil {
				return Meta{}, fmt.Errorf("metadata %s: %w", Classes, err)
			}
			if meta.Classes == nil {
				meta.Classes = []string{}
			}
		case Preprocess:
			meta.Preprocess = &dataset.Preprocess{}
			if err := json.Unmarshal([]byte(e.Value), meta.Preprocess); err != nil {
				return Meta{}, fmt.Errorf("metadata %s: %w", Preprocess, err)
			}
		case Recipe:
			meta.Recipe = []byte(e.Value)
		}
	}
	return meta, nil
}
