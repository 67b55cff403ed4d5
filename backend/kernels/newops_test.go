package kernels

import (
	"math"
	"testing"
)

// The kernels of unary.go, binary.go, reduce.go, slice.go and layernorm.go against
// PyTorch (float64, autograd for the gradients) and against finite differences.

const newOpsScript = `
import json, sys, math
import torch
import torch.nn.functional as F

def T(c, k):
    return torch.tensor(c[k], dtype=torch.float64).reshape(c[k + "shape"])

def flat(t):
    return t.detach().reshape(-1).tolist()

out = []
for c in json.load(open(sys.argv[1])):
    op = c["op"]
    x = T(c, "x").requires_grad_()
    if op == "unary":
        f, a, b, g = c["f"], c["alpha"], c["beta"], c["gamma"]
        y = {"Exp": lambda: torch.exp(x), "Log": lambda: torch.log(x), "Sqrt": lambda: torch.sqrt(x),
             "Neg": lambda: -x, "Abs": lambda: torch.abs(x), "Reciprocal": lambda: torch.reciprocal(x),
             "Erf": lambda: torch.erf(x), "Gelu": lambda: F.gelu(x), "GeluTanh": lambda: F.gelu(x, approximate="tanh"),
             "Elu": lambda: F.elu(x, alpha=a), "Selu": lambda: g * torch.where(x > 0, x, a * torch.expm1(x)),
             "Softplus": lambda: F.softplus(x), "Softsign": lambda: F.softsign(x),
             "HardSigmoid": lambda: torch.clamp(a * x + b, 0, 1), "HardSwish": lambda: F.hardswish(x),
             "Clip": lambda: F.hardtanh(x, c["lo"], c["hi"]), "SiLU": lambda: F.silu(x)}[f]()
        dy = T(c, "dy")
        y.backward(dy)
        out.append({"y": flat(y), "dx": flat(x.grad)})
    elif op in ("pow", "prelu"):
        w = T(c, "w").requires_grad_()
        y = torch.pow(x, w) if op == "pow" else torch.where(x > 0, x, x * w)
        y.backward(T(c, "dy"))
        out.append({"y": flat(y), "dx": flat(x.grad), "dw": flat(w.grad)})
    elif op == "reduce":
        dims = c["axes"]
        y = {"sum": lambda: torch.sum(x, dims, keepdim=True), "mean": lambda: torch.mean(x, dims, keepdim=True),
             "max": lambda: torch.amax(x, dims, keepdim=True)}[c["f"]]()
        y.backward(T(c, "dy"))
        out.append({"y": flat(y), "dx": flat(x.grad)})
    elif op == "layernorm":
        w, b = T(c, "w").requires_grad_(), T(c, "b").requires_grad_()
        y = F.layer_norm(x, list(w.shape), w, b, eps=c["eps"])
        y.backward(T(c, "dy"))
        out.append({"y": flat(y), "dx": flat(x.grad), "dw": flat(w.grad), "db": flat(b.grad)})
    elif op == "slice":
        idx = tuple(slice(s, e, st) for s, e, st in c["slices"])
        y = x[idx]
        if c["flip"]:
            y = torch.flip(x, [len(x.shape) - 1])[idx]
        y.backward(T(c, "dy"))
        out.append({"y": flat(y), "shape": list(y.shape), "dx": flat(x.grad)})
    elif op == "tile":
        y = x.repeat(*c["repeats"])
        y.backward(T(c, "dy"))
        out.append({"y": flat(y), "dx": flat(x.grad)})
json.dump(out, open(sys.argv[2], "w"))
`

// runNewOpsTorch runs newOpsScript on the cases.
func runNewOpsTorch(t *testing.T, cases []map[string]any) []torchResult {
	t.Helper()
	var res []torchResult
	runTorchScript(t, newOpsScript, cases, &res)
	return res
}

