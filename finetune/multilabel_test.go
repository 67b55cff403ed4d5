package finetune

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/modelmeta"
	"toolkit/onnx"
)

// writeMultiCSV writes n 16x16 images into dir/images, each with up to two of the
// test patterns (checker, horizontal, vertical stripes), one per half (the other half
// noise), and dir/name, a CSV of file,labels listing each image's patterns.
func writeMultiCSV(t testing.TB, dir, name string, n int, seed uint64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("file,labels\n")
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		var labels []string
		for half := range 2 {
			c := rng.IntN(4) - 1 // -1: noise
			period := 2 + rng.IntN(3)
			tint := color.RGBA{R: uint8(120 + rng.IntN(135)), G: uint8(120 + rng.IntN(135)), B: uint8(120 + rng.IntN(135)), A: 255}
			if c >= 0 && !slices.Contains(labels, testClasses[c]) {
				labels = append(labels, testClasses[c])
			}
			for y := range 16 {
				for x := half * 8; x < half*8+8; x++ {
					var on bool
					switch c {
					case -1:
						on = rng.IntN(2) == 0
					case 0:
						on = (x/period+y/period)%2 == 0
					case 1:
						on = (y/period)%2 == 0
					case 2:
						on = (x/period)%2 == 0
					}
					noise := uint8(rng.IntN(40))
					px := color.RGBA{R: noise, G: noise, B: noise, A: 255}
					if on {
						px = color.RGBA{R: tint.R - noise/2, G: tint.G - noise/2, B: tint.B - noise/2, A: 255}
					}
					img.Set(x, y, px)
				}
			}
		}
		file := fmt.Sprintf("images/%s%03d.png", strings.TrimSuffix(name, ".csv"), i)
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		slices.Sort(labels)
		fmt.Fprintf(&b, "%s,%s\n", file, strings.Join(labels, ";"))
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// multiConfig is the test recipe on a multi-label CSV set.
func multiConfig(t testing.TB) Config {
	t.Helper()
	cfg := testConfig(t)
	dir := t.TempDir()
	cfg.Head.Task = TaskMultilabel
	cfg.Data.Format = "csv"
	cfg.Data.Train = writeMultiCSV(t, dir, "train.csv", 120, 1)
	cfg.Data.Val = writeMultiCSV(t, dir, "val.csv", 40, 2)
	cfg.Data.Test = writeMultiCSV(t, dir, "test.csv", 40, 3)
	cfg.Stages[0].LR.Rate = 3e-2
	cfg.Head.Dropout = 0
	return cfg
}

// bceRefScript computes, for each case, PyTorch's BCEWithLogitsLoss with pos_weight
// and its gradient, and the balanced positive weights (negatives over positives).
const bceRefScript = `
import json, sys, numpy as np, torch
out = []
for c in json.load(open(sys.argv[1])):
    n, k = c["n"], c["k"]
    x = torch.tensor(c["x"], dtype=torch.float64).reshape(n, k).requires_grad_(True)
    y = torch.tensor(c["y"], dtype=torch.float64).reshape(n, k)
    pw = torch.tensor(c["pos_weight"], dtype=torch.float64)
    loss = torch.nn.BCEWithLogitsLoss(pos_weight=pw)(x, y)
    loss.backward()
    yt = np.array(c["y"]).reshape(n, k)
    out.append({"loss": loss.item(), "dx": x.grad.reshape(-1).tolist(),
        "pos_weight_balanced": ((n - yt.sum(0)) / yt.sum(0)).tolist()})
json.dump(out, open(sys.argv[2], "w"))
`

// TestMultiLabelLossAgainstPyTorch checks the multi-label targets and the binary
// cross-entropy with balanced positive weights against PyTorch's
// BCEWithLogitsLoss(pos_weight) and its gradient, the weights against negatives over
// positives; the figures (mAP, F1, thresholds) are package multilabel's, checked
// against scikit-learn there.
func TestMultiLabelLossAgainstPyTorch(t *testing.T) {
	type tcase struct {
		N         int       `json:"n"`
		K         int       `json:"k"`
		X         []float64 `json:"x"`
		Y         []float64 `json:"y"`
		PosWeight []float64 `json:"pos_weight"`
	}
	rng := rand.New(rand.NewPCG(8, 9))
	var cases []tcase
	for _, size := range [][2]int{{40, 3}, {64, 6}} {
		n, k := size[0], size[1]
		c := tcase{N: n, K: k, X: make([]float64, n*k), Y: make([]float64, n*k)}
		for i := range c.X {
			c.Y[i] = float64(rng.IntN(2))
			if i%k == 0 && i/k < 2 {
				c.Y[i] = float64(i / k) // both values in every label's column
			}
			// Scores that say something, with ties (rounded to 0.5).
			c.X[i] = math.Round(2*(3*c.Y[i]-1.5+2*rng.NormFloat64())) / 2
		}
		counts := make([]int, k)
		for i, y := range c.Y {
			if y == 1 {
				counts[i%k]++
			}
		}
		pw, err := posWeights(WeightsConfig{Balanced: true}, DataSummary{Classes: make([]string, k), Splits: []SplitSummary{{Split: "train", Images: n, PerClass: counts}}})
		if err != nil {
			t.Fatal(err)
		}
		c.PosWeight = pw
		cases = append(cases, c)
	}
	var ref []struct {
		Loss     float64   `json:"loss"`
		DX       []float64 `json:"dx"`
		Balanced []float64 `json:"pos_weight_balanced"`
	}
	runRef(t, bceRefScript, cases, &ref, "python3-torch")
	close := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
			t.Errorf("%s: %.12g, reference %.12g", what, got, want)
		}
	}
	for ci, c := range cases {
		name := fmt.Sprintf("case %d (%dx%d)", ci, c.N, c.K)
		hot := make([]float32, len(c.Y))
		for i, y := range c.Y {
			hot[i] = float32(y)
		}
		indices := make([]int, c.N)
		for i := range indices {
			indices[i] = i
		}
		targets, norm := multiTargets(indices, nil, hot, c.K)
		if norm != float64(c.N) || !slices.Equal(targets, hot) {
			t.Errorf("%s: targets differ from the rows, or normaliser %v", name, norm)
		}
		for j, w := range c.PosWeight {
			close(fmt.Sprintf("%s: balanced pos_weight[%d]", name, j), w, ref[ci].Balanced[j])
		}
		t64 := make([]float64, len(targets))
		for i, v := range targets {
			t64[i] = float64(v)
		}
		close(name+": loss", kernels.BCEWithLogits(c.N, c.K, c.X, t64, c.PosWeight, 0), ref[ci].Loss)
		d := make([]float64, len(c.X))
		kernels.BCEWithLogitsBackward(c.N, c.K, c.X, t64, c.PosWeight, 0, 1, d)
		for i := range d {
			close(fmt.Sprintf("%s: dx[%d]", name, i), d[i], ref[ci].DX[i])
		}
	}
	if _, err := posWeights(WeightsConfig{Balanced: true}, DataSummary{Classes: []string{"a", "b"}, Splits: []SplitSummary{{Split: "train", Images: 4, PerClass: []int{2, 0}}}}); err == nil || !strings.Contains(err.Error(), "no training image has label b") {
		t.Errorf("balanced pos_weight of a label without positives: %v", err)
	}
}

