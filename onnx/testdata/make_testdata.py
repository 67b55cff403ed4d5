#!/usr/bin/python3
"""Regenerates the small ONNX fixtures of package toolkit/onnx.

Run with Debian's interpreter, which has torch 1.13 and onnx 1.12:

    /usr/bin/python3 onnx/testdata/make_testdata.py

Every fixture is written next to this script. Facts the Go tests check that our own
code must not produce (parameter counts, per-layer output shapes, tensor values) are
written by this script too, into *.json files, computed by torch and numpy.
"""

import json
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def path(*names):
    return os.path.join(HERE, *names)


def save(model, name, check=True):
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, path(name))


class TinyVGG(torch.nn.Module):
    """A VGG-shaped network: two conv blocks and a torchvision-style classifier."""

    def __init__(self, classes=5):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2, 2),
            torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2, 2, ceil_mode=True),
        )
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(8 * 4 * 4, 16), torch.nn.ReLU(), torch.nn.Dropout(),
            torch.nn.Linear(16, classes),
        )

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class ViewNet(torch.nn.Module):
    """Flattens with x.view(x.size(0), -1): the Shape->Gather->Unsqueeze->Concat->Reshape
    chain of PyTorch exports with a dynamic batch."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = torch.nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 2, ceil_mode=True)
        return self.fc(x.view(x.size(0), -1))


class GapNet(torch.nn.Module):
    """A ResNet-shaped tail: conv, global average pooling, fully connected."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(x, 3, 2, 1)
        x = torch.relu(self.conv2(x) + x)
        return self.fc(torch.flatten(self.pool(x), 1))


