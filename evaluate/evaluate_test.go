package evaluate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"toolkit/dataset"
	"toolkit/finetune"
	"toolkit/internal/testref"
	"toolkit/modelmeta"
	"toolkit/npy"
	"toolkit/onnx"
)

var (
	trainOnce sync.Once
	trained   struct {
		model     string
		loss, acc float64
		err       error
	}
)

// demoModel fine-tunes the demo's head for one epoch (once per test binary) and returns
// the model file with the trainer's own test loss and accuracy, the reference the
// evaluation must reproduce.
func demoModel(t *testing.T) (string, float64, float64) {
	t.Helper()
	trainOnce.Do(func() {
		dir, err := os.MkdirTemp("", "toolkit-evaluate")
		if err != nil {
			trained.err = err
			return
		}
		cfg, err := finetune.LoadConfig("../config.yaml")
		if err != nil {
			trained.err = err
			return
		}
		cfg.Stages = cfg.Stages[:1]
		cfg.Stages[0].Epochs = 1
		cfg.Output.Dir = dir
		tr, err := finetune.New(*cfg, finetune.WithoutDefaultHooks())
		if err != nil {
			trained.err = err
			return
		}
		if _, err := tr.Run(context.Background()); err != nil {
			trained.err = err
			return
		}
		trained.model = filepath.Join(dir, "model.onnx")
		if trained.err = tr.SaveModel(trained.model); trained.err != nil {
			return
		}
		trained.loss, trained.acc, trained.err = tr.Evaluate(context.Background())
	})
	if trained.err != nil {
		t.Fatal(trained.err)
	}
	return trained.model, trained.loss, trained.acc
}

