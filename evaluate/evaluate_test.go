package evaluate

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"toolkit/finetune"
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
		if e.Key != finetune.MetaClasses {
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
