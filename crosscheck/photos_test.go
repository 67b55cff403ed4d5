package crosscheck

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
// With "tta", each file gives ten inputs in a row: the centre crop and the crops at the
// four corners of the resized picture (top-left, top-right, bottom-left, bottom-right),
// each followed by its horizontal flip.
const evalTransformScript = `
import sys, json, numpy as np, torch
from PIL import Image, ImageOps
import torchvision.transforms as T
import torchvision.transforms.functional as TF
job = json.load(open(sys.argv[1]))
s = job['size']
resize = T.Resize(int(s / job['crop_pct']))
norm = T.Compose([T.ToTensor(), T.Normalize(job['mean'], job['std'])])
xs = []
for f in job['files']:
    im = resize(ImageOps.exif_transpose(Image.open(f)).convert('RGB'))
    if not job.get('tta'):
        xs.append(norm(TF.center_crop(im, s)))
        continue
    w, h = im.size
    for crop in [TF.center_crop(im, s), TF.crop(im, 0, 0, s, s), TF.crop(im, 0, w - s, s, s),
                 TF.crop(im, h - s, 0, s, s), TF.crop(im, h - s, w - s, s, s)]:
        xs.append(norm(crop))
        xs.append(norm(TF.hflip(crop)))
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

	// Test-time augmentation: predict --tta against the mean of ONNX Runtime's
	// probabilities on torchvision's ten views of each photo.
	ttaRes, err := evaluate.Predict(context.Background(), c, []string{filepath.Join(data, "test")}, k, evaluate.Options{TTA: true})
	if err != nil {
		t.Fatal(err)
	}
	ttaIn := filepath.Join(dir, "tta.npy")
	writeJSONAndRun(t, python, evalTransformScript, map[string]any{
		"files": files, "size": cfg.Model.Input.Height, "crop_pct": pre.CropPct, "tta": true,
		"mean": []float64{pre.Mean[0], pre.Mean[0], pre.Mean[0]}, "std": []float64{pre.Std[0], pre.Std[0], pre.Std[0]}, "out": ttaIn,
	})
	ttaJob := ortJob{model: model, in: ttaIn, out: filepath.Join(dir, "ort-tta.npy")}
	ttaLogits := readORT(t, ttaJob, runORT(t, []ortJob{ttaJob}))
	worstP = 0
	for i, p := range ttaRes.Predictions {
		mean := make([]float64, k)
		for v := range 10 {
			for j, q := range evaluate.Probabilities(ttaLogits.Data[(10*i+v)*k : (10*i+v+1)*k]) {
				mean[j] += q / 10
			}
		}
		for _, s := range p.Top {
			worstP = max(worstP, math.Abs(s.Probability-mean[s.Index]))
		}
	}
	t.Logf("TTA: largest probability difference %.2g", worstP)
	if worstP > 1e-4 {
		t.Errorf("TTA probabilities differ by up to %.3g (want 1e-4)", worstP)
	}

	// The top losses: the images with the highest cross-entropy under ONNX Runtime's
	// logits of the plain views, with those losses.
	rep, err := evaluate.EvaluateFolder(context.Background(), c, filepath.Join(data, "test"), evaluate.Options{TopLosses: 5})
	if err != nil {
		t.Fatal(err)
	}
	type fileLoss struct {
		file string
		loss float64
	}
	var ref []fileLoss
	for i, f := range files {
		row := logits.Data[i*k : (i+1)*k]
		y := slices.Index(c.Classes, filepath.Base(filepath.Dir(f)))
		ref = append(ref, fileLoss{f, -math.Log(evaluate.Probabilities(row)[y])})
	}
	slices.SortStableFunc(ref, func(a, b fileLoss) int { return cmp.Compare(b.loss, a.loss) })
	if len(rep.TopLosses) != 5 {
		t.Fatalf("%d top losses, want 5", len(rep.TopLosses))
	}
	for i, tl := range rep.TopLosses {
		if tl.File != ref[i].file || math.Abs(tl.Loss-ref[i].loss) > 1e-4 {
			t.Errorf("top loss %d: %s %.5f, ONNX Runtime's %s %.5f", i+1, tl.File, tl.Loss, ref[i].file, ref[i].loss)
		}
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
