package finetune

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/finetune/schedule"
	"toolkit/internal/familyfixtures"
	"toolkit/onnx"
)

// TestTrainBN fine-tunes the head of torchvision's resnet18 (exported with its
// BatchNormalization layers, random weights and statistics) with the base frozen,
// with and without WithTrainBN: without it the base is left bit-identical, running
// statistics included; with it the convolutions are, but every BatchNormalization
// scale and shift has moved, and so have the running statistics (batch statistics in
// training mode, as fastai's train_bn runs them).
func TestTrainBN(t *testing.T) {
	f := familyfixtures.Load(t).Families["resnet18"]
	if f == nil {
		t.Fatal("no resnet18 family fixture")
	}
	m, err := onnx.Read(f.Path("model_opset13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cut, err := onnx.HeadlessCut(m)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = onnx.Cut(m, cut); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "base.onnx")
	if err := onnx.Write(base, m); err != nil {
		t.Fatal(err)
	}
	original := map[string][]float32{}
	for _, init := range m.Graph.Initializers {
		original[init.Name] = init.Floats
	}
	run := func(trainBN bool) *Trainer {
		cfg := testConfig(t)
		dir := t.TempDir()
		writeImages(t, filepath.Join(dir, "train"), 6, 4)
		cfg.Data.Train, cfg.Data.Val = filepath.Join(dir, "train"), ""
		cfg.Data.BatchSize = 9
		cfg.Model = ModelConfig{ONNX: base, Input: InputConfig{Channels: 3, Height: 32, Width: 32}}
		cfg.Head = HeadConfig{Pool: "avg", Classes: 3, Init: "he"}
		cfg.Stages = []StageConfig{{Name: "head", Epochs: 1, Train: Train("head"), LR: schedule.Rates{Rate: 1e-2}, Schedule: schedule.Spec{Name: "constant"}}}
		cfg.TrainBN = trainBN // the recipe's train_bn (WithTrainBN sets the same)
		tr, err := New(cfg, WithoutDefaultHooks())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	bn := map[string]bool{}
	for _, n := range m.Graph.Nodes {
		if n.OpType == "BatchNormalization" {
			for i, in := range n.Inputs[1:] {
				bn[in] = i < 2 // scale and shift; then the running statistics
			}
		}
	}
	if len(bn) == 0 {
		t.Fatal("the export has no BatchNormalization")
	}
	for _, trainBN := range []bool{false, true} {
		tr := run(trainBN)
		moved := 0
		for name, want := range original {
			got := tr.model.Param(name)
			if got == nil {
				continue
			}
			same := slices.Equal(got, want)
			isBN, known := bn[name]
			switch {
			case !trainBN && !same:
				t.Errorf("without train_bn: %s changed", name)
			case trainBN && !known && !same:
				t.Errorf("train_bn: %s (not BatchNormalization) changed", name)
			case trainBN && known && same:
				what := "running statistic"
				if isBN {
					what = "scale or shift"
				}
				t.Errorf("train_bn: BatchNormalization %s %s did not change", what, name)
			case trainBN && known:
				moved++
			}
		}
		if trainBN && moved != len(bn) {
			t.Errorf("train_bn: %d of %d BatchNormalization tensors moved", moved, len(bn))
		}
		if trainBN && !strings.Contains(strings.Join(tr.model.BatchNormParams(), " "), "layer4.1.bn2.weight") {
			t.Errorf("BatchNormParams: %v", tr.model.BatchNormParams())
		}
	}
}
