package finetune

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"toolkit/onnx"
)

// Metadata keys the toolkit stores in an exported model's metadata_props.
const (
	MetaClasses    = "toolkit.classes"    // JSON list of class names, in logit order
	MetaPreprocess = "toolkit.preprocess" // JSON of the input preprocessing
	MetaRecipe     = "toolkit.recipe"     // the fine-tuning config, YAML
)

// ExportModel returns the fine-tuned model (base and head with the current weights) as
// ONNX, with the class names, preprocessing and recipe in its metadata. Dropout nodes
// stay in the graph: in inference they are the identity, as ONNX defines them.
func (t *Trainer) ExportModel() (*onnx.Model, error) {
	return t.exportModel(t.exportIR(nil))
}

// exportModel adds the metadata to an exported model.
func (t *Trainer) exportModel(m *onnx.Model) (*onnx.Model, error) {
	classes, err := json.Marshal(t.data.Classes)
	if err != nil {
		return nil, err
	}
	pre, err := json.Marshal(t.data.Preprocess)
	if err != nil {
		return nil, err
	}
	recipe, err := yaml.Marshal(t.cfg)
	if err != nil {
		return nil, fmt.Errorf("export: recipe: %w", err)
	}
	var meta []onnx.MetadataEntry
	for _, e := range m.Metadata {
		if e.Key != MetaClasses && e.Key != MetaPreprocess && e.Key != MetaRecipe {
			meta = append(meta, e)
		}
	}
	m.Metadata = append(meta,
		onnx.MetadataEntry{Key: MetaClasses, Value: string(classes)},
		onnx.MetadataEntry{Key: MetaPreprocess, Value: string(pre)},
		onnx.MetadataEntry{Key: MetaRecipe, Value: string(recipe)},
	)
	return m, nil
}

// SaveModel writes the fine-tuned model to path (through a temporary file).
func (t *Trainer) SaveModel(path string) error {
	m, err := t.liveModel()
	if err != nil {
		return err
	}
	return onnx.Write(path, m)
}

// liveModel is the model as SaveModel writes it, sharing the live weights instead of
// copying them: to be written before they change.
func (t *Trainer) liveModel() (*onnx.Model, error) {
	return t.exportModel(t.model.ExportShared())
}
