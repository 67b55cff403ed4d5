package kernels

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"toolkit/internal/testref"
)

// The PyTorch reference: Debian's torch 1.13 under /usr/bin/python3 (the
// python3 first on PATH is another interpreter without it). The test writes
// its inputs as JSON, runs torchScript once for all cases in float64, and
// reads the results back.
const torchPython = "/usr/bin/python3"

const torchScript = `
import json, sys
import torch
import torch.nn.functional as F

def T(c, k):
    return torch.tensor(c[k], dtype=torch.float64).reshape(c[k + "shape"])

def flat(t):
    return t.detach().reshape(-1).tolist()

out = []
for c in json.load(open(sys.argv[1])):
    op = c["op"]
    r = {}
    if op == "conv":
        x = T(c, "x").requires_grad_()
        w = T(c, "w").requires_grad_()
        b = T(c, "b").requires_grad_()
        t, l, bt, rt = c["pads"]
        y = F.conv2d(F.pad(x, (l, rt, t, bt)), w, b, stride=c["stride"], dilation=c["dil"])
        y.backward(torch.tensor(c["dy"], dtype=torch.float64).reshape(y.shape))
        r = {"y": flat(y), "shape": list(y.shape), "dx": flat(x.grad), "dw": flat(w.grad), "db": flat(b.grad)}
    elif op == "maxpool":
        x = T(c, "x").requires_grad_()
        y, idx = F.max_pool2d(x, c["k"], c["stride"], c["pad"], c["dil"], ceil_mode=c["ceil"], return_indices=True)
        y.backward(torch.tensor(c["dy"], dtype=torch.float64).reshape(y.shape))
        r = {"y": flat(y), "shape": list(y.shape), "idx": idx.reshape(-1).tolist(), "dx": flat(x.grad)}
    elif op == "avgpool":
        x = T(c, "x").requires_grad_()
        y = F.avg_pool2d(x, c["k"], c["stride"], c["pad"], ceil_mode=c["ceil"], count_include_pad=c["include"])
        y.backward(torch.tensor(c["dy"], dtype=torch.float64).reshape(y.shape))
        r = {"y": flat(y), "shape": list(y.shape), "dx": flat(x.grad)}
    elif op == "bn":
        x = T(c, "x").requires_grad_()
        C = x.shape[1]
        bn = torch.nn.BatchNorm2d(C, eps=c["eps"], momentum=1 - c["momentum"]).double()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(c["scale"], dtype=torch.float64))
            bn.bias.copy_(torch.tensor(c["bias"], dtype=torch.float64))
            bn.running_mean.copy_(torch.tensor(c["rm"], dtype=torch.float64))
            bn.running_var.copy_(torch.tensor(c["rv"], dtype=torch.float64))
        bn.train()
        y = bn(x)
        y.backward(torch.tensor(c["dy"], dtype=torch.float64).reshape(y.shape))
        r = {"y": flat(y), "dx": flat(x.grad), "dscale": flat(bn.weight.grad), "dbias": flat(bn.bias.grad),
             "rm": flat(bn.running_mean), "rv": flat(bn.running_var)}
    elif op == "softmax":
        x = T(c, "x").requires_grad_()
        dy = torch.tensor(c["dy"], dtype=torch.float64).reshape(x.shape)
        y = torch.softmax(x, dim=1)
        y.backward(dy)
        r = {"y": flat(y), "dx": flat(x.grad)}
        x.grad = None
        ly = torch.log_softmax(x, dim=1)
        ly.backward(dy)
        r.update({"logy": flat(ly), "logdx": flat(x.grad)})
    elif op == "ce":
        x = T(c, "x").requires_grad_()
        loss = F.cross_entropy(x, torch.tensor(c["labels"]), label_smoothing=c["eps"])
        loss.backward()
        r = {"loss": loss.item(), "dx": flat(x.grad)}
    out.append(r)
json.dump(out, open(sys.argv[2], "w"))
`

// torchResult is one case's outputs.
type torchResult map[string]json.RawMessage

func (r torchResult) floats(t *testing.T, k string) []float64 {
	t.Helper()
	var v []float64
	if err := json.Unmarshal(r[k], &v); err != nil {
		t.Fatalf("torch result %q: %v", k, err)
	}
	return v
}

