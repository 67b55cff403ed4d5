"""Independent check of models made by headbuilder.Append (run by headbuilder's tests).

Usage: /usr/bin/python3 check_head.py MANIFEST.json

The manifest lists the models the Go test wrote, each with the spec it used, the opset,
the name and inferred shape of the base's output, and the head initializers Append made.
For each model this script, using only onnx 1.12 and numpy (no Go code, no PyTorch):

  1. runs the ONNX checker with full_check (strict shape inference included);
  2. checks the single graph output is "logits", [N, classes], and the opset kept;
  3. checks the head's initializers, read with onnx.numpy_helper, have the names, dtype,
     shapes and exact values the Go side made;
  4. runs the head's nodes, as written in the graph, with a small numpy interpreter from
     random base features, with random biases so their wiring counts, and compares the
     logits with the head's math written out from the spec (PyTorch Linear layout:
     y = x W^T + b).

Prints one line per failure and exits 1 if any; prints "ok N" otherwise.
"""

import json
import sys

import numpy as np
import onnx
from onnx import checker, numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_head(graph, env, params):
    """Interprets the head's nodes (names starting with "head.") in graph order."""
    dropouts = []
    for node in graph.node:
        if not node.name.startswith("head."):
            continue
        at = attrs(node)
        ins = [env[i] if i in env else params[i] for i in node.input]
        op = node.op_type
        if op == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "GlobalMaxPool":
            y = ins[0].max(axis=(2, 3), keepdims=True)
        elif op == "Flatten":
            axis = at.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:axis])), -1)
        elif op == "Gemm":
            a, b = ins[0], ins[1]
            if at.get("transA", 0):
                a = a.T
            if at.get("transB", 0):
                b = b.T
            y = at.get("alpha", 1.0) * (a @ b)
            if len(ins) > 2:
                y = y + at.get("beta", 1.0) * ins[2]
        elif op == "Relu":
            y = np.maximum(ins[0], 0)
        elif op == "LeakyRelu":
            y = np.where(ins[0] >= 0, ins[0], at.get("alpha", 0.01) * ins[0])
        elif op == "Tanh":
            y = np.tanh(ins[0])
        elif op == "Sigmoid":
            y = 1 / (1 + np.exp(-ins[0]))
        elif op == "Dropout":
            ratio = at["ratio"] if "ratio" in at else float(ins[1])
            dropouts.append(np.float32(ratio))
            y = ins[0]  # inference mode
        else:
            raise AssertionError(f"unexpected op {op} in the head")
        assert len(node.output) == 1, f"node {node.name} has {len(node.output)} outputs"
        env[node.output[0]] = y
    return env["logits"], dropouts


def reference(spec, x, params):
    """The head's math written out from the spec."""
    if spec["pool"] == "avg":
        x = x.mean(axis=(2, 3))
    elif spec["pool"] == "max":
        x = x.max(axis=(2, 3))
    h = x.reshape(x.shape[0], -1)
    act = {
        "relu": lambda v: np.maximum(v, 0),
        "leaky_relu": lambda v: np.where(v >= 0, v, 0.01 * v),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "none": lambda v: v,
    }[spec["activation"]]
    for i in range(len(spec["dense"])):
        h = act(h @ params[f"head.dense{i}.weight"].T + params[f"head.dense{i}.bias"])
    return h @ params["head.logits.weight"].T + params["head.logits.bias"]


def check(case):
    model = onnx.load(case["file"])
    checker.check_model(model, full_check=True)
    g = model.graph
    spec = case["spec"]

    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    assert opsets.get("ai.onnx") == case["opset"], f"opset {opsets}, want {case['opset']}"

    assert [o.name for o in g.output] == ["logits"], f"outputs {[o.name for o in g.output]}"
    dims = g.output[0].type.tensor_type.shape.dim
    got = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]
    assert got == ["N", spec["classes"]], f"logits shape {got}"

    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    head = {k for k in inits if k.startswith("head.")}
    want = case["initializers"]
    assert head == set(want), f"head initializers {sorted(head)}, want {sorted(want)}"
    for name, w in want.items():
        a = inits[name]
        assert a.dtype == np.float32, f"{name}: dtype {a.dtype}"
        assert list(a.shape) == w["dims"], f"{name}: shape {list(a.shape)}, want {w['dims']}"
        np.testing.assert_array_equal(a.reshape(-1), np.array(w["values"], dtype=np.float32).reshape(-1),
                                      err_msg=name)

    rng = np.random.default_rng(0)
    params = dict(inits)
    for name in list(params):
        if name.startswith("head.") and name.endswith(".bias"):
            params[name] = rng.standard_normal(params[name].shape).astype(np.float32)
    x = rng.standard_normal(case["base_output_shape"]).astype(np.float32)
    logits, dropouts = run_head(g, {case["base_output"]: x}, params)
    want_logits = reference(spec, x, params)
    assert logits.shape == (x.shape[0], spec["classes"]), f"logits {logits.shape}"
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-5)

    n_drop = 0 if spec["dropout"] == 0 else max(len(spec["dense"]), 1)
    assert len(dropouts) == n_drop, f"{len(dropouts)} Dropout nodes, want {n_drop}"
    for r in dropouts:
        assert r == np.float32(spec["dropout"]), f"dropout ratio {r}, want {spec['dropout']}"


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    failures = []
    for case in cases:
        try:
            check(case)
        except Exception as e:  # report every model, not just the first
            failures.append(f"{case['file']}: {type(e).__name__}: {e}")
    for msg in failures:
        print(msg)
    if failures:
        sys.exit(1)
    print("ok", len(cases))


if __name__ == "__main__":
    main()