def export(module, name, shape, opset):
    """Exports module with a dynamic batch dimension "N" and records reference facts:
    the parameter count and the output shape of every leaf module, for batch 2."""
    torch.manual_seed(0)
    module = module.eval()
    x = torch.randn(*shape)
    torch.onnx.export(module, x, path(name + ".onnx"), opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    shapes = {}
    hooks = []
    for mname, mod in module.named_modules():
        if len(list(mod.children())) == 0:
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, mname=mname: shapes.__setitem__(mname, list(o.shape))))
    batch2 = torch.randn(2, *shape[1:])
    with torch.no_grad():
        out = module(batch2)
    for h in hooks:
        h.remove()
    facts = {
        "params": sum(p.numel() for p in module.parameters()),
        "input_shape": [2] + list(shape[1:]),
        "output_shape": list(out.shape),
        "module_output_shapes": shapes,
    }
    with open(path(name + ".json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
    onnx.checker.check_model(onnx.load(path(name + ".onnx")))


def dtypes_model():
    """Initializers of many element types, stored both as raw_data and as typed fields,
    each passed through an Identity to a graph output."""
    rng = np.random.default_rng(1)
    arrays = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f16": rng.standard_normal((3,)).astype(np.float16),
        "f64": rng.standard_normal((2, 2)).astype(np.float64),
        "i8": np.array([-128, -1, 0, 127], dtype=np.int8),
        "u8": np.array([0, 1, 200, 255], dtype=np.uint8),
        "i16": np.array([-32768, 5, 32767], dtype=np.int16),
        "u16": np.array([0, 65535], dtype=np.uint16),
        "i32": np.array([[-7, 8], [2**31 - 1, -2**31]], dtype=np.int32),
        "u32": np.array([0, 2**32 - 1], dtype=np.uint32),
        "i64": np.array([-(2**62), 3, 2**62], dtype=np.int64),
        "u64": np.array([1, 2**63 + 5], dtype=np.uint64),
        "b": np.array([True, False, True], dtype=np.bool_),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    inits = []
    expected = {}
    for name, a in arrays.items():
        # numpy_helper.from_array writes raw_data.
        inits.append(numpy_helper.from_array(a, "raw_" + name))
        # helper.make_tensor with raw=False writes the typed fields.
        dt = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype]
        vals = a.flatten().tolist()  # make_tensor converts float16 values to bits itself
        inits.append(helper.make_tensor("typed_" + name, dt, a.shape, vals))
        if a.dtype.kind == "f":
            values = [float(v) for v in a.astype(np.float32).flatten()]
        elif a.dtype == np.uint64:
            values = [int(v) - 2**64 if int(v) >= 2**63 else int(v) for v in a.flatten()]
        else:
            values = [int(v) for v in a.flatten()]
        expected[name] = {"dims": list(a.shape), "values": values,
                          "type": int(dt)}
    # bfloat16: the upper half of float32 bits, with typed int32_data.
    bf = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)
    inits.append(helper.make_tensor("typed_bf16", TensorProto.BFLOAT16, [3], bf.tolist()))
    inits.append(helper.make_tensor("raw_bf16", TensorProto.BFLOAT16, [3], bf_bits.tobytes(), raw=True))
    expected["bf16"] = {"dims": [3], "values": [float(v) for v in bf], "type": TensorProto.BFLOAT16}

    nodes, outputs = [], []
    for t in inits:
        out = t.name + "_out"
        nodes.append(helper.make_node("Identity", [t.name], [out], name="id_" + t.name))
        outputs.append(helper.make_tensor_value_info(out, t.data_type, list(t.dims)))
    graph = helper.make_graph(nodes, "dtypes", [], outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="make_testdata.py")
    model.ir_version = 7
    helper.set_model_props(model, {"purpose": "dtype fixture", "author": "toolkit"})
    save(model, "dtypes.onnx")
    with open(path("dtypes.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def small_graph(nodes, inits=(), name="g", opset=13, inputs=None, outputs=None):
    inputs = inputs if inputs is not None else [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    outputs = outputs if outputs is not None else [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="make_testdata.py")
    model.ir_version = 7
    return model


def graph_fixtures():
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    b = numpy_helper.from_array(np.ones(4, dtype=np.float32), "b")

    # Nodes out of topological order, some without names.
    nodes = [
        helper.make_node("Relu", ["h2"], ["y"]),
        helper.make_node("Add", ["h1", "b"], ["h2"], name="add"),
        helper.make_node("MatMul", ["x", "w"], ["h1"]),
    ]
    save(small_graph(nodes, [w, b]), "unsorted.onnx", check=False)

    # A node input nobody produces.
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h1"], name="MatMul_0"),
        helper.make_node("Add", ["h1", "w3"], ["y"], name="Add_1"),
    ]
    save(small_graph(nodes, [w]), "missing_init.onnx", check=False)

    # A cycle: a -> b -> a.
    nodes = [
        helper.make_node("Add", ["x", "t2"], ["t1"], name="a"),
        helper.make_node("Relu", ["t1"], ["t2"], name="b"),
        helper.make_node("Identity", ["t2"], ["y"], name="c"),
    ]
    save(small_graph(nodes), "cycle.onnx", check=False)

    # An operator shape inference does not know.
    nodes = [helper.make_node("Einsum", ["x", "w"], ["y"], name="weird", equation="ij,jk->ik")]
    save(small_graph(nodes, [w]), "unknown_op.onnx")

    # A Gemm whose inner dimensions disagree.
    wbad = numpy_helper.from_array(np.zeros((5, 3), dtype=np.float32), "wbad")
    nodes = [helper.make_node("Gemm", ["x", "wbad"], ["y"], name="Gemm_12")]
    save(small_graph(nodes, [wbad], outputs=[
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]), "gemm_mismatch.onnx")

    # An If node with two subgraphs, to exercise graph attributes.
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="then_relu")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"], name="else_neg")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 4])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = [helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)]
    save(small_graph(nodes, [cond]), "if.onnx")


def external_fixtures():
    """A model whose weights live in external files: one with offsets into one file,
    one whose data file is missing, and one whose location escapes the folder."""
    os.makedirs(path("external"), exist_ok=True)
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
    b = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    data = b"\0" * 16 + w.tobytes() + b.tobytes()

    def ext_tensor(name, arr, location, offset):
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(arr.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    def model(location):
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")]
        return small_graph(nodes, [ext_tensor("w", w, location, 16), ext_tensor("b", b, location, 16 + w.nbytes)],
                           outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])

    with open(path("external", "weights.bin"), "wb") as f:
        f.write(data)
    onnx.save(model("weights.bin"), path("external", "model.onnx"))
    onnx.checker.check_model(path("external", "model.onnx"))
    onnx.save(model("missing.bin"), path("external", "missing_data.onnx"))
    onnx.save(model("../make_testdata.py"), path("external", "escape.onnx"))
    with open(path("external.json"), "w") as f:
        json.dump({"w": [float(v) for v in w.flatten()], "b": [float(v) for v in b.flatten()]}, f)


def main():
    export(TinyVGG(), "tiny_vgg", (1, 3, 16, 16), 13)
    export(ViewNet(), "view_net", (1, 3, 16, 16), 9)
    export(GapNet(), "gap_net", (1, 3, 20, 20), 11)
    dtypes_model()
    graph_fixtures()
    external_fixtures()


if __name__ == "__main__":
    main()