func (r torchResult) ints(t *testing.T, k string) []int {
	t.Helper()
	var v []int
	if err := json.Unmarshal(r[k], &v); err != nil {
		t.Fatalf("torch result %q: %v", k, err)
	}
	return v
}

var torchAvailable = sync.OnceValue(func() error {
	if _, err := os.Stat(torchPython); err != nil {
		return err
	}
	out, err := exec.Command(torchPython, "-c", "import torch").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
})

// runTorch evaluates the cases with PyTorch, skipping the test when torch
// cannot be run.
func runTorch(t *testing.T, cases []map[string]any) []torchResult {
	t.Helper()
	var res []torchResult
	runTorchScript(t, torchScript, cases, &res)
	return res
}

// runTorchScript runs a PyTorch reference script with 1 thread: it reads the cases as
// JSON from the file of its first argument and writes its results as JSON to the file
// of its second, one per case, which are decoded into res (a pointer to a slice).
// Without torch the test fails under CI and is skipped elsewhere (testref.Missing).
func runTorchScript(t *testing.T, script string, cases, res any) {
	t.Helper()
	if err := torchAvailable(); err != nil {
		testref.Missing(t, "PyTorch reference unavailable (%s with torch; on Debian: apt-get install python3-torch): %v", torchPython, err)
	}
	dir := t.TempDir()
	in, out, path := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json"), filepath.Join(dir, "ref.py")
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{in: data, path: []byte(script)} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(torchPython, path, in, out)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("PyTorch reference failed: %v\n%s", err, msg)
	}
	if data, err = os.ReadFile(out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, res); err != nil {
		t.Fatal(err)
	}
	if got, want := reflect.ValueOf(res).Elem().Len(), reflect.ValueOf(cases).Len(); got != want {
		t.Fatalf("PyTorch returned %d results for %d cases", got, want)
	}
}

const torchTol = 1e-12

