package crosscheck

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/dataset"
	"toolkit/finetune"
	"toolkit/finetune/schedule"
	"toolkit/npy"
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

// TestBestModelScoredByORT fine-tunes the demo recipe briefly with a validation folder,
// then scores the run's best.onnx in ONNX Runtime on the validation images: the
// cross-entropy and accuracy of ONNX Runtime's logits must be those metrics.jsonl
// records for the epoch summary.json names as best.onnx's, which must be the epoch with
// the lowest validation loss (output.best's default). A last stage at a rate far too
// high makes the last epoch worse, so that best.onnx is not the final model.
func TestBestModelScoredByORT(t *testing.T) {
	cfg, err := finetune.LoadConfig("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyDemoImages(t, "../data/fmnist-5to9/test", filepath.Join(dir, "val"), 8)
	cfg.Stages[0].Epochs, cfg.Stages[1].Epochs = 2, 2
	cfg.Stages = append(cfg.Stages, finetune.StageConfig{Name: "hot", Epochs: 1, Train: finetune.TrainAll(), LR: schedule.Rates{Rate: 1e-2}})
	cfg.Data.Test, cfg.Data.ValSplit, cfg.Data.Val = "", 0, filepath.Join(dir, "val")
	cfg.Output.Dir = filepath.Join(dir, "run")
	tr, err := finetune.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	var summary struct{ Best finetune.BestEpoch }
	raw, err := os.ReadFile(filepath.Join(cfg.Output.Dir, finetune.RunSummary))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &summary); err != nil {
		t.Fatal(err)
	}
	var epochs []finetune.EpochMetrics
	raw, err = os.ReadFile(filepath.Join(cfg.Output.Dir, finetune.RunMetrics))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r finetune.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Epoch != nil {
			epochs = append(epochs, *r.Epoch)
		}
	}
	if len(epochs) != 5 || len(res.History) != 5 {
		t.Fatalf("metrics.jsonl holds %d epochs, the result %d; want 5", len(epochs), len(res.History))
	}
	lowest := 0
	for i, m := range epochs {
		if *m.ValLoss < *epochs[lowest].ValLoss {
			lowest = i
		}
	}
	best := epochs[lowest]
	if best.Epoch == len(epochs) {
		t.Errorf("the last epoch has the lowest validation loss: the check cannot tell best.onnx from model.onnx")
	}
	if summary.Best.Metric != "val_loss" || summary.Best.Epoch != best.Epoch || summary.Best.Value != *best.ValLoss {
		t.Fatalf("summary.json's best %+v; want epoch %d, val_loss %v (the lowest in metrics.jsonl)", summary.Best, best.Epoch, *best.ValLoss)
	}

	// The validation images as the trainer feeds them, in one batch.
	data, err := finetune.OpenData(cfg.Data, cfg.Model.Input, cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	n := data.Val.Len()
	l, err := dataset.NewLoader(data.Val, dataset.LoaderOptions{BatchSize: n, Preprocess: data.Preprocess})
	if err != nil {
		t.Fatal(err)
	}
	var x *npy.Array
	var labels []int
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		x = &npy.Array{Shape: []int{n, cfg.Model.Input.Channels, cfg.Model.Input.Height, cfg.Model.Input.Width}, Data: b.Images[:b.N*data.Preprocess.Size()]}
		labels = b.Labels[:b.N]
	}
	in := filepath.Join(dir, "val.npy")
	writeNPY(t, in, x)
	job := ortJob{model: filepath.Join(cfg.Output.Dir, finetune.RunBest), in: in, out: filepath.Join(dir, "logits.npy")}
	logits := readORT(t, job, runORT(t, []ortJob{job}))
	classes := cfg.Head.Classes
	if len(logits.Data) != n*classes {
		t.Fatalf("ONNX Runtime gave %v logits for %d images of %d classes", logits.Shape, n, classes)
	}
	var loss float64
	right := 0
	for i, y := range labels {
		row := logits.Data[i*classes : (i+1)*classes]
		top, arg := math.Inf(-1), 0
		for c, v := range row {
			if float64(v) > top {
				top, arg = float64(v), c
			}
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - top)
		}
		loss += top + math.Log(sum) - float64(row[y])
		if arg == y {
			right++
		}
	}
	loss /= float64(n)
	acc := float64(right) / float64(n)
	if math.Abs(loss-*best.ValLoss) > 1e-4**best.ValLoss || acc != *best.ValAcc {
		t.Errorf("best.onnx in ONNX Runtime: validation loss %.6f, accuracy %.4f; metrics.jsonl's epoch %d: %.6f, %.4f", loss, acc, best.Epoch, *best.ValLoss, *best.ValAcc)
	}
	for _, m := range epochs {
		if m.Epoch != best.Epoch && math.Abs(*m.ValLoss-*best.ValLoss) <= 1e-4**best.ValLoss {
			t.Errorf("epoch %d's validation loss %.6f is as close: the check cannot tell the epochs apart", m.Epoch, *m.ValLoss)
		}
	}
	t.Logf("best.onnx: epoch %d of %d; ONNX Runtime: loss %.6f (recorded %.6f), accuracy %.4f", best.Epoch, len(epochs), loss, *best.ValLoss, acc)
}
