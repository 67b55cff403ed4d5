package crosscheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"toolkit/finetune"
	"toolkit/finetune/schedule"
	"toolkit/internal/familyfixtures"
	"toolkit/npy"
	"toolkit/onnx"
)

// TestFineTunedFamiliesRunInORT fine-tunes every torchvision family (the default
// export, BatchNorm folded, and for resnet18 and mobilenet_v2 the one that keeps its
// BatchNormalization layers, trained in training mode) at 32x32 on a few demo images:
// the headless cut FindHead finds, a new head with the pooling the classifier used,
// `groups: auto`, one epoch of the head and one of everything with ULMFiT rates. The
// model.onnx each run writes must run in ONNX Runtime with the toolkit's outputs.
func TestFineTunedFamiliesRunInORT(t *testing.T) {
	ortRunner(t)
	fx := familyfixtures.Load(t)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	copyDemoImages(t, filepath.Join("..", "data", "fmnist-5to9", "train"), data, 4)
	x := randomInput([]int{3, 3, 32, 32}, 81)
	xFile := filepath.Join(tmp, "x.npy")
	writeNPY(t, xFile, x)
	type run struct {
		name, model string
		ours        *npy.Array
		job         ortJob
	}
	var runs []run
	for _, name := range fx.Names() {
		f := fx.Families[name]
		files := []string{"model_fused_opset13.onnx"}
		if f.TrainReferences {
			files = append(files, "model_opset17.onnx")
		}
		for _, file := range files {
			label := name + "/" + file
			m := readIR(t, f.Path(file))
			h, err := onnx.FindHead(m)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			base, err := onnx.Cut(m, h.Cut)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			dir := filepath.Join(tmp, fmt.Sprintf("%s_%s", name, file))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			basePath := filepath.Join(dir, "base.onnx")
			if err := onnx.Write(basePath, base); err != nil {
				t.Fatal(err)
			}
			cfg := finetune.Default()
			cfg.Seed = 5
			cfg.Model = finetune.ModelConfig{ONNX: basePath, Input: finetune.InputConfig{Channels: 3, Height: 32, Width: 32}}
			pool := h.Pool
			if pool == onnx.PoolToken {
				pool = "flatten"
			}
			cfg.Head = finetune.HeadConfig{Pool: pool, Dense: []int{16}, Activation: "relu", Dropout: 0.2, Classes: 5, Init: "he"}
			cfg.Groups = finetune.GroupsConfig{Preset: "auto"}
			cfg.Stages = []finetune.StageConfig{
				{Name: "head", Epochs: 1, Train: finetune.Train("head"), LR: schedule.Rates{Rate: 1e-3}, Schedule: schedule.Spec{Name: "onecycle"}},
				{Name: "all", Epochs: 1, Train: finetune.TrainAll(), LR: schedule.Rates{Max: 1e-4, Factor: 2.6}, Schedule: schedule.Spec{Name: "stlr"}},
			}
			cfg.Data.Train = data
			cfg.Data.BatchSize = 10
			cfg.Data.Preprocess = finetune.PreprocessConfig{Mode: "torch"}
			cfg.Output.Dir = filepath.Join(dir, "run")
			tr, err := finetune.New(cfg)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			model := filepath.Join(cfg.Output.Dir, finetune.RunModel)
			ours, err := runToolkit(readIR(t, model), x)
			if err != nil {
				t.Fatalf("%s: the toolkit on its model.onnx: %v", label, err)
			}
			runs = append(runs, run{name: label, model: model, ours: ours,
				job: ortJob{model: model, in: xFile, out: filepath.Join(dir, "ort.npy")}})
		}
	}
	var jobs []ortJob
	for _, r := range runs {
		jobs = append(jobs, r.job)
	}
	stderr := runORT(t, jobs)
	var w worst
	for _, r := range runs {
		compare(t, &w, r.name+" fine-tuned model.onnx", r.ours, readORT(t, r.job, stderr), 1e-4)
	}
	w.log(t, "ONNX Runtime")
}

// copyDemoImages copies perClass images of each class folder of src into dst.
func copyDemoImages(t *testing.T, src, dst string, perClass int) {
	t.Helper()
	classes, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if !c.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(src, c.Name(), "*.png"))
		if len(files) < perClass {
			t.Fatalf("%s: %d images, want %d", filepath.Join(src, c.Name()), len(files), perClass)
		}
		if err := os.MkdirAll(filepath.Join(dst, c.Name()), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files[:perClass] {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, c.Name(), filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