// TestMultiLabelRun trains the test recipe on a multi-label CSV set: the validation
// mAP climbs well above the chance level of scores that ignore the image,
// every epoch records its tuned thresholds, model.onnx and best.onnx carry their
// epochs' thresholds and the task in their metadata, and on two ranks the first steps
// end as one process's.
func TestMultiLabelRun(t *testing.T) {
	cfg := multiConfig(t)
	cfg.Loss.PosWeight = WeightsConfig{Balanced: true}
	cfg.Stages[0].Epochs = 6
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := res.History
	last := h[len(h)-1]
	// Chance: the labels' frequencies, about 0.42 (the mAP of scores that ignore the image).
	if last.ValMAP == nil || *last.ValMAP < 0.75 || len(last.Thresholds) != 3 {
		t.Fatalf("last epoch: %+v", last)
	}
	t.Logf("validation mAP by epoch: %v; test mAP %.3f macro F1 %.3f", func() (v []float64) {
		for _, m := range h {
			v = append(v, *m.ValMAP)
		}
		return v
	}(), res.TestMAP, res.TestMacroF1)
	if res.TestMAP < 0.65 {
		t.Errorf("test mAP %.3f", res.TestMAP)
	}
	for _, f := range []struct {
		file   string
		epochs int
	}{{RunModel, len(h)}, {RunBest, res.Best.Epoch}} {
		m, err := onnx.Read(filepath.Join(cfg.Output.Dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		meta, err := modelmeta.Get(m)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Task != modelmeta.TaskMultilabel || !slices.Equal(meta.Thresholds, h[f.epochs-1].Thresholds) {
			t.Errorf("%s: task %q thresholds %v; want multilabel and epoch %d's %v", f.file, meta.Task, meta.Thresholds, f.epochs, h[f.epochs-1].Thresholds)
		}
	}

	cfg = multiConfig(t)
	cfg.Head.Dropout = 0
	cfg.Data.Augment = AugmentConfig{}
	cfg.Stages = cfg.Stages[1:]
	one, err := New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(3)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Run(context.Background()); !errors.Is(err, errStopped) {
		t.Fatal(err)
	}
	trs := runOnTwoRanksUntilStopped(t, cfg, 3)
	checkRanks(t, trs, weightsOf(one))
	if trs[0].last.Scored != one.last.Scored || trs[0].last.Correct != one.last.Correct {
		t.Errorf("the last step on ranks: %d of %d right; one process %d of %d", trs[0].last.Correct, trs[0].last.Scored, one.last.Correct, one.last.Scored)
	}
}

// TestCSVSingleLabel trains from a CSV listing the test recipe's image folder, file by
// file in the folder's order: the run is the image folder's, weight for weight.
func TestCSVSingleLabel(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	cfg.Stages[0].Epochs = 1
	folder, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := folder.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, split := range []*string{&cfg.Data.Train, &cfg.Data.Val} {
		var b strings.Builder
		b.WriteString("file,label\n")
		for _, c := range testClasses {
			files, _ := filepath.Glob(filepath.Join(*split, c, "*.png"))
			for _, f := range files {
				fmt.Fprintf(&b, "%s,%s\n", f, c)
			}
		}
		*split += ".csv"
		if err := os.WriteFile(*split, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Data.Format = "csv"
	csv, err := New(cfg, WithoutDefaultHooks())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := csv.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := weightsOf(folder)
	for name, w := range weightsOf(csv) {
		if !slices.Equal(w, want[name]) {
			t.Errorf("%s differs from the image folder's run", name)
		}
	}
	if !slices.Equal(csv.Classes(), testClasses) {
		t.Errorf("classes %v", csv.Classes())
	}
}
