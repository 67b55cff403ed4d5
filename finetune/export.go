package finetune

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"toolkit/modelmeta"
	"toolkit/onnx"
)

// ExportModel returns the fine-tuned model (base and head with the current weights) as
// ONNX, with the class names, preprocessing and recipe in its metadata (package modelmeta). Dropout nodes
// stay in the graph: in inference they are the identity, as ONNX defines them.
func (t *Trainer) ExportModel() (*onnx.Model, error) {
	return t.exportModel(t.exportIR(nil))
}

// exportModel adds the metadata (package modelmeta) to an exported model.
func (t *Trainer) exportModel(m *onnx.Model) (*onnx.Model, error) {
	recipe, err := yaml.Marshal(t.cfg)
	if err != nil {
		return nil, fmt.Errorf("export: recipe: %w", err)
	}
	pre := t.data.Preprocess
	if err := modelmeta.Set(m, modelmeta.Meta{Classes: t.data.Classes, Preprocess: &pre, Recipe: recipe}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
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
