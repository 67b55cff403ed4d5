#!/usr/bin/python3
"""Write the PyTorch fixtures of Pad's edge and reflect modes into testdata/pad/.

Run from the repository root with Debian's interpreter (torch 1.13.1, onnx 1.12):

    /usr/bin/python3 tools/make_pad_fixtures.py [--out testdata/pad]

The ONNX node tests of these modes (test_edge_pad, test_reflect_pad) use int32 data, which
the backend does not compute on, so these fixtures check the modes on float data, forward
and backward. For every case and every opset in (9, 13) it writes
testdata/pad/<case>_opset<k>/ in the layout of testdata/parity (see its README):

    model.onnx        torch.onnx.export of the module; at opset 13 the Constant, ConstantOfShape,
                      Concat, Reshape, Slice, Transpose and Cast nodes that compute each Pad's
                      pads input are replaced by one Constant holding the pads (the backend
                      has no ConstantOfShape or Slice yet)
    input.npy         float32 input
    output.npy        forward output computed in float64, saved as float32
    loss_weight.npy   fixed random R, same shape as the output; L = sum(output * R)
    grad_input.npy    dL/dinput (float64 computation, saved as float32)
    grads/<name>.npy  dL/dparam for every parameter (the pad_conv case only)

PyTorch's "replicate" is ONNX's "edge". Everything is seeded; running it twice gives the
same bytes.
"""

import argparse
import copy
import io
import os
import shutil

import numpy as np
import onnx
import onnx.checker
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSETS = (9, 13)


def onnx_pads(torch_pads, rank):
    """ONNX pads (every axis' begin, then every axis' end) for F.pad's pads, which go
    (last axis begin, last axis end, the axis before begin, end, ...)."""
    k = len(torch_pads) // 2
    begins, ends = [0] * rank, [0] * rank
    for i in range(k):
        begins[rank - 1 - i], ends[rank - 1 - i] = torch_pads[2 * i], torch_pads[2 * i + 1]
    return begins + ends


def constant_pads(proto, pads_per_node):
    """Feed each Pad node (in graph order) a Constant holding its pads, and drop the nodes
    that computed the old pads input."""
    graph = proto.graph
    pad_nodes = [nd for nd in graph.node if nd.op_type == "Pad"]
    assert len(pad_nodes) == len(pads_per_node), (len(pad_nodes), pads_per_node)
    consts = []
    for i, (nd, pads) in enumerate(zip(pad_nodes, pads_per_node)):
        name = "pads_%d" % i
        consts.append(onnx.helper.make_node("Constant", [], [name], name="Constant_" + name,
                                            value=onnx.helper.make_tensor(name, onnx.TensorProto.INT64, [len(pads)], pads)))
        nd.input[1] = name
    nodes = consts + list(graph.node)
    needed = {o.name for o in graph.output}
    kept = []
    for nd in reversed(nodes):
        if any(o in needed for o in nd.output):
            kept.append(nd)
            needed.update(i for i in nd.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))


class Pad(nn.Module):
    """F.pad with PyTorch's pad order: (last axis begin, last axis end, next axis ...)."""

    def __init__(self, pads, mode):
        super().__init__()
        self.pads, self.mode = pads, mode

    def forward(self, x):
        return F.pad(x, self.pads, mode=self.mode)

    def pad_list(self, rank):
        return [onnx_pads(self.pads, rank)]


class PadConv(nn.Module):
    """Pads between convolutions, as in image-to-image networks: gradients must flow
    through both pads into the first convolution's parameters."""

    def __init__(self):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d((1, 2, 2, 1))
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.pad2 = nn.ReplicationPad2d((2, 0, 1, 3))
        self.conv2 = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        return self.conv2(self.pad2(torch.tanh(self.conv1(self.pad1(x)))))

    def pad_list(self, rank):
        return [onnx_pads(self.pad1.padding, rank), onnx_pads(self.pad2.padding, rank)]


# name, module builder, input shape. Edge pads may exceed the input (the edge value
# repeats); reflect pads must be smaller than it.
CASES = [
    ("reflect_2d", lambda: Pad((2, 1, 1, 3), "reflect"), (2, 3, 5, 6)),
    ("edge_2d", lambda: Pad((5, 2, 0, 6), "replicate"), (2, 2, 3, 4)),
    ("reflect_1d", lambda: Pad((3, 2), "reflect"), (2, 3, 7)),
    ("edge_1d", lambda: Pad((4, 1), "replicate"), (2, 3, 5)),
    ("pad_conv", PadConv, (2, 3, 6, 7)),
]


def save_npy(path, array):
    arr = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr, allow_pickle=False)


def export_onnx(model, example, opset):
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buf,
        export_params=True,
        do_constant_folding=False,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
    )
    return buf.getvalue()


def forward_and_grads(model32, x32, r32):
    """Return (output float64, grad_input, {param name: grad}) for L = sum(output * R)."""
    m = copy.deepcopy(model32).double()
    x = torch.from_numpy(x32.astype(np.float64)).requires_grad_(True)
    r = torch.from_numpy(r32.astype(np.float64))
    out = m(x)
    (out * r).sum().backward()
    grads = {n: p.grad.detach().numpy() for n, p in m.named_parameters()}
    return out.detach().numpy(), x.grad.detach().numpy(), grads


def make_fixture(out_root, index, name, builder, in_shape, opset):
    seed = 9000 + index
    torch.manual_seed(seed)
    model = builder().eval()
    g = torch.Generator().manual_seed(seed + 1)
    x32 = torch.randn(in_shape, generator=g).numpy()
    with torch.no_grad():
        out_shape = model(torch.from_numpy(x32)).shape
    r32 = torch.randn(out_shape, generator=g).numpy()

    data = export_onnx(model, torch.from_numpy(x32), opset)
    proto = onnx.load_from_string(data)
    if opset >= 11:
        constant_pads(proto, model.pad_list(len(in_shape)))
        data = proto.SerializeToString()
    else:
        # torch's own conversion of the pads, which constant_pads must agree with.
        exported = [list(a.ints) for nd in proto.graph.node if nd.op_type == "Pad" for a in nd.attribute if a.name == "pads"]
        assert exported == model.pad_list(len(in_shape)), (name, exported, model.pad_list(len(in_shape)))
    onnx.checker.check_model(proto, full_check=True)
    modes = [a.s.decode() for nd in proto.graph.node if nd.op_type == "Pad" for a in nd.attribute if a.name == "mode"]
    assert modes and set(modes) <= {"edge", "reflect"}, (name, opset, modes)

    out64, gin, grads = forward_and_grads(model, x32, r32)
    d = os.path.join(out_root, "%s_opset%d" % (name, opset))
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(data)
    save_npy(os.path.join(d, "input.npy"), x32)
    save_npy(os.path.join(d, "output.npy"), out64)
    save_npy(os.path.join(d, "loss_weight.npy"), r32)
    save_npy(os.path.join(d, "grad_input.npy"), gin)
    inits = {t.name for t in proto.graph.initializer}
    for pname, grad in grads.items():
        assert pname in inits, (name, pname, sorted(inits))
        save_npy(os.path.join(d, "grads", pname + ".npy"), grad)
    print("%-20s opset %2d: %s -> %s, Pad modes %s, ops %s" % (
        name, opset, list(in_shape), list(out_shape), modes, [nd.op_type for nd in proto.graph.node]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="testdata/pad")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    for index, (name, builder, in_shape) in enumerate(CASES):
        for opset in OPSETS:
            make_fixture(args.out, index, name, builder, in_shape, opset)


if __name__ == "__main__":
    main()
