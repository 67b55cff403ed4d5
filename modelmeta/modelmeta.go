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
	Task       = "toolkit.task"       // "multilabel" for a multi-label model; absent: one class per image
	Thresholds = "toolkit.thresholds" // JSON list of a multi-label model's thresholds, one per label, on its sigmoid probabilities
)

// TaskMultilabel is the Task of a multi-label model: its outputs are logits whose
// sigmoids are each label's probability, a label predicted where its probability
// reaches its threshold.
const TaskMultilabel = "multilabel"

// Meta is the toolkit's metadata of a model; a nil or empty field is absent.
type Meta struct {
	Classes    []string
	Preprocess *dataset.Preprocess
	Recipe     []byte
	// Task is TaskMultilabel or "" (a single-label classifier: softmax over the
	// classes); Thresholds are a multi-label model's.
	Task       string
	Thresholds []float64
}

// Set replaces the toolkit's entries of m's metadata with those of meta, after the
// model's other entries, in the order classes, preprocessing, recipe, task, thresholds.
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
	if meta.Task != "" {
		entries = append(entries, onnx.MetadataEntry{Key: Task, Value: meta.Task})
	}
	if meta.Thresholds != nil {
		raw, err := json.Marshal(meta.Thresholds)
		if err != nil {
			return fmt.Errorf("metadata %s: %w", Thresholds, err)
		}
		entries = append(entries, onnx.MetadataEntry{Key: Thresholds, Value: string(raw)})
	}
	keep := slices.DeleteFunc(slices.Clone(m.Metadata), func(e onnx.MetadataEntry) bool {
		return slices.Contains([]string{Classes, Preprocess, Recipe, Task, Thresholds}, e.Key)
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
		case Task:
			if e.Value != TaskMultilabel {
				return Meta{}, fmt.Errorf("metadata %s: unknown task %q (valid: %s)", Task, e.Value, TaskMultilabel)
			}
			meta.Task = e.Value
		case Thresholds:
			if err := json.Unmarshal([]byte(e.Value), &meta.Thresholds); err != nil {
				return Meta{}, fmt.Errorf("metadata %s: %w", Thresholds, err)
			}
		}
	}
	if meta.Thresholds != nil && meta.Classes != nil && len(meta.Thresholds) != len(meta.Classes) {
		return Meta{}, fmt.Errorf("metadata %s: %d thresholds for %d labels", Thresholds, len(meta.Thresholds), len(meta.Classes))
	}
	return meta, nil
}
