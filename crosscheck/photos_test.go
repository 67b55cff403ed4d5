package crosscheck

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"toolkit/evaluate"
	"toolkit/finetune"
	"toolkit/internal/photogen"
	"toolkit/internal/testref"
)

// evalTransformScript writes torchvision's evaluation transform of image files as one
// float32 N x 3 x H x W .npy: Pillow opens each file, applies its EXIF orientation
// (ImageOps.exif_transpose) and converts it to RGB; then Resize(int(size / crop_pct)),
// CenterCrop(size), ToTensor and Normalize, as a PyTorch user evaluates an ImageNet model.
const evalTransformScript = `
import sys, json, numpy as np, torch
from PIL import Image, ImageOps
import torchvision.transforms as T
job = json.load(open(sys.argv[1]))
tf = T.Compose([T.Resize(int(job['size'] / job['crop_pct'])), T.CenterCrop(job['size']), T.ToTensor(),
                T.Normalize(job['mean'], job['std'])])
xs = [tf(ImageOps.exif_transpose(Image.open(f)).convert('RGB')) for f in job['files']]
x = torch.stack(xs).numpy().astype('<f4')
with open(job['out'], 'wb') as f:
    np.save(f, x)
`

// TestPhotosExampleAgreesWithTorchvisionAndORT runs examples/photos reduced (a small
// photo set, one epoch per stage: this is the example's CI run), then classifies the test
// photos with evaluate.Predict, which decodes and prepares them with the toolkit's own
// decoder and resize, and compares with ONNX Runtime fed torchvision's evaluation
// transform of the same files: the same probabilities (within 1e-4) and classes.
func TestPhotosExampleAgreesWithTorchvisionAndORT(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import torchvision, PIL").Run(); err != nil {
		testref.Missing(t, "torchvision and Pillow for %s (Debian: apt-get install python3-torchvision)", python)
	}
	ortRunner(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "photos")
	if err := photogen.Write(data, []photogen.Split{{Name: "train", PerClass: 6}, {Name: "val", PerClass: 2}, {Name: "test", PerClass: 4}}, 3); err != nil {
		t.Fatal(err)
	}
	cfg, err := finetune.LoadConfig("../examples/photos/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data.Train, cfg.Data.Val, cfg.Data.Test = filepath.Join(data, "train"), filepath.Join(data, "val"), filepath.Join(data, "test")
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	cfg.Output.Dir = filepath.Join(dir, "run")
	tr, err := finetune.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(tr.Skipped()); got != 1 {
		t.Errorf("%d files skipped, want the one truncated file", got)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(cfg.Output.Dir, finetune.RunModel)

	c, err := evaluate.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	res, err := evaluate.Predict(context.Background(), c, []string{filepath.Join(data, "test")}, len(c.Classes), evaluate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range res.Predictions {
		files = append(files, p.File)
	}
	pre := cfg.Data.Preprocess
	npyIn := filepath.Join(dir, "torchvision.npy")
	writeJSONAndRun(t, python, evalTransformScript, map[string]any{
		"files": files, "size": cfg.Model.Input.Height, "crop_pct": pre.CropPct,
		"mean": []float64{pre.Mean[0], pre.Mean[0], pre.Mean[0]}, "std": []float64{pre.Std[0], pre.Std[0], pre.Std[0]}, "out": npyIn,
	})
	job := ortJob{model: model, in: npyIn, out: filepath.Join(dir, "ort.npy")}
	logits := readORT(t, job, runORT(t, []ortJob{job}))
	k := len(c.Classes)
	var worstP float64
	for i, p := range res.Predictions {
		probs := evaluate.Probabilities(logits.Data[i*k : (i+1)*k])
		best := 0
		for j := range probs {
			if probs[j] > probs[best] {
				best = j
			}
		}
		if p.Top[0].Index != best {
			t.Errorf("%s: the toolkit predicts %s, ONNX Runtime on torchvision's transform %s", p.File, p.Top[0].Class, c.Classes[best])
		}
		for _, s := range p.Top {
			worstP = max(worstP, math.Abs(s.Probability-probs[s.Index]))
		}
	}
	t.Logf("%d test photos: largest probability difference %.2g", len(res.Predictions), worstP)
	if worstP > 1e-4 {
		t.Errorf("probabilities differ by up to %.3g (want 1e-4)", worstP)
	}
}

func writeJSONAndRun(t *testing.T, python, script string, job map[string]any) {
	t.Helper()
	dir := t.TempDir()
	jobPath := filepath.Join(dir, "job.json")
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jobPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	scriptPath := filepath.Join(dir, "script.py")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, scriptPath, jobPath).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", scriptPath, err, out)
	}
}
