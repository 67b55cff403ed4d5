package finetune

import (
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"

	"toolkit/finetune/diagnose"

	"toolkit/internal/jsonschema"
	"toolkit/internal/yamlnode"
)

// WeightsConfig is a per-class weight key (loss.class_weights, loss.pos_weight): none
// (the zero value), balanced (computed from the training data's counts), or one weight
// per class in the head's order.
type WeightsConfig struct {
	// Balanced computes the weights from the training data.
	Balanced bool
	// Weights are the weights as given (Balanced false), one per class.
	Weights []float64
}

// IsZero reports whether the key is unset: no weights.
func (w WeightsConfig) IsZero() bool { return !w.Balanced && w.Weights == nil }

const weightsWant = "want balanced or a list of weights, one per class, such as [1, 2.5]"

// UnmarshalYAML reads balanced or a list of weights (finite, at least 0, not all 0).
func (w *WeightsConfig) UnmarshalYAML(n *yaml.Node) error {
	n = yamlnode.Resolve(n)
	switch {
	case yamlnode.IsNull(n):
		*w = WeightsConfig{}
	case n.Kind == yaml.ScalarNode && n.Value == "balanced":
		*w = WeightsConfig{Balanced: true}
	case n.Kind == yaml.SequenceNode:
		var list []float64
		if err := yamlnode.Decode(n, &list); err != nil {
			return err
		}
		if err := checkWeights(list); err != nil {
			return yamlnode.Errorf(n, "%v", err)
		}
		*w = WeightsConfig{Weights: list}
	default:
		return yamlnode.Errorf(n, "%s; %s", yamlnode.Describe(n), weightsWant)
	}
	return nil
}

// checkWeights checks a list of weights on its own; its length against the classes is
// checked by lossError.
func checkWeights(list []float64) error {
	if len(list) == 0 {
		return fmt.Errorf("an empty list; %s", weightsWant)
	}
	positive := false
	for i, v := range list {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("weight %d is %v; want a finite weight >= 0", i+1, v)
		}
		positive = positive || v > 0
	}
	if !positive {
		return fmt.Errorf("every weight is 0")
	}
	return nil
}

// MarshalYAML writes balanced or the list (nothing when unset).
func (w WeightsConfig) MarshalYAML() (any, error) {
	if w.Balanced {
		return "balanced", nil
	}
	return w.Weights, nil
}

// MarshalJSON writes the recipe's form as JSON.
func (w WeightsConfig) MarshalJSON() ([]byte, error) { return yamlnode.MarshalJSON(w) }

// UnmarshalJSON reads what MarshalJSON writes.
func (w *WeightsConfig) UnmarshalJSON(b []byte) error { return yamlnode.UnmarshalJSON(b, w) }

// JSONSchema describes balanced and the list.
func (WeightsConfig) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Const: "balanced", Description: "computed from the training data's counts"},
			{Type: "array", MinItems: jsonschema.Count(1), Items: &jsonschema.Schema{Type: "number", Minimum: jsonschema.Number(0)},
				Description: "one weight per class, in the head's order (the classes sorted by name)"},
		},
	}
}

// lossError checks the loss's keys against each other and the head, returning the key
// at fault (loss.class_weights, ...) and what is wrong. ParseConfig reports it at the
// key's line.
func (c *Config) lossError() (string, error) {
	l := c.Loss
	if g := l.FocalGamma; !(g >= 0) || math.IsInf(g, 0) {
		return "loss.focal_gamma", fmt.Errorf("%v; want 0 (off) or a positive exponent, such as 2", g)
	}
	if w := l.ClassWeights.Weights; w != nil && c.Head.Classes > 0 && len(w) != c.Head.Classes {
		return "loss.class_weights", fmt.Errorf("%d weights for head.classes %d; want one per class, in the order of the classes' names", len(w), c.Head.Classes)
	}
	if w := l.PosWeight.Weights; w != nil && c.Head.Classes > 0 && len(w) != c.Head.Classes {
		return "loss.pos_weight", fmt.Errorf("%d weights for head.classes %d; want one per label, in the labels' order", len(w), c.Head.Classes)
	}
	if c.Head.Task != TaskMultilabel {
		if !l.PosWeight.IsZero() {
			return "loss.pos_weight", fmt.Errorf("for head.task: multilabel only (its binary cross-entropy); a single-label task weighs classes with loss.class_weights")
		}
		return "", nil
	}
	switch {
	case c.Data.Format != "csv":
		return "head.task", fmt.Errorf("multilabel reads its labels from a CSV: set data.format: csv (it is %s)", c.Data.Format)
	case !l.ClassWeights.IsZero():
		return "loss.class_weights", fmt.Errorf("for a single-label task; head.task: multilabel weighs each label's positives with loss.pos_weight")
	case l.LabelSmoothing != 0:
		return "loss.label_smoothing", fmt.Errorf("for a single-label task (it spreads a class's probability over the others); head.task: multilabel takes none")
	case c.Data.Sampler == "balanced":
		return "data.sampler", fmt.Errorf("balanced draws each class equally often, which labels that come together cannot be; head.task: multilabel takes shuffle (loss.pos_weight weighs rare labels)")
	}
	return "", nil
}

// balancedWeights is scikit-learn's compute_class_weight("balanced"): n / (classes x
// count) for each class, from the training labels' counts. A class without training
// images has no weight: an error naming it.
func balancedWeights(counts []int, classes []string) ([]float64, error) {
	n := 0
	var empty []string
	for i, c := range counts {
		n += c
		if c == 0 {
			empty = append(empty, classes[i])
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("no training images of %s to weigh by", strings.Join(empty, ", "))
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = float64(n) / (float64(len(counts)) * float64(c))
	}
	return out, nil
}

// classWeights returns loss.class_weights' weights (nil when unset), balanced ones from
// the training split's counts.
func classWeights(c WeightsConfig, data DataSummary) ([]float64, error) {
	switch {
	case c.Balanced:
		for _, sp := range data.Splits {
			if sp.Split == "train" {
				return balancedWeights(sp.PerClass, data.Classes)
			}
		}
		return nil, fmt.Errorf("no training data to count")
	case c.Weights != nil:
		if len(c.Weights) != len(data.Classes) {
			return nil, fmt.Errorf("%d weights for %d classes", len(c.Weights), len(data.Classes))
		}
		return c.Weights, nil
	}
	return nil, nil
}

// chanceLevel is what the diagnostics take for chance: a uniform prediction's accuracy
// and training loss, ln(C) for the cross-entropy (class weights change nothing: every
// term is ln C), (1 - 1/C)^gamma ln(C) for the focal loss.
func chanceLevel(c Config) diagnose.ChanceLevel {
	ch := diagnose.DefaultChance(c.Head.Classes)
	if g := c.Loss.FocalGamma; g > 0 {
		k := float64(c.Head.Classes)
		ch.Loss *= math.Pow(1-1/k, g)
		ch.LossText = fmt.Sprintf("(1-1/%d)^%g ln(%d) = %.3f, the focal loss of a uniform prediction", c.Head.Classes, g, c.Head.Classes, ch.Loss)
	}
	return ch
}
