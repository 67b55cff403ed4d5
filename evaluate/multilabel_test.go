package evaluate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/dataset"
	"toolkit/finetune"
	"toolkit/internal/pairgen"
	"toolkit/internal/testref"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// multiModel fine-tunes the demo base's head for a multi-label set of item pairs
// (package pairgen, 32 px) and returns the model file, the test CSV and the trainer's
// own test figures.
func multiModel(t *testing.T) (model, test string, res *finetune.Result) {
	t.Helper()
	dir := t.TempDir()
	splits := []pairgen.Split{{Name: "train", Source: "../data/fmnist-5to9/train", Images: 300}, {Name: "test", Source: "../data/fmnist-5to9/test", Images: 150}}
	if err := pairgen.Write(dir, splits, 32, 3); err != nil {
		t.Fatal(err)
	}
	cfg, err := finetune.LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Head.Task = finetune.TaskMultilabel
	cfg.Data.Format, cfg.Data.Augment = "csv", finetune.AugmentConfig{}
	cfg.Data.Train, cfg.Data.Test, cfg.Data.ValSplit = filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv"), 0.2
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 2
	cfg.Output.Dir = filepath.Join(dir, "run")
	tr, err := finetune.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(cfg.Output.Dir, finetune.RunModel), cfg.Data.Test, res
}

