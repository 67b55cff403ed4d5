package kernels

import (
	"fmt"
	"math"
	"testing"
)

// lossScript computes, in float64 with autograd, the references of the focal and
// binary losses for each case of a JSON file:
//
//   - "focal": with gamma 0, nn.CrossEntropyLoss with probability targets (and with
//     class weights and label targets, its weighted mean); otherwise Lin et al.'s
//     focal loss written out over torch.softmax, differentiated by autograd;
//   - "bce": nn.BCEWithLogitsLoss(pos_weight) for gamma 0; for gamma > 0 without
//     pos_weight torchvision.ops.sigmoid_focal_loss(alpha=-1), with it the same
//     modulation written out over BCEWithLogitsLoss(reduction="none").
const lossScript = `
import json, sys, torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss
out = []
for c in json.load(open(sys.argv[1])):
    n, k, g = c["n"], c["k"], c["gamma"]
    x = torch.tensor(c["x"], dtype=torch.float64).reshape(n, k).requires_grad_(True)
    t = torch.tensor(c["target"], dtype=torch.float64).reshape(n, k)
    r = {}
    if c["op"] == "focal":
        if c.get("labels") is not None:
            w = torch.tensor(c["weight"], dtype=torch.float64)
            loss = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=c["eps"])(x, torch.tensor(c["labels"]))
        elif g == 0:
            loss = torch.nn.CrossEntropyLoss()(x, t)
        else:
            p = torch.softmax(x, dim=1)
            loss = -(t * (1 - p) ** g * torch.log_softmax(x, dim=1)).sum() / n
    else:
        pw = None if c["pos_weight"] is None else torch.tensor(c["pos_weight"], dtype=torch.float64)
        if g == 0:
            loss = torch.nn.BCEWithLogitsLoss(pos_weight=pw)(x, t)
        elif pw is None:
            loss = sigmoid_focal_loss(x, t, alpha=-1, gamma=g, reduction="mean")
        else:
            ce = F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
            s = torch.sigmoid(x)
            pt = s * t + (1 - s) * (1 - t)
            loss = (ce * (1 - pt) ** g).mean()
    loss.backward()
    out.append({"loss": loss.item(), "dx": x.grad.reshape(-1).tolist()})
json.dump(out, open(sys.argv[2], "w"))
`

type lossCase struct {
	Op        string    `json:"op"`
	N         int       `json:"n"`
	K         int       `json:"k"`
	Gamma     float64   `json:"gamma"`
	X         []float64 `json:"x"`
	Target    []float64 `json:"target"`
	PosWeight []float64 `json:"pos_weight"`
	// Labels, Weight and Eps make a focal case with gamma 0 PyTorch's weighted
	// cross-entropy of label targets (Target is then the weighted smoothed one-hot,
	// normalised as the toolkit's trainer normalises it).
	Labels []int     `json:"labels,omitempty"`
	Weight []float64 `json:"weight,omitempty"`
	Eps    float64   `json:"eps"`
}

func runLossTorch(t *testing.T, cases []lossCase) []struct {
	Loss float64   `json:"loss"`
	DX   []float64 `json:"dx"`
} {
	t.Helper()
	var res []struct {
		Loss float64   `json:"loss"`
		DX   []float64 `json:"dx"`
	}
	runTorchScript(t, lossScript, cases, &res)
	return res
}

// weightedTargets is PyTorch's weighted, smoothed cross-entropy of label targets as
// probability targets for the kernels, which divide by n: column c of the smoothed
// one-hot times weight[c], the whole scaled by n / sum_i weight[label_i].
func weightedTargets(labels []int, k int, weight []float64, eps float64) []float64 {
	n := len(labels)
	t := make([]float64, n*k)
	var norm float64
	for i, y := range labels {
		norm += weight[y]
		for j := range k {
			t[i*k+j] = eps / float64(k)
		}
		t[i*k+y] += 1 - eps
		for j := range k {
			t[i*k+j] *= weight[j]
		}
	}
	for i := range t {
		t[i] *= float64(n) / norm
	}
	return t
}

