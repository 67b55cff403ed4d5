package kernels

import (
	"fmt"
	"math"
	"testing"
)

// probsTargets returns n random probability rows of k classes (some with zeros) and n
// rows that do not sum to one, to check the gradient's sum(target) term.
func probsTargets(n, k int, seed uint64) (probs, unnormalised []float64) {
	rng := newRNG(seed)
	probs, unnormalised = make([]float64, n*k), make([]float64, n*k)
	for i := 0; i < n; i++ {
		var s float64
		for j := 0; j < k; j++ {
			v := rng.Float64()
			if (i+j)%3 == 0 {
				v = 0
			}
			probs[i*k+j] = v
			unnormalised[i*k+j] = 2 * v
			s += v
		}
		for j := 0; j < k; j++ {
			probs[i*k+j] /= s
		}
	}
	return probs, unnormalised
}

// TestSoftmaxCrossEntropyProbs checks the probability-target form against its
// definition, against the label form with a smoothed one-hot target, and its gradient
// against finite differences.
func TestSoftmaxCrossEntropyProbs(t *testing.T) {
	rng := newRNG(32)
	n, k := 5, 4
	logits := randn(rng, n*k)
	for j := range logits {
		logits[j] *= 3
	}
	labels := []int{0, 3, 1, 1, 2}
	for _, eps := range []float64{0, 0.1, 0.3} {
		target := make([]float64, n*k)
		for i, y := range labels {
			for j := 0; j < k; j++ {
				target[i*k+j] = eps / float64(k)
			}
			target[i*k+y] += 1 - eps
		}
		loss := SoftmaxCrossEntropyProbs(n, k, logits, target)
		if want := SoftmaxCrossEntropy(n, k, logits, labels, eps); math.Abs(loss-want) > 1e-14 {
			t.Errorf("eps %g: smoothed one-hot target: loss %.17g, the label form %.17g", eps, loss, want)
		}
		d, want := make([]float64, n*k), make([]float64, n*k)
		SoftmaxCrossEntropyProbsBackward(n, k, logits, target, 1.5, d)
		SoftmaxCrossEntropyBackward(n, k, logits, labels, eps, 1.5, want)
		assertClose(t, fmt.Sprintf("eps %g: dlogits against the label form", eps), d, want, 1e-15)
	}
	probs, unnormalised := probsTargets(n, k, 9)
	for name, target := range map[string][]float64{"probabilities": probs, "unnormalised": unnormalised} {
		ls := make([]float64, n*k)
		LogSoftmaxForward(n, k, logits, ls)
		want := 0.0
		for i := range ls {
			want -= target[i] * ls[i]
		}
		want /= float64(n)
		if loss := SoftmaxCrossEntropyProbs(n, k, logits, target); math.Abs(loss-want) > 1e-14 {
			t.Errorf("%s: loss %g, want %g", name, loss, want)
		}
		d := make([]float64, n*k)
		SoftmaxCrossEntropyProbsBackward(n, k, logits, target, 2.5, d)
		checkGrad(t, name+" dlogits", logits, []float64{2.5}, d, func() []float64 {
			return []float64{SoftmaxCrossEntropyProbs(n, k, logits, target)}
		})
	}
	if l := SoftmaxCrossEntropyProbs[float64](0, 3, nil, nil); l != 0 {
		t.Errorf("no rows: loss %g, want 0", l)
	}
}

// probsScript computes nn.CrossEntropyLoss with class-probability targets (PyTorch
// >= 1.10) and its gradient, in float64, for each case of a JSON file.
const probsScript = `
import json, sys, torch
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    x = torch.tensor(c["x"], dtype=torch.float64).reshape(c["n"], c["k"]).requires_grad_(True)
    target = torch.tensor(c["target"], dtype=torch.float64).reshape(c["n"], c["k"])
    loss = torch.nn.CrossEntropyLoss()(x, target)
    loss.backward()
    out.append({"loss": loss.item(), "dx": x.grad.reshape(-1).tolist()})
json.dump(out, open(sys.argv[2], "w"))
`

// TestSoftmaxCrossEntropyProbsAgainstPyTorch checks the probability-target form
// against PyTorch's nn.CrossEntropyLoss with probability targets, float64 and float32.
func TestSoftmaxCrossEntropyProbsAgainstPyTorch(t *testing.T) {
	type tcase struct {
		N      int       `json:"n"`
		K      int       `json:"k"`
		X      []float64 `json:"x"`
		Target []float64 `json:"target"`
	}
	rng := newRNG(51)
	var cases []tcase
	for i, size := range [][2]int{{6, 5}, {3, 10}, {1, 2}} {
		n, k := size[0], size[1]
		x := randn(rng, n*k)
		for j := range x {
			x[j] *= 4
		}
		probs, _ := probsTargets(n, k, uint64(i+20))
		cases = append(cases, tcase{n, k, x, probs})
	}
	var res []struct {
		Loss float64   `json:"loss"`
		DX   []float64 `json:"dx"`
	}
	runTorchScript(t, probsScript, cases, &res)
	for i, c := range cases {
		what := fmt.Sprintf("[%d %d]", c.N, c.K)
		loss := SoftmaxCrossEntropyProbs(c.N, c.K, c.X, c.Target)
		assertClose(t, what+" loss", []float64{loss}, []float64{res[i].Loss}, torchTol)
		d := make([]float64, c.N*c.K)
		SoftmaxCrossEntropyProbsBackward(c.N, c.K, c.X, c.Target, 1.0, d)
		assertClose(t, what+" dlogits", d, res[i].DX, torchTol)

		x32, t32, d32 := make([]float32, len(c.X)), make([]float32, len(c.X)), make([]float32, len(c.X))
		for j := range c.X {
			x32[j], t32[j] = float32(c.X[j]), float32(c.Target[j])
		}
		if l := SoftmaxCrossEntropyProbs(c.N, c.K, x32, t32); math.Abs(float64(l)-res[i].Loss) > 1e-5*math.Max(1, math.Abs(res[i].Loss)) {
			t.Errorf("%s float32 loss %g, PyTorch %g", what, l, res[i].Loss)
		}
		SoftmaxCrossEntropyProbsBackward(c.N, c.K, x32, t32, 1, d32)
		for j, v := range d32 {
			if math.Abs(float64(v)-res[i].DX[j]) > 1e-6 {
				t.Errorf("%s float32 dlogits[%d] = %g, PyTorch %g", what, j, v, res[i].DX[j])
				break
			}
		}
	}
}
