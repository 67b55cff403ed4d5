package finetune

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"toolkit/backend"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// TestDemoRecipe runs the repository's config.yaml at reduced size (one epoch of the
// head, two of everything) and checks that it learns the five new classes and writes a
// run folder whose model.onnx reproduces the trainer's predictions.
func TestDemoRecipe(t *testing.T) {
	cfg, err := LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 2
	cfg.Output.Dir = filepath.Join(t.TempDir(), "run")
	tr, err := New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.HasTest || res.TestAcc < 0.85 {
		t.Errorf("test accuracy %.3f after 3 epochs, want >= 0.85 (the full recipe reaches about 0.93)", res.TestAcc)
	}
	t.Logf("test accuracy %.4f, loss %.4f", res.TestAcc, res.TestLoss)
	for _, f := range []string{RunModel, RunBest, RunMetrics, RunCurves, RunSummary, RunConfig, filepath.Join(RunCheckpoint, checkpointState)} {
		if _, err := os.Stat(filepath.Join(cfg.Output.Dir, f)); err != nil {
			t.Errorf("run folder: %v", err)
		}
	}
	// The exported model, read back, computes what the trainer's model computes.
	exported, err := onnx.Read(filepath.Join(cfg.Output.Dir, RunModel))
	if err != nil {
		t.Fatal(err)
	}
	if exported.Opset("") < 13 {
		t.Errorf("exported opset %d, want 13 or newer", exported.Opset(""))
	}
	var classes string
	for _, e := range exported.Metadata {
		if e.Key == modelmeta.Classes {
			classes = e.Value
		}
	}
	if classes != `["5_sandal","6_shirt","7_sneaker","8_bag","9_ankle_boot"]` {
		t.Errorf("metadata %s = %q", modelmeta.Classes, classes)
	}
	m, err := backend.NewModel(exported)
	if err != nil {
		t.Fatal(err)
	}
	loss, acc, err := evaluateModel(tr, m)
	if err != nil {
		t.Fatal(err)
	}
	if acc != res.TestAcc || loss-res.TestLoss > 1e-6 || res.TestLoss-loss > 1e-6 {
		t.Errorf("exported model: test loss %v acc %v, the trainer's %v %v", loss, acc, res.TestLoss, res.TestAcc)
	}
}

// evaluateModel evaluates another backend model on the trainer's test data.
func evaluateModel(tr *Trainer, m *backend.Model) (loss, acc float64, err error) {
	saved := tr.model
	tr.model, tr.evalPrograms = m, map[programKey]*backend.Program{}
	defer func() { tr.model, tr.evalPrograms = saved, map[programKey]*backend.Program{} }()
	return tr.evaluate(context.Background(), tr.testLoader)
}