// awayFrom moves values within 1e-3 of any kink to 2e-3 from it, so that finite
// differences never straddle one.
func awayFrom(xs []float64, kinks ...float64) []float64 {
	for i, v := range xs {
		for _, k := range kinks {
			if math.Abs(v-k) < 1e-3 {
				xs[i] = k + math.Copysign(2e-3, v-k)
			}
		}
	}
	return xs
}

func TestUnaryAgainstPyTorch(t *testing.T) {
	rng := newRNG(81)
	type unaryCase struct {
		u    Unary
		x    []float64 // scaled to the function's domain
		name string
	}
	mk := func(n int, scale, shift float64, kinks ...float64) []float64 {
		x := randn(rng, n)
		for i := range x {
			x[i] = x[i]*scale + shift
		}
		return awayFrom(x, kinks...)
	}
	cases := []unaryCase{
		{u: Unary{Op: Exp}, x: mk(40, 3, 0)},
		{u: Unary{Op: Log}, x: mk(40, 2, 2.5)},
		{u: Unary{Op: Sqrt}, x: mk(40, 2, 2.5)},
		{u: Unary{Op: Neg}, x: mk(40, 3, 0)},
		{u: Unary{Op: Abs}, x: mk(40, 3, 0, 0)},
		{u: Unary{Op: Reciprocal}, x: mk(40, 2, 2.5)},
		{u: Unary{Op: Erf}, x: mk(40, 3, 0)},
		{u: Unary{Op: Gelu}, x: mk(40, 5, 0)},
		{u: Unary{Op: GeluTanh}, x: mk(40, 5, 0)},
		{u: Unary{Op: Elu, Alpha: 0.7}, x: mk(40, 3, 0, 0)},
		{u: Unary{Op: Selu, Alpha: 1.67326319217681884765625, Gamma: 1.05070102214813232421875}, x: mk(40, 3, 0, 0)},
		// PyTorch returns x itself above 20 (its threshold), ONNX ln(1+e^x): compare below.
		{u: Unary{Op: Softplus}, x: mk(40, 19, 0)},
		{u: Unary{Op: Softsign}, x: mk(40, 4, 0, 0)},
		{u: Unary{Op: HardSigmoid, Alpha: 0.2, Beta: 0.5}, x: mk(40, 4, 0, -2.5, 2.5)},
		{u: Unary{Op: HardSigmoid, Alpha: 1.0 / 6, Beta: 0.5}, x: mk(40, 5, 0, -3, 3)},
		{u: Unary{Op: HardSwish}, x: mk(40, 5, 0, -3, 3)},
		{u: Unary{Op: Clip, Lo: 0, Hi: 6}, x: mk(40, 5, 3, 0, 6)},
		{u: Unary{Op: Clip, Lo: -0.5, Hi: math.Inf(1)}, x: mk(40, 2, 0, -0.5)},
		// Beyond a block of the float32 path's (siluBlock), and far into both tails.
		{u: Unary{Op: SiLU}, x: mk(600, 6, 0)},
		{u: Unary{Op: SiLU}, x: mk(40, 40, 0)},
	}
	var reqs []map[string]any
	dys := make([][]float64, len(cases))
	for i, c := range cases {
		dys[i] = randn(rng, len(c.x))
		req := map[string]any{"op": "unary", "f": c.u.Op.String(), "x": c.x, "xshape": []int{len(c.x)},
			"dy": dys[i], "dyshape": []int{len(c.x)}, "alpha": c.u.Alpha, "beta": c.u.Beta, "gamma": c.u.Gamma,
			"lo": c.u.Lo, "hi": c.u.Hi}
		if math.IsInf(c.u.Hi, 1) {
			req["hi"] = 1e300
		}
		reqs = append(reqs, req)
	}
	res := runNewOpsTorch(t, reqs)
	for i, c := range cases {
		what := c.u.Op.String()
		y := make([]float64, len(c.x))
		UnaryForward(c.u, c.x, y)
		assertClose(t, what+" forward", y, res[i].floats(t, "y"), 1e-12)
		dx := make([]float64, len(c.x))
		UnaryBackward(c.u, c.x, y, dys[i], dx)
		assertClose(t, what+" backward", dx, res[i].floats(t, "dx"), 1e-12)
		// Given only the forward value UnaryBackwardReads names, and written over dy
		// (as the backend's executor calls it), the same.
		x, yy := c.x, y
		if readsX, readsY := UnaryBackwardReads(c.u.Op); !readsX {
			x = nil
		} else if !readsY {
			yy = nil
		}
		inPlace := append([]float64(nil), dys[i]...)
		UnaryBackward(c.u, x, yy, inPlace, inPlace)
		assertClose(t, what+" backward with only what it reads, over dy", inPlace, dx, 0)
		checkGrad(t, what+" finite differences", c.x, dys[i], dx, func() []float64 {
			out := make([]float64, len(c.x))
			UnaryForward(c.u, c.x, out)
			return out
		})
		// float32 agrees with float64 to float32 precision.
		x32, y32 := make([]float32, len(c.x)), make([]float32, len(c.x))
		for j, v := range c.x {
			x32[j] = float32(v)
		}
		UnaryForward(c.u, x32, y32)
		for j := range y32 {
			if d := math.Abs(float64(y32[j]) - y[j]); d > 1e-5*math.Max(1, math.Abs(y[j])) {
				t.Errorf("%s float32 forward [%d]: %v, float64 %v", what, j, y32[j], y[j])
				break
			}
		}
		dy32, dx32 := make([]float32, len(c.x)), make([]float32, len(c.x))
		for j, v := range dys[i] {
			dy32[j] = float32(v)
		}
		UnaryBackward(c.u, x32, y32, dy32, dx32)
		for j := range dx32 {
			if d := math.Abs(float64(dx32[j]) - dx[j]); d > 1e-5*math.Max(1, math.Abs(dx[j])) {
				t.Errorf("%s float32 backward [%d]: %v, float64 %v", what, j, dx32[j], dx[j])
				break
			}
		}
	}
}

