package finetune

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"toolkit/internal/multilabel"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// ExportModel returns the fine-tuned model (base and head with the current weights, or
// with ema their moving averages) as ONNX, with the class names, preprocessing and recipe in its metadata (package modelmeta). Dropout nodes
// stay in the graph: in inference they are the identity, as ONNX defines them.
func (t *Trainer) ExportModel() (*onnx.Model, error) {
	return t.exportModel(t.exportIR(t.exportValues()))
}

// exportModel adds the metadata (package modelmeta) to an exported model.
func (t *Trainer) exportModel(m *onnx.Model) (*onnx.Model, error) {
	recipe, err := yaml.Marshal(t.cfg)
	if err != nil {
		return nil, fmt.Errorf("export: recipe: %w", err)
	}
	pre := t.data.Preprocess
	meta := modelmeta.Meta{Classes: t.data.Classes, Preprocess: &pre, Recipe: recipe}
	if t.multi {
		meta.Task, meta.Thresholds = modelmeta.TaskMultilabel, t.Thresholds()
	}
	if err := modelmeta.Set(m, meta); err != nil {
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
	if v := t.exportValues(); v != nil {
		return t.exportModel(t.exportIR(v))
	}
	return t.exportModel(t.model.ExportShared())
}

// Thresholds returns a multi-label model's threshold for each label: those tuned on the
// validation data at the last validated epoch, or of the epoch whose weights
// early_stopping.restore_best put back (0.5 each before one, or without validation
// data); nil for a single-label task.
func (t *Trainer) Thresholds() []float64 {
	if !t.multi {
		return nil
	}
	if s := t.validationState(); s != nil && s.Thresholds != nil {
		return s.Thresholds
	}
	return multilabel.Halves(t.cfg.Head.Classes)
}
