package finetune

import (
	"fmt"
	"math"

	"go.yaml.in/yaml/v3"

	"toolkit/internal/jsonschema"
	"toolkit/internal/yamlnode"
)

// The validation metrics a run can monitor (output.best), and the direction each
// improves in unless the recipe says otherwise.
var monitorModes = map[string]string{"val_loss": "min", "val_acc": "max", "val_macro_f1": "max", "val_map": "max"}

// monitorMetrics lists the metrics in the order the documentation gives them.
var monitorMetrics = []string{"val_loss", "val_acc", "val_macro_f1", "val_map"}

// MonitorConfig is output.best: the validation metric the run monitors (best.onnx, early
// stopping, schedule: plateau), as Keras' callbacks take monitor and mode. In YAML, the
// metric's name (its mode the metric's own: min for val_loss, max for the others) or
// {metric, mode}.
type MonitorConfig struct {
	// Metric is the metric: val_loss, val_acc, val_macro_f1 or val_map (head.task: multilabel).
	Metric string `yaml:"metric" enum:"val_loss,val_acc,val_macro_f1,val_map"`
	// Mode says whether lower (min) or higher (max) is better; default: the metric's.
	Mode string `yaml:"mode" enum:"min,max"`
}

// Monitor returns output.best for a metric with its own mode.
func Monitor(metric string) MonitorConfig {
	return MonitorConfig{Metric: metric, Mode: monitorModes[metric]}
}

// plainMonitor is MonitorConfig without its YAML methods: its mapping form.
type plainMonitor MonitorConfig

// UnmarshalYAML reads a metric's name or {metric, mode}.
func (m *MonitorConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		if _, ok := monitorModes[n.Value]; !ok {
			return yamlnode.Errorf(n, "unknown %q; valid: val_loss, val_acc, val_macro_f1, val_map, or {metric, mode}", n.Value)
		}
		*m = Monitor(n.Value)
	case n.Kind == yaml.MappingNode:
		var p plainMonitor
		if err := yamlnode.Decode(n, &p); err != nil {
			return err
		}
		if p.Metric == "" {
			return yamlnode.Errorf(n, "metric: missing; want val_loss, val_acc, val_macro_f1 or val_map")
		}
		if p.Mode == "" {
			p.Mode = monitorModes[p.Metric]
		}
		*m = MonitorConfig(p)
	default:
		return yamlnode.Errorf(n, "%s; want a metric (val_loss, val_acc, val_macro_f1, val_map) or {metric, mode}", yamlnode.Describe(n))
	}
	return nil
}

// MarshalYAML writes the metric's name when the mode is its own, else the mapping.
func (m MonitorConfig) MarshalYAML() (any, error) {
	if m.Mode == monitorModes[m.Metric] {
		return m.Metric, nil
	}
	return plainMonitor(m), nil
}

// MarshalJSON writes the recipe's form as JSON.
func (m MonitorConfig) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(m) }

// UnmarshalJSON reads what MarshalJSON writes.
func (m *MonitorConfig) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, m) }

// JSONSchema describes the name and the mapping.
func (MonitorConfig) JSONSchema() *jsonschema.Schema {
	docs := []string{"the validation loss, lowest best (Keras' default)", "the validation accuracy, highest best",
		"the validation macro-F1, highest best", "the validation mean average precision (head.task: multilabel), highest best"}
	return &jsonschema.Schema{
		Default: "val_loss",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Enum: jsonschema.Strings(monitorMetrics...), EnumDescriptions: docs},
			{Type: "object", Description: "the metric and whether lower (min) or higher (max) is better"},
		},
	}
}

// check checks the monitored metric against the task, returning the key at fault.
func (m MonitorConfig) check(task string) (string, error) {
	if _, ok := monitorModes[m.Metric]; !ok {
		return "output.best", fmt.Errorf("unknown %q; valid: val_loss, val_acc, val_macro_f1, val_map", m.Metric)
	}
	if m.Mode != "min" && m.Mode != "max" {
		return "output.best.mode", fmt.Errorf("unknown %q; valid: min, max", m.Mode)
	}
	if m.Metric == "val_map" && task != TaskMultilabel {
		return "output.best", fmt.Errorf("val_map is a multi-label task's (head.task: multilabel); a single-label run monitors val_loss, val_acc or val_macro_f1")
	}
	return "", nil
}

// value returns the monitored metric of an epoch (false before validation).
func (m MonitorConfig) value(e *EpochMetrics) (float64, bool) {
	var v *float64
	switch m.Metric {
	case "val_loss":
		v = e.ValLoss
	case "val_acc":
		v = e.ValAcc
	case "val_macro_f1":
		v = e.ValMacroF1
	case "val_map":
		v = e.ValMAP
	}
	if v == nil {
		return 0, false
	}
	return *v, true
}

// better says whether a is better than b by more than delta.
func (m MonitorConfig) better(a, b, delta float64) bool {
	if m.Mode == "max" {
		return a > b+delta
	}
	return a < b-delta
}

// worst is the value any first epoch improves on.
func (m MonitorConfig) worst() float64 {
	if m.Mode == "max" {
		return math.Inf(-1)
	}
	return math.Inf(1)
}