func TestBinaryReduceSliceTileLayerNormAgainstPyTorch(t *testing.T) {
	rng := newRNG(82)
	var reqs []map[string]any
	var checks []func(r torchResult)

	// Pow and PRelu with broadcasting.
	for _, sh := range [][2][]int{{{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 3}, {}}, {{3, 1}, {1, 4}}} {
		xs, ws := sh[0], sh[1]
		out, _ := BroadcastShape(xs, ws)
		x := randn(rng, Size(xs))
		for i := range x {
			x[i] = 0.2 + 1.5*(x[i]+1) // positive bases: the exponent's gradient takes ln x
		}
		w := randn(rng, Size(ws))
		for i := range w {
			w[i] *= 2.5
		}
		dy := randn(rng, Size(out))
		reqs = append(reqs, map[string]any{"op": "pow", "x": x, "xshape": xs, "w": w, "wshape": ws, "dy": dy, "dyshape": out})
		checks = append(checks, func(r torchResult) {
			y := make([]float64, Size(out))
			PowForward(xs, x, ws, w, y)
			assertClose(t, "Pow forward", y, r.floats(t, "y"), 1e-12)
			dx, dw := make([]float64, len(x)), make([]float64, len(w))
			PowBackwardA(xs, x, ws, w, dy, dx)
			PowBackwardB(xs, x, ws, w, dy, dw)
			assertClose(t, "Pow dA", dx, r.floats(t, "dx"), 1e-12)
			assertClose(t, "Pow dB", dw, r.floats(t, "dw"), 1e-12)
			f := func() []float64 { o := make([]float64, Size(out)); PowForward(xs, x, ws, w, o); return o }
			checkGrad(t, "Pow dA finite differences", x, dy, dx, f)
			checkGrad(t, "Pow dB finite differences", w, dy, dw, f)
		})
		if Size(out) != Size(xs) {
			continue // PRelu's slope broadcasts to X only
		}
		xp := awayFrom(randn(rng, Size(xs)), 0)
		reqs = append(reqs, map[string]any{"op": "prelu", "x": xp, "xshape": xs, "w": w, "wshape": ws, "dy": dy, "dyshape": out})
		checks = append(checks, func(r torchResult) {
			y := make([]float64, Size(out))
			PReluForward(xs, xp, ws, w, y)
			assertClose(t, "PRelu forward", y, r.floats(t, "y"), 1e-12)
			dx, dw := make([]float64, len(xp)), make([]float64, len(w))
			PReluBackwardX(xs, xp, ws, w, dy, dx)
			PReluBackwardSlope(xs, xp, ws, w, dy, dw)
			assertClose(t, "PRelu dX", dx, r.floats(t, "dx"), 1e-12)
			assertClose(t, "PRelu dslope", dw, r.floats(t, "dw"), 1e-12)
			f := func() []float64 { o := make([]float64, Size(out)); PReluForward(xs, xp, ws, w, o); return o }
			checkGrad(t, "PRelu dX finite differences", xp, dy, dx, f)
			checkGrad(t, "PRelu dslope finite differences", w, dy, dw, f)
		})
	}

	// Reductions over assorted axis sets.
	for _, c := range []struct {
		shape, axes []int
	}{{[]int{2, 3, 4, 5}, []int{2, 3}}, {[]int{2, 3, 4}, []int{0, 2}}, {[]int{3, 4}, []int{1}}, {[]int{2, 3, 4}, []int{0, 1, 2}}, {[]int{4, 3}, []int{0}}} {
		for _, f := range []string{"sum", "mean", "max"} {
			shape, axes := c.shape, c.axes
			x := distinct(rng, Size(shape))
			kept := ReducedShape(shape, axes)
			dy := randn(rng, Size(kept))
			reqs = append(reqs, map[string]any{"op": "reduce", "f": f, "axes": axes, "x": x, "xshape": shape, "dy": dy, "dyshape": kept})
			checks = append(checks, func(r torchResult) {
				fwd := map[string]func(s, a []int, x, y []float64){"sum": ReduceSum[float64], "mean": ReduceMean[float64], "max": ReduceMax[float64]}[f]
				y := make([]float64, Size(kept))
				fwd(shape, axes, x, y)
				assertClose(t, "Reduce "+f+" forward", y, r.floats(t, "y"), 1e-12)
				dx := make([]float64, len(x))
				switch f {
				case "sum":
					ReduceSumBackward(shape, axes, dy, dx)
				case "mean":
					ReduceMeanBackward(shape, axes, dy, dx)
				case "max":
					ReduceMaxBackward(shape, axes, x, y, dy, dx)
				}
				assertClose(t, "Reduce "+f+" backward", dx, r.floats(t, "dx"), 1e-12)
				checkGrad(t, "Reduce "+f+" finite differences", x, dy, dx, func() []float64 {
					o := make([]float64, Size(kept))
					fwd(shape, axes, x, o)
					return o
				})
			})
		}
	}

	// Layer normalization over the last one and two axes.
	for _, c := range [][2]int{{6, 8}, {3, 20}} {
		rows, cols := c[0], c[1]
		x, w, b, dy := randn(rng, rows*cols), randn(rng, cols), randn(rng, cols), randn(rng, rows*cols)
		for i := range x {
			x[i] = 3*x[i] + 0.5
		}
		normShape := []int{cols}
		xShape := []int{rows, cols}
		if cols == 20 {
			normShape, xShape = []int{4, 5}, []int{rows, 4, 5}
		}
		reqs = append(reqs, map[string]any{"op": "layernorm", "eps": 1e-5, "x": x, "xshape": xShape, "w": w, "wshape": normShape,
			"b": b, "bshape": normShape, "dy": dy, "dyshape": xShape})
		checks = append(checks, func(r torchResult) {
			y, mean, inv := make([]float64, len(x)), make([]float64, rows), make([]float64, rows)
			LayerNormForward(rows, cols, 1e-5, x, w, b, y, mean, inv)
			assertClose(t, "LayerNorm forward", y, r.floats(t, "y"), 1e-12)
			dx, dw, db := make([]float64, len(x)), make([]float64, cols), make([]float64, cols)
			LayerNormBackwardData(rows, cols, x, w, mean, inv, dy, dx)
			LayerNormBackwardScale(rows, cols, x, mean, inv, dy, dw)
			LayerNormBackwardBias(rows, cols, dy, db)
			assertClose(t, "LayerNorm dX", dx, r.floats(t, "dx"), 1e-11)
			assertClose(t, "LayerNorm dScale", dw, r.floats(t, "dw"), 1e-11)
			assertClose(t, "LayerNorm dB", db, r.floats(t, "db"), 1e-11)
			f := func() []float64 {
				o, m, s := make([]float64, len(x)), make([]float64, rows), make([]float64, rows)
				LayerNormForward(rows, cols, 1e-5, x, w, b, o, m, s)
				return o
			}
			checkGrad(t, "LayerNorm dX finite differences", x, dy, dx, f)
			checkGrad(t, "LayerNorm dScale finite differences", w, dy, dw, f)
		})
	}

	// Strided slices, with a negative step along the last axis (PyTorch has no negative
	// steps: the reference flips the axis and slices forward).
	for _, c := range []struct {
		shape    []int
		p        SliceParams
		torch    [][3]int
		flipLast bool
	}{
		{shape: []int{4, 5, 6}, p: SliceParams{Out: []int{2, 5, 2}, Start: []int{1, 0, 1}, Step: []int{2, 1, 3}},
			torch: [][3]int{{1, 4, 2}, {0, 5, 1}, {1, 6, 3}}},
		{shape: []int{3, 7}, p: SliceParams{Out: []int{3, 3}, Start: []int{0, 5}, Step: []int{1, -2}},
			torch: [][3]int{{0, 3, 1}, {1, 7, 2}}, flipLast: true},
	} {
		p := c.p
		p.In = c.shape
		x := randn(rng, Size(c.shape))
		dy := randn(rng, Size(p.Out))
		reqs = append(reqs, map[string]any{"op": "slice", "slices": c.torch, "flip": c.flipLast, "x": x, "xshape": c.shape, "dy": dy, "dyshape": p.Out})
		checks = append(checks, func(r torchResult) {
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			y := make([]float64, Size(p.Out))
			SliceForward(p, x, y)
			assertClose(t, "Slice forward", y, r.floats(t, "y"), 0)
			dx := make([]float64, len(x))
			SliceBackward(p, dy, dx)
			assertClose(t, "Slice backward", dx, r.floats(t, "dx"), 0)
		})
	}

	// Tile.
	for _, c := range [][2][]int{{{2, 3}, {2, 1}}, {{2, 1, 3}, {1, 3, 2}}, {{4}, {3}}} {
		shape, rep := c[0], c[1]
		x := randn(rng, Size(shape))
		dy := randn(rng, Size(TileShape(shape, rep)))
		reqs = append(reqs, map[string]any{"op": "tile", "repeats": rep, "x": x, "xshape": shape, "dy": dy, "dyshape": TileShape(shape, rep)})
		checks = append(checks, func(r torchResult) {
			y := make([]float64, len(dy))
			TileForward(shape, rep, x, y)
			assertClose(t, "Tile forward", y, r.floats(t, "y"), 0)
			dx := make([]float64, len(x))
			TileBackward(shape, rep, dy, dx)
			assertClose(t, "Tile backward", dx, r.floats(t, "dx"), 1e-14)
		})
	}

	res := runNewOpsTorch(t, reqs)
	for i, check := range checks {
		check(res[i])
	}
}
