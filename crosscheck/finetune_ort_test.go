package crosscheck

import (
	"context"
	"path/filepath"
	"testing"

	"toolkit/finetune"
)

// TestFineTunedModelRunsInORT fine-tunes the demo recipe briefly (one epoch of the head,
// one of everything), then runs the model.onnx of the run folder in ONNX Runtime and in
// the toolkit (as `toolkit run` does) on the demo base's sample images.
func TestFineTunedModelRunsInORT(t *testing.T) {
	cfg, err := finetune.LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 1, 1
	cfg.Data.Test = ""
	dir := t.TempDir()
	cfg.Output.Dir = filepath.Join(dir, "run")
	tr, err := finetune.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(cfg.Output.Dir, finetune.RunModel)
	x := readNPY(t, "../models/fmnist-vgg/sample_input.npy")
	ours, err := runToolkit(readIR(t, model), x)
	if err != nil {
		t.Fatal(err)
	}
	job := ortJob{model: model, in: "../models/fmnist-vgg/sample_input.npy", out: filepath.Join(dir, "ort.npy")}
	stderr := runORT(t, []ortJob{job})
	var w worst
	compare(t, &w, "fine-tuned model.onnx", ours, readORT(t, job, stderr), 1e-4)
	w.log(t, "ONNX Runtime")
}