func TestEvaluateMatchesTheTrainer(t *testing.T) {
	model, loss, acc := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasNames || len(c.Notes) != 0 || c.Preprocess.Height != 32 || c.Preprocess.Mode != "torch" {
		t.Errorf("metadata not read: names %v (%v), preprocess %+v, notes %v", c.Classes, c.HasNames, c.Preprocess, c.Notes)
	}
	r, err := EvaluateFolder(context.Background(), c, "../data/fmnist-5to9/test", Options{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Images != 1000 || r.Accuracy != acc || math.Abs(r.Loss-loss) > 1e-5 {
		t.Errorf("evaluate: %d images, accuracy %v, loss %v; the trainer: accuracy %v, loss %v", r.Images, r.Accuracy, r.Loss, acc, loss)
	}
	total, diag := 0, 0
	for i, row := range r.Confusion {
		support := 0
		for j, n := range row {
			total += n
			support += n
			if i == j {
				diag += n
			}
		}
		m := r.PerClass[i]
		if m.Support != support || m.Support != 200 {
			t.Errorf("class %s: support %d, row sum %d, want 200", m.Class, m.Support, support)
		}
		if want := float64(row[i]) / float64(support); m.Recall != want {
			t.Errorf("class %s: recall %v, want %v", m.Class, m.Recall, want)
		}
		if h := 2 * m.Precision * m.Recall / (m.Precision + m.Recall); math.Abs(m.F1-h) > 1e-12 {
			t.Errorf("class %s: F1 %v is not the harmonic mean of %v and %v", m.Class, m.F1, m.Precision, m.Recall)
		}
	}
	if total != 1000 || float64(diag)/1000 != r.Accuracy {
		t.Errorf("confusion matrix sums to %d with %d on the diagonal; accuracy %v", total, diag, r.Accuracy)
	}
	if r.TopK != 2 || r.TopKAccuracy < r.Accuracy {
		t.Errorf("top-%d accuracy %v below the accuracy %v", r.TopK, r.TopKAccuracy, r.Accuracy)
	}
	plot := filepath.Join(t.TempDir(), "confusion.png")
	if err := PlotConfusion(plot, r); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(plot); err != nil || st.Size() < 1000 {
		t.Errorf("confusion.png: %v", err)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil || !strings.Contains(text.String(), "9_ankle_boot") || !strings.Contains(text.String(), "precision") {
		t.Errorf("report text: %v\n%s", err, text.String())
	}
}

func TestPredict(t *testing.T) {
	model, _, _ := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Predict(context.Background(), c, []string{"../data/fmnist-5to9/test/8_bag/00078.png", "../data/fmnist-5to9/test/6_shirt"}, 3, Options{BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	preds := res.Predictions
	if len(preds) != 201 || len(res.Skipped) != 0 {
		t.Fatalf("%d predictions, want 1 + the 200 images of 6_shirt", len(preds))
	}
	right := 0
	for _, p := range preds {
		sum := 0.0
		for i, s := range p.Top {
			sum += s.Probability
			if i > 0 && s.Probability > p.Top[i-1].Probability {
				t.Errorf("%s: classes not by decreasing probability: %+v", p.File, p.Top)
			}
		}
		if len(p.Top) != 3 || sum > 1+1e-6 {
			t.Errorf("%s: top %+v", p.File, p.Top)
		}
		want := filepath.Base(filepath.Dir(p.File))
		if p.Top[0].Class == want {
			right++
		}
	}
	if right < 150 {
		t.Errorf("%d of 201 predictions right after a head epoch (about 88%% on the test set)", right)
	}
}

// A folder holding a file that does not decode: with fail, an error naming it and no
// predictions; with skip, the others predicted in order and the bad one listed.
func TestPredictBadFiles(t *testing.T) {
	model, _, _ := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, err := os.ReadFile("../data/fmnist-5to9/test/8_bag/00078.png")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a.png"), good, 0o644)
	os.WriteFile(filepath.Join(dir, "b.jpg"), []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F'}, 0o644)
	os.WriteFile(filepath.Join(dir, "c.png"), good[:len(good)/2], 0o644)
	os.WriteFile(filepath.Join(dir, "d.png"), good, 0o644)
	res, err := Predict(context.Background(), c, []string{dir}, 2, Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.jpg")) || !strings.Contains(err.Error(), "--on-bad-image skip") || res != nil {
		t.Fatalf("fail: got %v, %v; want an error naming b.jpg and the flag", res, err)
	}
	res, err = Predict(context.Background(), c, []string{dir}, 2, Options{OnBadImage: "skip"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Predictions) != 2 || res.Predictions[0].File != filepath.Join(dir, "a.png") || res.Predictions[1].File != filepath.Join(dir, "d.png") {
		t.Fatalf("predictions %+v, want a.png and d.png", res.Predictions)
	}
	if len(res.Skipped) != 2 || res.Skipped[0].File != filepath.Join(dir, "b.jpg") || res.Skipped[1].File != filepath.Join(dir, "c.png") {
		t.Fatalf("skipped %+v, want b.jpg and c.png", res.Skipped)
	}
	if res.Predictions[0].Top[0] != res.Predictions[1].Top[0] {
		t.Errorf("the same image predicted differently: %+v, %+v", res.Predictions[0].Top, res.Predictions[1].Top)
	}
}

func TestBadInput(t *testing.T) {
	model, _, _ := demoModel(t)
	dir := t.TempDir()
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	// A folder whose classes are not the model's.
	img, err := os.ReadFile("../data/fmnist-5to9/test/8_bag/00078.png")
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"8_bag", "cat"} {
		os.MkdirAll(filepath.Join(dir, "other", class), 0o755)
		os.WriteFile(filepath.Join(dir, "other", class, "a.png"), img, 0o644)
	}
	_, err = EvaluateFolder(context.Background(), c, filepath.Join(dir, "other"), Options{})
	if err == nil || !strings.Contains(err.Error(), "[8_bag cat]") || !strings.Contains(err.Error(), "[5_sandal 6_shirt 7_sneaker 8_bag 9_ankle_boot]") {
		t.Errorf("classes that differ: %v, want both lists named", err)
	}
	// A file that is not an image.
	text := filepath.Join(dir, "notes.png")
	os.WriteFile(text, []byte("not an image\n"), 0o644)
	if _, err := Predict(context.Background(), c, []string{text}, 1, Options{}); err == nil || !strings.Contains(err.Error(), "notes.png: not a decodable image: not an image") {
		t.Errorf("predict on a text file: %v", err)
	}
	// A model without class names: indices, and a note saying so.
	m, err := onnx.Read(model)
	if err != nil {
		t.Fatal(err)
	}
	var meta []onnx.MetadataEntry
	for _, e := range m.Metadata {
		if e.Key != modelmeta.Classes {
			meta = append(meta, e)
		}
	}
	m.Metadata = meta
	bare := filepath.Join(dir, "bare.onnx")
	if err := onnx.Write(bare, m); err != nil {
		t.Fatal(err)
	}
	c, err = Load(bare)
	if err != nil {
		t.Fatal(err)
	}
	if c.HasNames || strings.Join(c.Classes, ",") != "0,1,2,3,4" || len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "no class names") {
		t.Errorf("a model without class names: classes %v, notes %v", c.Classes, c.Notes)
	}
	res, err := Predict(context.Background(), c, []string{"../data/fmnist-5to9/test/8_bag/00078.png"}, 1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Predictions[0].Top[0].Class != "3" {
		t.Errorf("the bag predicted as %+v, want index 3", res.Predictions[0].Top)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if trained.model != "" {
		os.RemoveAll(filepath.Dir(trained.model))
	}
	os.Exit(code)
}

// TestConfusionLabelsApart checks that the predicted classes' names under the columns
// of confusion.png do not run together: with the names level, neighbours' half widths
// and an em must fit in a column (in the plot of issue 16, "8_bag" and "9_ankle_boot"
// were half a point further apart than a space); slanted, the distance between neighbouring (parallel) names,
// the column's width times the sine of the slant, must be at least a name's height.
// The names are the demo's; the plot is written with os.Create's mode.
func TestConfusionLabelsApart(t *testing.T) {
	r := &Report{Classes: []string{"5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"}, Scores: Scores{Accuracy: 0.9}}
	for i := range r.Classes {
		row := make([]int, len(r.Classes))
		row[i] = 200
		r.Confusion = append(r.Confusion, row)
	}
	p, w, h, err := confusionPlot(r)
	if err != nil {
		t.Fatal(err)
	}
	img := vgimg.New(w, h)
	column := p.DataCanvas(draw.New(img)).Size().X / vg.Length(len(r.Classes))
	sty := p.X.Tick.Label
	level := sty
	level.Rotation = 0 // measured level, along the text
	height, gap := level.Rectangle("Xg").Size().Y, level.Rectangle("M").Size().X
	for i := 1; i < len(r.Classes); i++ {
		a, b := level.Rectangle(r.Classes[i-1]).Size().X, level.Rectangle(r.Classes[i]).Size().X
		if sty.Rotation == 0 && a/2+b/2+gap > column {
			t.Errorf("level names %q and %q (%.0f and %.0f pt wide) run together in columns %.0f pt wide", r.Classes[i-1], r.Classes[i], a, b, column)
		}
		if sty.Rotation != 0 && column*vg.Length(math.Abs(math.Sin(sty.Rotation))) < height {
			t.Errorf("slanted names %.0f pt high, %.0f pt apart: they run together", height, column*vg.Length(math.Abs(math.Sin(sty.Rotation))))
		}
	}
	path := filepath.Join(t.TempDir(), "confusion.png")
	if err := PlotConfusion(path, r); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(filepath.Dir(path), "probe")
	f, err := os.Create(probe)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, _ := os.Stat(path)
	want, _ := os.Stat(probe)
	if got.Mode().Perm() != want.Mode().Perm() {
		t.Errorf("confusion.png has mode %04o, want %04o as os.Create gives", got.Mode().Perm(), want.Mode().Perm())
	}
}

// TestReportAgainstScikitLearn scores the demo model's logits on the 1,000 test images
// with scikit-learn (Debian's python3-sklearn): the confusion matrix, per-class
// precision, recall, F1 and support, macro F1, accuracy, top-2 accuracy and the mean
// cross-entropy (log_loss of the softmax) must be the report's.
func TestReportAgainstScikitLearn(t *testing.T) {
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import sklearn.metrics, numpy").CombinedOutput(); err != nil {
		testref.Missing(t, "scikit-learn for /usr/bin/python3 (Debian python3-sklearn): %v %s", err, out)
		return
	}
	model, _, _ := demoModel(t)
	c, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	const dir = "../data/fmnist-5to9/test"
	r, err := EvaluateFolder(context.Background(), c, dir, Options{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataset.OpenImageFolder(dir, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, k := src.Len(), len(c.Classes)
	l, err := dataset.NewLoader(src, dataset.LoaderOptions{BatchSize: n, Preprocess: c.Preprocess})
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		logits, err := c.Logits(b.Images, b.N)
		if err != nil {
			t.Fatal(err)
		}
		labels := make([]float32, b.N)
		for i, y := range b.Labels[:b.N] {
			labels[i] = float32(y)
		}
		if err := npy.WriteFile(filepath.Join(tmp, "logits.npy"), &npy.Array{Shape: []int{b.N, k}, Data: logits[:b.N*k]}); err != nil {
			t.Fatal(err)
		}
		if err := npy.WriteFile(filepath.Join(tmp, "labels.npy"), &npy.Array{Shape: []int{b.N}, Data: labels}); err != nil {
			t.Fatal(err)
		}
	}
	const script = `
import json, sys
import numpy as np
from sklearn import metrics
z = np.load(sys.argv[1]).astype(np.float64)
y = np.load(sys.argv[2]).astype(np.int64)
labels = list(range(z.shape[1]))
p = np.exp(z - z.max(axis=1, keepdims=True)); p /= p.sum(axis=1, keepdims=True)
prec, rec, f1, sup = metrics.precision_recall_fscore_support(y, z.argmax(axis=1), labels=labels, zero_division=0)
print(json.dumps({
  "confusion": metrics.confusion_matrix(y, z.argmax(axis=1), labels=labels).tolist(),
  "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(), "support": sup.tolist(),
  "macro_f1": metrics.f1_score(y, z.argmax(axis=1), labels=labels, average="macro", zero_division=0),
  "accuracy": metrics.accuracy_score(y, z.argmax(axis=1)),
  "top2": metrics.top_k_accuracy_score(y, z, k=2, labels=labels),
  "log_loss": metrics.log_loss(y, p, labels=labels),
}))
`
	out, err := exec.Command(py, "-c", script, filepath.Join(tmp, "logits.npy"), filepath.Join(tmp, "labels.npy")).Output()
	if err != nil {
		t.Fatalf("scikit-learn: %v", err)
	}
	var ref struct {
		Confusion             [][]int
		Precision, Recall, F1 []float64
		Support               []int
		MacroF1               float64 `json:"macro_f1"`
		Accuracy, Top2        float64
		LogLoss               float64 `json:"log_loss"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !reflect.DeepEqual(r.Confusion, ref.Confusion) {
		t.Errorf("confusion matrix %v, scikit-learn %v", r.Confusion, ref.Confusion)
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }
	for i, m := range r.PerClass {
		if !close(m.Precision, ref.Precision[i]) || !close(m.Recall, ref.Recall[i]) || !close(m.F1, ref.F1[i]) || m.Support != ref.Support[i] {
			t.Errorf("class %s: precision %v recall %v F1 %v support %d; scikit-learn %v %v %v %d",
				m.Class, m.Precision, m.Recall, m.F1, m.Support, ref.Precision[i], ref.Recall[i], ref.F1[i], ref.Support[i])
		}
	}
	if !close(r.MacroF1, ref.MacroF1) || !close(r.Accuracy, ref.Accuracy) || r.TopK != 2 || !close(r.TopKAccuracy, ref.Top2) {
		t.Errorf("macro F1 %v, accuracy %v, top-%d %v; scikit-learn %v, %v, top-2 %v", r.MacroF1, r.Accuracy, r.TopK, r.TopKAccuracy, ref.MacroF1, ref.Accuracy, ref.Top2)
	}
	if math.Abs(r.Loss-ref.LogLoss) > 1e-5*ref.LogLoss {
		t.Errorf("loss %v, scikit-learn's log_loss %v", r.Loss, ref.LogLoss)
	}
	if r.Accuracy == ref.Top2 || ref.Precision[0] == ref.Recall[0] {
		t.Errorf("the model's scores do not tell the metrics apart (accuracy %v, top-2 %v): the check is weak", r.Accuracy, ref.Top2)
	}
	// Top-k over every class is 100% whatever the model: not reported.
	r5, err := EvaluateFolder(context.Background(), c, dir, Options{TopK: 5})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := r5.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if r5.TopK != 0 || strings.Contains(text.String(), "top-") {
		t.Errorf("top-5 of a 5-class model: TopK %d, report:\n%s", r5.TopK, text.String())
	}
}

// The most confused pairs are the confusion matrix's off-diagonal cells that are not
// zero, the largest first, ties in the matrix's order (fastai's most_confused).
func TestMostConfused(t *testing.T) {
	classes := []string{"a", "b", "c"}
	confusion := [][]int{
		{9, 2, 0},
		{5, 7, 2},
		{0, 1, 3},
	}
	got := mostConfused(classes, confusion)
	want := []ConfusedPair{{"b", "a", 5}, {"a", "b", 2}, {"b", "c", 2}, {"c", "b", 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
