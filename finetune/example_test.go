package finetune_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"toolkit/finetune"
	"toolkit/finetune/schedule"
)

// A Go program runs a recipe without YAML: the Config is a plain struct. This one
// fine-tunes the repository's demo base to Fashion-MNIST classes 5-9 for one short
// stage of the head alone.
func Example() {
	out, err := os.MkdirTemp("", "toolkit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)

	cfg := finetune.Default()
	cfg.Model.ONNX = "../models/fmnist-vgg/base.onnx"
	cfg.Model.Input = finetune.InputConfig{Channels: 3, Height: 32, Width: 32}
	cfg.Head = finetune.HeadConfig{Pool: "flatten", Dense: []int{64}, Activation: "relu", Dropout: 0.25, Classes: 5}
	cfg.Stages = []finetune.StageConfig{
		{Name: "head", Epochs: 1, Train: finetune.Train("head"), LR: schedule.Rates{Rate: 1e-3}, Schedule: schedule.Spec{Name: "onecycle"}},
	}
	cfg.Data.Train = "../data/fmnist-5to9/train"
	cfg.Data.Preprocess = finetune.PreprocessConfig{Mode: "torch", Mean: []float64{0.286}, Std: []float64{0.353}}
	cfg.Output.Dir = out

	t, err := finetune.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range t.Groups() {
		fmt.Println(g.Name, len(g.Params))
	}
	if _, err := t.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(out, finetune.RunModel))
	fmt.Println("model.onnx written:", err == nil)
	// Output:
	// block1 4
	// block2 4
	// block3 4
	// head 4
	// model.onnx written: true
}
