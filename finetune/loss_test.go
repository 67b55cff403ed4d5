package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"toolkit/backend/kernels"
	"toolkit/dataset"
	"toolkit/evaluate"
	"toolkit/internal/testref"
)

// refPython is the Python that has the references (Debian's PyTorch and
// scikit-learn); the python3 first on PATH may be another.
const refPython = "/usr/bin/python3"

// runRef runs a Python script on in (as JSON, its first argument) and decodes the JSON
// it writes (its second argument) into out. Without the interpreter or one of its
// modules the test is skipped (under CI, failed), naming the packages to install.
func runRef(t *testing.T, script string, in, out any, packages string) {
	t.Helper()
	if _, err := os.Stat(refPython); err != nil {
		testref.Missing(t, "the reference needs %s with %s: %v", refPython, packages, err)
	}
	dir := t.TempDir()
	inPath, outPath, py := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "ref.py")
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(py, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(refPython, py, inPath, outPath)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(msg), "No module named") {
			testref.Missing(t, "the reference needs %s with %s: %s", refPython, packages, msg)
		}
		t.Fatalf("reference failed: %v\n%s", err, msg)
	}
	raw, err = os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

// lossRefScript computes PyTorch's loss and its gradient for each case: the weighted,
// smoothed CrossEntropyLoss of label targets, of blended (mixup) probability targets,
// and for gamma > 0 the focal loss, written out over log_softmax with the weighted
// mean's normaliser; and scikit-learn's compute_class_weight("balanced").
const lossRefScript = `
import json, sys, numpy as np, torch
from sklearn.utils.class_weight import compute_class_weight
out = []
for c in json.load(open(sys.argv[1])):
    n, k, g = c["n"], c["k"], c["gamma"]
    x = torch.tensor(c["x"], dtype=torch.float64).reshape(n, k).requires_grad_(True)
    w = None if c["weight"] is None else torch.tensor(c["weight"], dtype=torch.float64)
    y = torch.tensor(c["labels"])
    if c["probs"] is not None:
        t = torch.tensor(c["probs"], dtype=torch.float64).reshape(n, k)
        loss = torch.nn.CrossEntropyLoss(weight=w)(x, t)
    elif g == 0:
        loss = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=c["eps"])(x, y)
    else:
        ww = torch.ones(k, dtype=torch.float64) if w is None else w
        eps = c["eps"]
        t = torch.full((n, k), eps / k, dtype=torch.float64)
        t[torch.arange(n), y] += 1 - eps
        logp = torch.log_softmax(x, dim=1)
        loss = -(ww * t * (1 - logp.exp()) ** g * logp).sum() / ww[y].sum()
    loss.backward()
    out.append({"loss": loss.item(), "dx": x.grad.reshape(-1).tolist(),
                "balanced": compute_class_weight("balanced", classes=np.arange(k), y=np.array(c["labels"])).tolist()})
json.dump(out, open(sys.argv[2], "w"))
`

