package finetune

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"toolkit/headbuilder"
	"toolkit/models"
	"toolkit/onnx"
)

// StarterConfig writes a commented starter recipe for a headless base model: its input
// size, automatic layer groups (and the presets that fit, in a comment), a head, and
// the two stages of the ULMFiT recipe (the head with the base frozen, then everything
// with rates falling by 2.6 per group). pool is the head's pooling (flatten, avg or
// max): the one the original classifier used (onnx.FindHead's Head.Pool, a token
// pooling becoming flatten), or, when empty, avg for a base that ends in a feature
// map and flatten for one that ends in [N features].
func StarterConfig(modelPath string, m *onnx.Model, pool string) ([]byte, error) {
	inputs := m.Graph.RealInputs()
	if len(inputs) != 1 {
		return nil, fmt.Errorf("starter config: the model has %d inputs; fine-tuning takes one image input", len(inputs))
	}
	vi := inputs[0]
	c, h, w := int64(3), int64(224), int64(224)
	if len(vi.Shape) == 4 {
		if vi.Shape[1].Value > 0 {
			c = vi.Shape[1].Value
		}
		if vi.Shape[2].Value > 0 && vi.Shape[3].Value > 0 {
			h, w = vi.Shape[2].Value, vi.Shape[3].Value
		}
	}
	mode, note := "torch", "PyTorch export: ImageNet mean and std on 0-1 pixels"
	switch p := strings.ToLower(m.ProducerName); {
	case strings.Contains(p, "tf2onnx"), strings.Contains(p, "keras"):
		mode, note = "caffe", "Keras applications (VGG16/19, ResNet50): BGR, mean subtracted on 0-255 pixels"
	case p == "":
		note = "the producer is unknown: check how the base was trained"
	}
	var blocks []string
	for _, b := range onnx.Blocks(m) {
		if b.Name != "classifier" && len(b.Params) > 0 {
			blocks = append(blocks, b.Name)
		}
	}
	switch pool {
	case onnx.PoolToken:
		pool = headbuilder.PoolFlatten
	case "":
		pool = headbuilder.PoolAvg
		if out := m.Graph.Outputs; len(out) == 1 && out[0].HasShape && len(out[0].Shape) == 2 {
			pool = headbuilder.PoolFlatten
		}
	}
	presets := ""
	if names := models.MatchingPresets(m); len(names) > 0 {
		presets = "; or the preset " + strings.Join(names, " or ")
	}
	data := map[string]any{
		"Model": modelPath, "C": c, "H": h, "W": w, "Mode": mode, "Note": note, "Pool": pool,
		"Producer": m.ProducerName, "Groups": strings.Join(append(blocks, HeadGroup), ", "), "Presets": presets,
	}
	var buf bytes.Buffer
	if err := starterTemplate.Execute(&buf, data); err != nil {
		return nil, err
	}
	if _, err := ParseConfig(buf.Bytes(), "starter config"); err != nil {
		return nil, fmt.Errorf("starter config does not parse: %w", err)
	}
	return buf.Bytes(), nil
}

var starterTemplate = template.Must(template.New("config").Parse(`# Fine-tuning recipe written by "toolkit import". Edit the data paths and head.classes,
# then run: toolkit finetune -c this-file.yaml
seed: 42
model:
  onnx: {{.Model}}
  cut_at: ""                  # a node or tensor to cut at; empty: the graph's output
  input: {channels: {{.C}}, height: {{.H}}, width: {{.W}}}
head:
  pool: {{.Pool}}                   # flatten | avg | max
  dense: [256]                # hidden layer widths
  activation: relu
  dropout: 0.5
  classes: 2                  # CHANGE: the number of class folders in data.train
groups: auto                  # split where the resolution halves: {{.Groups}}{{.Presets}}
optimizer: {name: adam, weight_decay: 0.0}
loss: {label_smoothing: 0.0}
stages:
  # 1. the new head alone, the base frozen
  - {name: head, epochs: 3, train: [head], lr: 1e-3, schedule: onecycle}
  # 2. everything, each group below the head at the rate above divided by 2.6 (ULMFiT)
  - {name: all, epochs: 5, train: all, lr: {max: 1e-4, factor: 2.6}, schedule: stlr}
data:
  format: imagefolder         # imagefolder (one folder per class) | idx
  train: data/train           # CHANGE
  val_split: 0.1              # or val: data/val
  test: ""                    # optional: data/test
  batch_size: 32
  preprocess: {mode: {{.Mode}}}   # {{.Note}}
  augment: {hflip: true, pad_crop: 0}
output: {dir: runs/finetune}
`))
