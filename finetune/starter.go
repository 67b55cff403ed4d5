package finetune

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"toolkit/headbuilder"
	"toolkit/internal/atomicfile"
	"toolkit/models"
	"toolkit/onnx"
)

// WriteStarterConfig writes StarterConfig's recipe to path, with the model's path
// (modelPath, as the user gave it: relative to the working folder, or absolute)
// written relative to the recipe's folder, where LoadConfig reads it from (absolute
// when the two folders are further apart than one level up). It never replaces an
// existing file (an edited recipe) unless overwrite is set: the error then wraps
// fs.ErrExist. The recipe's folder is made if missing.
func WriteStarterConfig(path, modelPath string, m *onnx.Model, pool string, overwrite bool) error {
	rel, err := pathFrom(filepath.Dir(path), modelPath)
	if err != nil {
		return fmt.Errorf("starter config: %w", err)
	}
	raw, err := StarterConfig(rel, m, pool)
	if err != nil {
		return err
	}
	write := func(f *os.File) error {
		_, err := f.Write(raw)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("starter config: %w", err)
	}
	if overwrite {
		return atomicfile.Write(path, write)
	}
	if err := atomicfile.WriteNew(path, write); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("starter config: %s already exists, and a starter recipe does not replace a recipe that may have been edited: %w", path, fs.ErrExist)
		}
		return err
	}
	return nil
}

// pathFrom returns target (relative to the working folder, or absolute) as a recipe in
// dir writes it: relative to dir when that goes up at most one folder, else absolute.
func pathFrom(dir, target string) (string, error) {
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absDir, absTarget)
	if err != nil || strings.HasPrefix(rel, ".."+string(filepath.Separator)+"..") {
		return filepath.ToSlash(absTarget), nil
	}
	return filepath.ToSlash(rel), nil
}

// StarterConfig writes a commented starter recipe for a headless base model: its input
// size, automatic layer groups (and the presets that fit, in a comment), a head, and
// the two stages of the ULMFiT recipe (the head with the base frozen, then everything
// with rates falling by 2.6 per group). modelPath is written as it is: a recipe's
// relative paths are read relative to its own folder (WriteStarterConfig makes it so).
// pool is the head's pooling (flatten, avg or max): the one the original classifier
// used (onnx.FindHead's Head.Pool, a token pooling becoming flatten), or, when empty, a
// guess from the end of the base (see starterPool); a comment in the recipe says which.
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
	pool, poolNote := starterPool(m, vi.Name, []int64{1, c, h, w}, pool)
	presets := ""
	if names := models.MatchingPresets(m); len(names) > 0 {
		presets = "; or the preset " + strings.Join(names, " or ")
	}
	data := map[string]any{
		"Model": modelPath, "C": c, "H": h, "W": w, "Mode": mode, "Note": note, "Pool": pool, "PoolNote": poolNote,
		"Photo":    h >= photoSize && w >= photoSize,
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

// smallMap is the largest feature map (height x width) a starter flattens: VGG's 7x7
// at 224 pixels.
const smallMap = 7 * 7

// starterPool returns the head's pooling for a starter recipe and the comment that says
// where it comes from. A pooling found from the original classifier (onnx.FindHead) is
// kept (a transformer's class token becoming flatten). Without one, the base's end
// decides: [N features] is flattened; a max-pool over a small map (at most 7x7), the
// end of a VGG's features, which a VGG's classifier flattens, is flattened too (the
// positions carry what the classifier read: the demo's starter reaches 92% on its test
// images with flatten, 78% with avg); anything else (a ResNet's last ReLU, an average pool, a large map)
// gets global average pooling, as most modern networks' classifiers do.
func starterPool(m *onnx.Model, input string, dims []int64, pool string) (string, string) {
	switch pool {
	case onnx.PoolToken:
		return headbuilder.PoolFlatten, "pool: flatten, as the original classifier read the class token [N D] the base ends in"
	case "":
	default:
		return pool, fmt.Sprintf("pool: %s, as the original classifier pooled the base's output", pool)
	}
	outs := m.Graph.Outputs
	if len(outs) != 1 {
		return headbuilder.PoolAvg, "pool: a guess (the base has several outputs): avg is global average pooling, flatten keeps the positions"
	}
	out := outs[0].Name
	var shape []int64
	if shapes, err := onnx.InferShapes(m, map[string][]int64{input: dims}); err == nil {
		shape = shapes.Dims[out]
	}
	if len(shape) == 0 && outs[0].HasShape {
		for _, d := range outs[0].Shape {
			shape = append(shape, d.Value)
		}
	}
	if len(shape) == 2 {
		return headbuilder.PoolFlatten, "pool: flatten, since the base ends in [N features]"
	}
	if len(shape) == 4 && shape[2] > 0 && shape[3] > 0 {
		hw := fmt.Sprintf("%dx%d", shape[2], shape[3])
		if p := m.Graph.Producer(out); p != nil && p.OpType == "MaxPool" && shape[2]*shape[3] <= smallMap {
			return headbuilder.PoolFlatten, fmt.Sprintf("pool: a guess: the base ends in a max-pool over a %s map, like a VGG's features, which its classifier flattens (avg: global average pooling)", hw)
		}
		return headbuilder.PoolAvg, fmt.Sprintf("pool: a guess: the base ends in a %s feature map; avg is global average pooling, as a ResNet's classifier does (flatten: a VGG's)", hw)
	}
	return headbuilder.PoolAvg, "pool: a guess: avg is global average pooling, as a ResNet's classifier does (flatten: a VGG's)"
}

// photoSize is the input size from which a starter recipe treats the images as photos
// (an ImageNet model's 224, 256, 299, 384, ...): they are resized as ImageNet backbones
// expect and augmented with random resized crops.
const photoSize = 96

var starterTemplate = template.Must(template.New("config").Parse(`# Fine-tuning recipe written by "toolkit import". Edit the data paths and head.classes,
# then run: toolkit finetune -c this-file.yaml
seed: 42
model:
  onnx: {{.Model}}
  cut_at: ""                  # a node or tensor to cut at; empty: the graph's output
  input: {channels: {{.C}}, height: {{.H}}, width: {{.W}}}
head:
  # {{.PoolNote}}
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
{{- if .Photo}}
  preprocess:
    mode: {{.Mode}}   # {{.Note}}
    resize: crop              # the shorter side to size/crop_pct, then the centre (Resize(256) + CenterCrop(224))
    crop_pct: 0.875           # squish: stretch to the size; pad: fit inside, black around
    interpolation: bilinear   # or bicubic
  augment:
    random_resized_crop: true # a random box of each photo resized to the input (torchvision's RandomResizedCrop)
    hflip: true
    # trivial_augment: true   # one random TrivialAugmentWide operation per image
  # toolkit preview -c this-file.yaml draws what the model will see
{{- else}}
  preprocess: {mode: {{.Mode}}}   # {{.Note}}
  augment: {hflip: true, pad_crop: 0}
{{- end}}
output: {dir: runs/finetune}
`))