// TestAgainstPyTorch checks forward values and gradients against PyTorch in
// float64: convolution (asymmetric pads through F.pad), max pooling in ceil
// mode with its indices, average pooling in ceil mode with
// count_include_pad both ways (including windows overhanging the padding),
// batch norm training with the running-statistics update, softmax,
// log-softmax and cross-entropy with label smoothing.
func TestAgainstPyTorch(t *testing.T) {
	rng := newRNG(50)
	var cases []map[string]any
	var checks []func(t *testing.T, r torchResult)

	// Convolutions.
	for _, g := range []Conv2DParams{
		{N: 2, C: 3, H: 7, W: 6, M: 4, KH: 3, KW: 2, StrideH: 2, StrideW: 1, DilH: 1, DilW: 2, PadTop: 1, PadLeft: 2, PadBottom: 0, PadRight: 1},
		{N: 1, C: 2, H: 9, W: 9, M: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2, DilH: 2, DilW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2},
		{N: 2, C: 4, H: 5, W: 5, M: 3, KH: 1, KW: 1},
	} {
		p := g.WithOutSize().norm()
		x, w, b := randn(rng, p.XLen()), randn(rng, p.WLen()), randn(rng, p.M)
		dy := randn(rng, p.YLen())
		cases = append(cases, map[string]any{
			"op": "conv", "x": x, "xshape": []int{p.N, p.C, p.H, p.W}, "w": w, "wshape": []int{p.M, p.C, p.KH, p.KW},
			"b": b, "bshape": []int{p.M}, "dy": dy, "pads": []int{p.PadTop, p.PadLeft, p.PadBottom, p.PadRight},
			"stride": []int{p.StrideH, p.StrideW}, "dil": []int{p.DilH, p.DilW},
		})
		checks = append(checks, func(t *testing.T, r torchResult) {
			what := fmt.Sprintf("conv %+v", p)
			if s := r.ints(t, "shape"); !slices.Equal(s, []int{p.N, p.M, p.OutH, p.OutW}) {
				t.Fatalf("%s: torch shape %v", what, s)
			}
			y := make([]float64, p.YLen())
			Conv2DForward(p, x, w, b, y)
			assertClose(t, what+" y", y, r.floats(t, "y"), torchTol)
			dx, dw, db := make([]float64, p.XLen()), make([]float64, p.WLen()), make([]float64, p.M)
			Conv2DBackwardData(p, w, dy, dx)
			Conv2DBackwardWeight(p, x, dy, dw)
			Conv2DBackwardBias(p, dy, db)
			assertClose(t, what+" dx", dx, r.floats(t, "dx"), torchTol)
			assertClose(t, what+" dw", dw, r.floats(t, "dw"), torchTol)
			assertClose(t, what+" db", db, r.floats(t, "db"), torchTol)
		})
	}

	// Pooling in ceil mode; PyTorch takes symmetric pads only.
	type pg struct{ n, c, h, w, k, s, pad, dil int }
	for _, g := range []pg{
		{2, 2, 7, 8, 3, 2, 1, 1},
		{1, 3, 6, 6, 3, 2, 1, 1}, // last window overhangs the padding
		{2, 1, 9, 10, 3, 2, 1, 2},
		{1, 2, 5, 7, 2, 2, 0, 1},
		{1, 2, 8, 8, 4, 3, 2, 1},
	} {
		base := Pool2DParams{N: g.n, C: g.c, H: g.h, W: g.w, KH: g.k, KW: g.k, StrideH: g.s, StrideW: g.s, DilH: g.dil, DilW: g.dil,
			PadTop: g.pad, PadLeft: g.pad, PadBottom: g.pad, PadRight: g.pad}.WithOutSize(true)
		shape := []int{g.n, g.c, g.h, g.w}
		x := distinct(rng, base.XLen())
		dy := randn(rng, base.YLen())
		cases = append(cases, map[string]any{"op": "maxpool", "x": x, "xshape": shape, "k": g.k, "stride": g.s, "pad": g.pad, "dil": g.dil, "ceil": true, "dy": dy})
		checks = append(checks, func(t *testing.T, r torchResult) {
			p := base
			what := fmt.Sprintf("maxpool %+v", g)
			if s := r.ints(t, "shape"); !slices.Equal(s, []int{p.N, p.C, p.OutH, p.OutW}) {
				t.Fatalf("%s: torch shape %v, ours %dx%d", what, s, p.OutH, p.OutW)
			}
			y, arg := make([]float64, p.YLen()), make([]int32, p.YLen())
			MaxPool2DForward(p, x, y, arg)
			assertClose(t, what+" y", y, r.floats(t, "y"), 0)
			if idx := r.ints(t, "idx"); !slices.Equal(idx, intsOf(arg)) {
				t.Errorf("%s: argmax %v, torch %v", what, arg, idx)
			}
			dx := make([]float64, p.XLen())
			MaxPool2DBackward(p, x, dy, dx)
			assertClose(t, what+" dx", dx, r.floats(t, "dx"), torchTol)
		})
		if g.dil != 1 {
			continue // avg_pool2d has no dilation
		}
		for _, inc := range []bool{true, false} {
			x := randn(rng, base.XLen())
			cases = append(cases, map[string]any{"op": "avgpool", "x": x, "xshape": shape, "k": g.k, "stride": g.s, "pad": g.pad, "ceil": true, "include": inc, "dy": dy})
			checks = append(checks, func(t *testing.T, r torchResult) {
				p := base
				p.CountIncludePad = inc
				what := fmt.Sprintf("avgpool %+v count_include_pad=%v", g, inc)
				if s := r.ints(t, "shape"); !slices.Equal(s, []int{p.N, p.C, p.OutH, p.OutW}) {
					t.Fatalf("%s: torch shape %v, ours %dx%d", what, s, p.OutH, p.OutW)
				}
				y := make([]float64, p.YLen())
				AvgPool2DForward(p, x, y)
				assertClose(t, what+" y", y, r.floats(t, "y"), torchTol)
				dx := make([]float64, p.XLen())
				AvgPool2DBackward(p, dy, dx)
				assertClose(t, what+" dx", dx, r.floats(t, "dx"), torchTol)
			})
		}
	}

	// Batch norm in training mode.
	for _, p := range []BatchNormParams{{N: 4, C: 3, HW: 10, Epsilon: 1e-5, Momentum: 0.9}, {N: 2, C: 2, HW: 1, Epsilon: 1e-3, Momentum: 0.7}} {
		h := 1
		if p.HW == 10 {
			h = 2
		}
		x := randn(rng, p.XLen())
		for i := range x {
			x[i] = 2*x[i] + 0.5
		}
		scale, bias, rm, dy := randn(rng, p.C), randn(rng, p.C), randn(rng, p.C), randn(rng, p.XLen())
		rv := make([]float64, p.C)
		for i := range rv {
			rv[i] = 0.5 + rng.Float64()
		}
		cases = append(cases, map[string]any{"op": "bn", "x": x, "xshape": []int{p.N, p.C, h, p.HW / h}, "scale": scale, "bias": bias,
			"rm": rm, "rv": rv, "eps": p.Epsilon, "momentum": p.Momentum, "dy": dy})
		checks = append(checks, func(t *testing.T, r torchResult) {
			what := fmt.Sprintf("batchnorm %+v", p)
			y, mean, inv := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
			rm2, rv2 := slices.Clone(rm), slices.Clone(rv)
			BatchNormTrainForward(p, x, scale, bias, y, mean, inv, rm2, rv2)
			assertClose(t, what+" y", y, r.floats(t, "y"), torchTol)
			assertClose(t, what+" running mean", rm2, r.floats(t, "rm"), torchTol)
			assertClose(t, what+" running var", rv2, r.floats(t, "rv"), torchTol)
			dx, ds, db := make([]float64, p.XLen()), make([]float64, p.C), make([]float64, p.C)
			BatchNormTrainBackwardData(p, x, scale, mean, inv, dy, dx)
			BatchNormTrainBackwardScale(p, x, mean, inv, dy, ds)
			BatchNormBackwardBias(p, dy, db)
			assertClose(t, what+" dx", dx, r.floats(t, "dx"), 1e-11)
			assertClose(t, what+" dscale", ds, r.floats(t, "dscale"), torchTol)
			assertClose(t, what+" dbias", db, r.floats(t, "dbias"), torchTol)
		})
	}

	// Softmax and log-softmax.
	{
		rows, cols := 4, 7
		x, dy := randn(rng, rows*cols), randn(rng, rows*cols)
		for i := range x {
			x[i] *= 6
		}
		cases = append(cases, map[string]any{"op": "softmax", "x": x, "xshape": []int{rows, cols}, "dy": dy})
		checks = append(checks, func(t *testing.T, r torchResult) {
			y, dx := make([]float64, len(x)), make([]float64, len(x))
			SoftmaxForward(rows, cols, x, y)
			assertClose(t, "softmax y", y, r.floats(t, "y"), torchTol)
			SoftmaxBackward(rows, cols, y, dy, dx)
			assertClose(t, "softmax dx", dx, r.floats(t, "dx"), torchTol)
			LogSoftmaxForward(rows, cols, x, y)
			assertClose(t, "logsoftmax y", y, r.floats(t, "logy"), torchTol)
			LogSoftmaxBackward(rows, cols, y, dy, dx)
			assertClose(t, "logsoftmax dx", dx, r.floats(t, "logdx"), torchTol)
		})
	}

	// Cross-entropy with label smoothing.
	for _, eps := range []float64{0, 0.1, 0.25} {
		n, k := 6, 5
		x := randn(rng, n*k)
		for i := range x {
			x[i] *= 4
		}
		labels := []int{0, 4, 2, 2, 1, 3}
		cases = append(cases, map[string]any{"op": "ce", "x": x, "xshape": []int{n, k}, "labels": labels, "eps": eps})
		checks = append(checks, func(t *testing.T, r torchResult) {
			what := fmt.Sprintf("cross-entropy eps=%g", eps)
			var want float64
			if err := json.Unmarshal(r["loss"], &want); err != nil {
				t.Fatal(err)
			}
			loss := SoftmaxCrossEntropy(n, k, x, labels, eps)
			assertClose(t, what+" loss", []float64{loss}, []float64{want}, torchTol)
			d := make([]float64, n*k)
			SoftmaxCrossEntropyBackward(n, k, x, labels, eps, 1.0, d)
			assertClose(t, what+" dlogits", d, r.floats(t, "dx"), torchTol)
		})
	}

	res := runTorch(t, cases)
	for i, check := range checks {
		check(t, res[i])
	}
}

func intsOf(s []int32) []int {
	o := make([]int, len(s))
	for i, v := range s {
		o[i] = int(v)
	}
	return o
}