// TestLossAgainstPyTorch builds the trainer's loss targets (lossTargets) for random
// batches and runs the loss kernels the training program runs on them: the loss and
// its gradient are PyTorch's CrossEntropyLoss with class weights and label smoothing
// (label targets: the weighted mean), with class weights on mixup's blended targets
// (probability targets: the mean over the batch), and the focal loss with class
// weights; the balanced weights are scikit-learn's compute_class_weight.
func TestLossAgainstPyTorch(t *testing.T) {
	type tcase struct {
		N      int       `json:"n"`
		K      int       `json:"k"`
		Gamma  float64   `json:"gamma"`
		Eps    float64   `json:"eps"`
		X      []float64 `json:"x"`
		Labels []int     `json:"labels"`
		Weight []float64 `json:"weight"`
		Probs  []float64 `json:"probs"`
		mix    *dataset.Mix
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var cases []tcase
	for _, size := range [][2]int{{8, 3}, {16, 5}} {
		n, k := size[0], size[1]
		x := make([]float64, n*k)
		for i := range x {
			x[i] = 4 * (rng.Float64() - 0.5)
		}
		labels := make([]int, n)
		for i := range labels {
			labels[i] = i % k // every class present
			if i >= k {
				labels[i] = rng.IntN(k)
			}
		}
		weight := make([]float64, k)
		for j := range weight {
			weight[j] = 0.25 + 3*rng.Float64()
		}
		for _, w := range [][]float64{nil, weight} {
			for _, eps := range []float64{0, 0.1} {
				for _, g := range []float64{0, 2} {
					cases = append(cases, tcase{N: n, K: k, Gamma: g, Eps: eps, X: x, Labels: labels, Weight: w})
				}
			}
			partners := make([]int, n)
			for i := range partners {
				partners[i] = labels[(i+n-1)%n]
			}
			c := tcase{N: n, K: k, X: x, Labels: labels, Weight: w, mix: &dataset.Mix{Lambda: 0.7, PartnerLabels: partners}}
			c.Probs = make([]float64, n*k)
			for i := range n {
				c.Probs[i*k+labels[i]] += 0.7
				c.Probs[i*k+partners[i]] += 0.3
			}
			cases = append(cases, c)
		}
	}
	var ref []struct {
		Loss     float64   `json:"loss"`
		DX       []float64 `json:"dx"`
		Balanced []float64 `json:"balanced"`
	}
	runRef(t, lossRefScript, cases, &ref, "python3-torch and python3-sklearn")
	for ci, c := range cases {
		name := fmt.Sprintf("case %d (%dx%d, weights %v, eps %g, gamma %g, mixup %v)", ci, c.N, c.K, c.Weight != nil, c.Eps, c.Gamma, c.mix != nil)
		tr := &Trainer{cfg: Config{Head: HeadConfig{Classes: c.K}, Loss: LossConfig{LabelSmoothing: c.Eps, FocalGamma: c.Gamma}}, classWeights: c.Weight}
		targets, _, norm := tr.lossTargets(c.Labels, c.mix)
		target64 := make([]float64, len(targets))
		for i, v := range targets {
			target64[i] = float64(v)
		}
		loss := kernels.FocalCrossEntropyProbs(c.N, c.K, c.X, target64, c.Gamma)
		d := make([]float64, len(c.X))
		kernels.FocalCrossEntropyProbsBackward(c.N, c.K, c.X, target64, c.Gamma, 1, d)
		if math.Abs(loss-ref[ci].Loss) > 1e-6*ref[ci].Loss {
			t.Errorf("%s: loss %.9g, PyTorch %.9g", name, loss, ref[ci].Loss)
		}
		var scale float64 // the targets are float32: errors relative to the largest gradient
		for _, v := range ref[ci].DX {
			scale = max(scale, math.Abs(v))
		}
		for i := range d {
			if math.Abs(d[i]-ref[ci].DX[i]) > 1e-6*scale {
				t.Errorf("%s: dlogits[%d] %.9g, PyTorch %.9g", name, i, d[i], ref[ci].DX[i])
				break
			}
		}
		wantNorm := float64(c.N)
		if c.Weight != nil && c.mix == nil {
			wantNorm = 0
			for _, y := range c.Labels {
				wantNorm += c.Weight[y]
			}
		}
		if math.Abs(norm-wantNorm) > 1e-12*wantNorm {
			t.Errorf("%s: normaliser %v, want %v", name, norm, wantNorm)
		}
		counts := make([]int, c.K)
		for _, y := range c.Labels {
			counts[y]++
		}
		bw, err := balancedWeights(counts, make([]string, c.K))
		if err != nil {
			t.Fatal(err)
		}
		for j := range bw {
			if math.Abs(bw[j]-ref[ci].Balanced[j]) > 1e-12 {
				t.Errorf("%s: balanced weights %v, scikit-learn %v", name, bw, ref[ci].Balanced)
				break
			}
		}
	}
	if _, err := balancedWeights([]int{3, 0, 2}, []string{"a", "b", "c"}); err == nil || !strings.Contains(err.Error(), "no training images of b") {
		t.Errorf("balanced weights with an empty class: %v", err)
	}
}

// TestClassWeightsRun trains the test recipe with balanced class weights and the focal
// loss: the run prints the weights (the data summary), records the validation macro-F1
// every epoch, and on two ranks of one process ends where one process ends (the loss's
// normaliser, the sum of the examples' weights, summed over the ranks).
func TestClassWeightsRun(t *testing.T) {
	cfg := testConfig(t)
	cfg.Head.Dropout = 0
	cfg.Data.Augment = AugmentConfig{}
	cfg.Stages = cfg.Stages[1:]
	cfg.Stages[0].Epochs = 1
	// An uneven training set: 40, 20 and 10 images per class.
	for c, keep := range map[string]int{"horizontal": 20, "vertical": 10} {
		for i := keep; i < 40; i++ {
			if err := os.Remove(filepath.Join(cfg.Data.Train, c, fmt.Sprintf("%03d.png", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg.Loss = LossConfig{ClassWeights: WeightsConfig{Balanced: true}, FocalGamma: 2}
	one, err := New(cfg, WithoutDefaultHooks(), WithHooks(stopAfter(3)))
	if err != nil {
		t.Fatal(err)
	}
	sum := one.DataSummary()
	want := []float64{70.0 / 120, 70.0 / 60, 70.0 / 30}
	for i, w := range sum.ClassWeights {
		if math.Abs(w-want[i]) > 1e-12 {
			t.Errorf("class weights %v, want %v", sum.ClassWeights, want)
		}
	}
	var text strings.Builder
	sum.WriteText(&text)
	if !strings.Contains(text.String(), "loss: class weights checker 0.583, horizontal 1.17, vertical 2.33") {
		t.Errorf("the data summary says\n%s", text.String())
	}
	if _, err := one.Run(context.Background()); !errors.Is(err, errStopped) {
		t.Fatal(err)
	}
	trs := runOnTwoRanksUntilStopped(t, cfg, 3)
	checkRanks(t, trs, weightsOf(one))
	if d := math.Abs(trs[0].last.Loss - one.last.Loss); d > 1e-6*one.last.Loss || math.Abs(trs[0].last.Weight-one.last.Weight) > 1e-12*one.last.Weight {
		t.Errorf("the last step on ranks: loss %v normaliser %v; one process %v %v", trs[0].last.Loss, trs[0].last.Weight, one.last.Loss, one.last.Weight)
	}
}

// TestValidationMacroF1 trains the test recipe's head for two epochs and checks each
// epoch's validation macro-F1 is what package evaluate (checked against
// scikit-learn's f1_score) computes for the model of that epoch on the validation
// folder.
func TestValidationMacroF1(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages = cfg.Stages[:1]
	dir := t.TempDir()
	var want []float64
	check := Hook{Name: "check", Epoch: func(tr *Trainer, m *EpochMetrics) error {
		path := filepath.Join(dir, fmt.Sprintf("epoch%d.onnx", m.Epoch))
		if err := tr.SaveModel(path); err != nil {
			return err
		}
		c, err := evaluate.Load(path)
		if err != nil {
			return err
		}
		r, err := evaluate.EvaluateFolder(context.Background(), c, cfg.Data.Val, evaluate.Options{})
		if err != nil {
			return err
		}
		want = append(want, r.MacroF1)
		return nil
	}}
	tr, err := New(cfg, WithoutDefaultHooks(), WithHooks(check))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := tr.History()
	if len(h) != 2 || len(want) != 2 {
		t.Fatalf("%d epochs, %d evaluations", len(h), len(want))
	}
	for i, m := range h {
		if m.ValMacroF1 == nil || math.Abs(*m.ValMacroF1-want[i]) > 1e-12 {
			t.Errorf("epoch %d: validation macro-F1 %v, evaluate's %v", i+1, m.ValMacroF1, want[i])
		}
	}
	t.Logf("validation macro-F1 by epoch: %v", want)
}