// TestLossesAgainstPyTorch checks the focal cross-entropy and the binary
// cross-entropy with logits, their values and gradients in float64 (and float32 to
// its precision), against PyTorch and torchvision: CrossEntropyLoss (also with class
// weights and label smoothing on label targets, through the weighted targets the
// trainer builds), the focal loss over softmax, BCEWithLogitsLoss with pos_weight,
// and sigmoid_focal_loss; and every gradient against finite differences.
func TestLossesAgainstPyTorch(t *testing.T) {
	rng := newRNG(77)
	var cases []lossCase
	for _, size := range [][2]int{{6, 5}, {3, 10}, {1, 2}} {
		n, k := size[0], size[1]
		x := randn(rng, n*k)
		for i := range x {
			x[i] *= 4
		}
		probs, unnormalised := probsTargets(n, k, uint64(n*k))
		labels := make([]int, n)
		for i := range labels {
			labels[i] = int(rng.Uint64() % uint64(k))
		}
		weight := make([]float64, k)
		for j := range weight {
			weight[j] = 0.2 + 3*rng.Float64()
		}
		for _, g := range []float64{0, 0.5, 2} {
			cases = append(cases, lossCase{Op: "focal", N: n, K: k, Gamma: g, X: x, Target: probs},
				lossCase{Op: "focal", N: n, K: k, Gamma: g, X: x, Target: unnormalised})
		}
		for _, eps := range []float64{0, 0.1} {
			cases = append(cases, lossCase{Op: "focal", N: n, K: k, X: x, Target: weightedTargets(labels, k, weight, eps), Labels: labels, Weight: weight, Eps: eps})
		}
		bin := make([]float64, n*k)
		for i := range bin {
			if rng.Float64() < 0.4 {
				bin[i] = 1
			}
		}
		soft := make([]float64, n*k)
		for i := range soft {
			soft[i] = rng.Float64()
		}
		pw := make([]float64, k)
		for j := range pw {
			pw[j] = 0.5 + 4*rng.Float64()
		}
		for _, g := range []float64{0, 0.5, 2} {
			for _, tg := range [][]float64{bin, soft} {
				cases = append(cases, lossCase{Op: "bce", N: n, K: k, Gamma: g, X: x, Target: tg},
					lossCase{Op: "bce", N: n, K: k, Gamma: g, X: x, Target: tg, PosWeight: pw})
			}
		}
	}
	ref := runLossTorch(t, cases)
	for ci, c := range cases {
		name := fmt.Sprintf("case %d (%s, %dx%d, gamma %g, pos_weight %v, labels %v)", ci, c.Op, c.N, c.K, c.Gamma, c.PosWeight != nil, c.Labels != nil)
		loss := func(x []float64) float64 {
			if c.Op == "focal" {
				return FocalCrossEntropyProbs(c.N, c.K, x, c.Target, c.Gamma)
			}
			return BCEWithLogits(c.N, c.K, x, c.Target, c.PosWeight, c.Gamma)
		}
		grad := func(x []float64, dloss float64, d []float64) {
			if c.Op == "focal" {
				FocalCrossEntropyProbsBackward(c.N, c.K, x, c.Target, c.Gamma, dloss, d)
				return
			}
			BCEWithLogitsBackward(c.N, c.K, x, c.Target, c.PosWeight, c.Gamma, dloss, d)
		}
		if got := loss(c.X); math.Abs(got-ref[ci].Loss) > 1e-12*max(1, math.Abs(ref[ci].Loss)) {
			t.Errorf("%s: loss %.17g, PyTorch %.17g", name, got, ref[ci].Loss)
		}
		d := make([]float64, len(c.X))
		grad(c.X, 1, d)
		assertClose(t, name+": dlogits against PyTorch", d, ref[ci].DX, 1e-10)
		d2 := make([]float64, len(c.X))
		grad(c.X, 2.5, d2)
		x := append([]float64(nil), c.X...)
		checkGrad(t, name+": dlogits", x, []float64{2.5}, d2, func() []float64 { return []float64{loss(x)} })

		x32, t32 := make([]float32, len(c.X)), make([]float32, len(c.X))
		for i := range x32 {
			x32[i], t32[i] = float32(c.X[i]), float32(c.Target[i])
		}
		var l32 float32
		d32 := make([]float32, len(c.X))
		if c.Op == "focal" {
			l32 = FocalCrossEntropyProbs(c.N, c.K, x32, t32, c.Gamma)
			FocalCrossEntropyProbsBackward(c.N, c.K, x32, t32, c.Gamma, 1, d32)
		} else {
			l32 = BCEWithLogits(c.N, c.K, x32, t32, c.PosWeight, c.Gamma)
			BCEWithLogitsBackward(c.N, c.K, x32, t32, c.PosWeight, c.Gamma, 1, d32)
		}
		if math.Abs(float64(l32)-ref[ci].Loss) > 1e-5*max(1, math.Abs(ref[ci].Loss)) {
			t.Errorf("%s: float32 loss %g, PyTorch %g", name, l32, ref[ci].Loss)
		}
		for i, v := range d32 {
			if math.Abs(float64(v)-ref[ci].DX[i]) > 1e-5*max(1e-2, math.Abs(ref[ci].DX[i])) {
				t.Errorf("%s: float32 dlogits[%d] %g, PyTorch %g", name, i, v, ref[ci].DX[i])
				break
			}
		}
	}
}

// TestLossesConfident checks the losses where a prediction is all but certain: the
// focal terms' (1-p)^gamma stays exact (no cancellation to 0 where it is 1e-20, no
// NaN where it is 0 and gamma < 1), and the gradients are finite.
func TestLossesConfident(t *testing.T) {
	logits := []float64{50, 0, -3, 0, 46, 0}
	target := []float64{1, 0, 0, 0, 1, 0}
	for _, g := range []float64{0.5, 2} {
		l := FocalCrossEntropyProbs(2, 3, logits, target, g)
		// Row 1: 1-p = (e^0 + e^-3)/e^50 ~ 2e-22, its log-probability ~ -2e-22.
		q := (1 + math.Exp(-3)) / (math.Exp(50) + 1 + math.Exp(-3))
		q2 := 2 / (math.Exp(46) + 2)
		want := (math.Pow(q, g)*-math.Log1p(-q) + math.Pow(q2, g)*-math.Log1p(-q2)) / 2
		if math.Abs(l-want) > 1e-6*want || l == 0 {
			t.Errorf("gamma %g: focal loss %g, want %g", g, l, want)
		}
		d := make([]float64, 6)
		FocalCrossEntropyProbsBackward(2, 3, logits, target, g, 1, d)
		for i, v := range d {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("gamma %g: dlogits[%d] = %v", g, i, v)
			}
		}
		bx := []float64{800, -800}
		by := []float64{1, 0}
		if l := BCEWithLogits(1, 2, bx, by, nil, g); l != 0 || math.IsNaN(l) {
			t.Errorf("gamma %g: BCE of certain right answers %g, want 0", g, l)
		}
		BCEWithLogitsBackward(1, 2, bx, by, []float64{3, 3}, g, 1, d[:2])
		if d[0] != 0 || d[1] != 0 {
			t.Errorf("gamma %g: BCE gradient of certain right answers %v, want 0", g, d[:2])
		}
	}
}