// TestMultiLabel evaluates a multi-label model on its test CSV: the loss and mAP are
// the trainer's own, the thresholds the model's metadata; the mAP, each label's
// average precision, precision and recall, the micro and macro F1 at the thresholds
// and the loss are scikit-learn's on the model's probabilities; predict lists exactly
// the labels at or above their thresholds; and the single-label options are refused.
func TestMultiLabel(t *testing.T) {
	model, test, res := multiModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Read(model)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := modelmeta.Get(m)
	if !c.MultiLabel || !slices.Equal(c.Thresholds, meta.Thresholds) || len(c.Thresholds) != 5 || len(c.Notes) != 0 {
		t.Fatalf("classifier: multi-label %v, thresholds %v (metadata %v), notes %v", c.MultiLabel, c.Thresholds, meta.Thresholds, c.Notes)
	}
	r, err := EvaluateCSV(context.Background(), c, test, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Images != 150 || math.Abs(r.Loss-res.TestLoss) > 1e-5 || math.Abs(r.MAP-res.TestMAP) > 1e-6 {
		t.Errorf("evaluate: %d images, loss %v, mAP %v; the trainer: loss %v, mAP %v", r.Images, r.Loss, r.MAP, res.TestLoss, res.TestMAP)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "mAP") || !strings.Contains(text.String(), "8_bag") {
		t.Errorf("report text: %v\n%s", err, text.String())
	}

	// scikit-learn on the model's probabilities of the test images.
	src, err := dataset.OpenCSV(test, dataset.CSVOptions{MultiLabel: true, Options: dataset.Options{Classes: c.Classes}})
	if err != nil {
		t.Fatal(err)
	}
	k := len(c.Classes)
	l, err := dataset.NewLoader(src, dataset.LoaderOptions{BatchSize: src.Len(), Preprocess: c.Preprocess})
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Logits     []float32 `json:"logits"`
		Y          []int     `json:"y"`
		K          int       `json:"k"`
		Thresholds []float64 `json:"thresholds"`
	}
	in.K, in.Thresholds = k, c.Thresholds
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		logits, err := c.Logits(b.Images, b.N)
		if err != nil {
			t.Fatal(err)
		}
		in.Logits = slices.Clone(logits)
		for i := range b.N {
			row := make([]int, k)
			for _, j := range src.LabelSet(b.Indices[i]) {
				row[j] = 1
			}
			in.Y = append(in.Y, row...)
		}
	}
	const script = `
import json, sys
import numpy as np
from sklearn import metrics
c = json.load(open(sys.argv[1]))
k = c["k"]
z = np.array(c["logits"], dtype=np.float64).reshape(-1, k)
y = np.array(c["y"]).reshape(-1, k)
p = 1 / (1 + np.exp(-z))
pred = (p >= np.array(c["thresholds"])).astype(int)
print(json.dumps({
  "map": metrics.average_precision_score(y, p, average="macro"),
  "ap": metrics.average_precision_score(y, p, average=None).tolist(),
  "micro_f1": metrics.f1_score(y, pred, average="micro", zero_division=0),
  "macro_f1": metrics.f1_score(y, pred, average="macro", zero_division=0),
  "precision": metrics.precision_score(y, pred, average=None, zero_division=0).tolist(),
  "recall": metrics.recall_score(y, pred, average=None, zero_division=0).tolist(),
  "loss": metrics.log_loss(y.reshape(-1), p.reshape(-1), labels=[0, 1]),
  "accuracy": float((pred == y).mean()),
}))
`
	py := "/usr/bin/python3"
	raw, _ := json.Marshal(in)
	inPath := filepath.Join(t.TempDir(), "in.json")
	os.WriteFile(inPath, raw, 0o644)
	out, err := exec.Command(py, "-c", script, inPath).Output()
	if err != nil {
		testref.Missing(t, "scikit-learn for /usr/bin/python3 (Debian python3-sklearn): %v", err)
	}
	var ref struct {
		MAP       float64   `json:"map"`
		AP        []float64 `json:"ap"`
		MicroF1   float64   `json:"micro_f1"`
		MacroF1   float64   `json:"macro_f1"`
		Precision []float64 `json:"precision"`
		Recall    []float64 `json:"recall"`
		Loss      float64   `json:"loss"`
		Accuracy  float64   `json:"accuracy"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s: %.12g, scikit-learn %.12g", what, got, want)
		}
	}
	near("mAP", r.MAP, ref.MAP, 1e-12)
	near("micro F1", r.MicroF1, ref.MicroF1, 1e-12)
	near("macro F1", r.MacroF1, ref.MacroF1, 1e-12)
	near("accuracy", r.Accuracy, ref.Accuracy, 1e-12)
	near("loss", r.Loss, ref.Loss, 1e-6)
	for j, lm := range r.PerLabel {
		if lm.AP == nil {
			t.Fatalf("label %s: no AP", lm.Label)
		}
		near(lm.Label+" AP", *lm.AP, ref.AP[j], 1e-12)
		near(lm.Label+" precision", lm.Precision, ref.Precision[j], 1e-12)
		near(lm.Label+" recall", lm.Recall, ref.Recall[j], 1e-12)
	}
	if r.MicroF1 == r.MacroF1 || ref.Precision[0] == ref.Recall[0] {
		t.Errorf("the model's scores do not tell the figures apart: the check is weak")
	}

	// predict: every label at or above its threshold, most probable first.
	files := []string{filepath.Join(filepath.Dir(test), "test", "00000.png"), filepath.Join(filepath.Dir(test), "test", "00001.png")}
	preds, err := Predict(context.Background(), c, files, 1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds.Predictions {
		probs := c.Probabilities(in.Logits[i*k : (i+1)*k])
		var want []string
		for j, pr := range probs {
			if pr >= c.Thresholds[j] {
				want = append(want, c.Classes[j])
			}
		}
		var got []string
		for n, s := range p.Top {
			got = append(got, s.Class)
			if n > 0 && s.Probability > p.Top[n-1].Probability {
				t.Errorf("%s: labels not by decreasing probability: %+v", p.File, p.Top)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: predicted %v, want the labels above their thresholds %v (probabilities %v)", p.File, got, want, probs)
		}
	}
	if _, err := EvaluateCSV(context.Background(), c, test, Options{TopLosses: 3}); err == nil || !strings.Contains(err.Error(), "single-label") {
		t.Errorf("--top-losses on a multi-label model: %v", err)
	}
}
