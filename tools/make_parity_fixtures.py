#!/usr/bin/python3
"""Write the PyTorch/ONNX parity fixtures into testdata/parity/.

Run from the repository root with Debian's interpreter (torch 1.13.1, onnx 1.12):

    /usr/bin/python3 tools/make_parity_fixtures.py [--out testdata/parity]

For every network and every opset in (9, 13, 17) it writes
testdata/parity/<name>_opset<k>/ holding

    model.onnx        exported in eval mode, initializer names = PyTorch state_dict names
    input.npy         float32 input, batch 2
    output.npy        forward output computed in float64, saved as float32
    output_f32.npy    forward output computed in float32
    loss_weight.npy   fixed random R, same shape as the output; L = sum(output * R)
    grad_input.npy    dL/dinput (float64 computation, saved as float32)
    grads/<name>.npy  dL/dparam for every trainable parameter, keyed by ONNX initializer name
                      (":" and "/" replaced by "_"; manifest.json maps names to files)

plus testdata/parity/bn_train/ (a Conv + BatchNorm2d in training mode) and
testdata/parity/manifest.json. Everything is seeded; running it twice gives the same bytes.
"""

import argparse
import collections
import copy
import io
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSETS = (9, 13, 17)
BN_TRAIN_OPSET = 15


# ----------------------------------------------------------------------------------------------
# The networks. Each builder returns (module, input shape). Module attribute names become the
# parameter names, hence the ONNX initializer names.
# ----------------------------------------------------------------------------------------------


class VGGFeatures(nn.Module):
    """Headless VGG-style conv base exercising pads, strides, dilation and pooling modes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),  # 0
            nn.ReLU(),  # 1
            nn.Conv2d(8, 8, 3, padding=1),  # 2
            nn.ReLU(),  # 3
            nn.MaxPool2d(2),  # 4
            nn.Conv2d(8, 16, 3, stride=2, padding=1),  # 5
            nn.ReLU(),  # 6
            nn.Conv2d(16, 16, 3, dilation=2, padding=2),  # 7
            nn.ReLU(),  # 8
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # 9
            nn.Conv2d(16, 16, 1, bias=False),  # 10
            nn.ReLU(),  # 11
            nn.AvgPool2d(2, padding=1, count_include_pad=True),  # 12
        )

    def forward(self, x):
        return self.features(x)


class VGGBN(nn.Module):
    """Conv + BatchNorm + ReLU blocks, MaxPool, global average pool, flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),  # 0
            nn.BatchNorm2d(8),  # 1
            nn.ReLU(),  # 2
            nn.MaxPool2d(2),  # 3
            nn.Conv2d(8, 16, 3, padding=1),  # 4
            nn.BatchNorm2d(16, eps=1e-3),  # 5 (non-default epsilon)
            nn.ReLU(),  # 6
            nn.MaxPool2d(2),  # 7
            nn.Conv2d(16, 16, 3, padding=1, bias=False),  # 8
            nn.BatchNorm2d(16),  # 9
            nn.ReLU(),  # 10
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class VGGClassifier(nn.Module):
    """Conv base + torch.flatten + Linear/ReLU/Dropout/Linear (torchvision VGG layout, small)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),  # 0
            nn.ReLU(inplace=True),  # 1
            nn.MaxPool2d(2, 2),  # 2
            nn.Conv2d(8, 8, 3, padding=1),  # 3
            nn.ReLU(inplace=True),  # 4
            nn.MaxPool2d(2, 2),  # 5
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * 4 * 4, 24),  # 0
            nn.ReLU(inplace=True),  # 1
            nn.Dropout(0.5),  # 2
            nn.Linear(24, 10),  # 3
        )

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class VGGViewFlatten(nn.Module):
    """As VGGClassifier but flattens with x.view(x.size(0), -1) and ends in LogSoftmax(dim=1)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * 4 * 4, 24),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(24, 10),
        )

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        x = self.classifier(x)
        return F.log_softmax(x, dim=1)


class TransposeNHWC(nn.Module):
    """NHWC input permuted to NCHW inside the model, conv, per-channel broadcast Add, ReLU,
    AvgPool2d(2, ceil_mode=True, count_include_pad=False) over odd sizes, flatten, an explicit
    x @ W (MatMul), + bias (broadcast Add) and * scale (broadcast Mul)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.channel_shift = nn.Parameter(torch.empty(6, 1, 1))
        self.pool = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.fc_weight = nn.Parameter(torch.empty(6 * 6 * 5, 8))
        self.fc_bias = nn.Parameter(torch.empty(8))
        self.scale = nn.Parameter(torch.empty(1, 8))
        with torch.no_grad():
            self.channel_shift.uniform_(-0.5, 0.5)
            self.fc_weight.uniform_(-0.1, 0.1)
            self.fc_bias.uniform_(-0.5, 0.5)
            self.scale.uniform_(0.5, 1.5)

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        x = self.conv(x) + self.channel_shift
        x = F.relu(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        x = torch.matmul(x, self.fc_weight) + self.fc_bias
        return x * self.scale


def randomize_bn(module, gen_seed):
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(gen_seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def build_vgg_bn():
    m = VGGBN()
    randomize_bn(m, 1234)
    # Non-trivial running statistics: a few train-mode passes over shifted, scaled data.
    m.train()
    g = torch.Generator().manual_seed(4321)
    with torch.no_grad():
        for _ in range(5):
            m(torch.randn(8, 3, 16, 16, generator=g) * 2.0 + 0.7)
    m.eval()
    return m


class VGGBNFused(nn.Module):
    """What vgg_bn becomes after torch's eval-mode export fuses each BatchNorm into its Conv:
    used to compute gradients with respect to the fused initializers of vgg_bn_fused."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


PRESERVE = torch.onnx.TrainingMode.PRESERVE
EVAL = torch.onnx.TrainingMode.EVAL

# name -> (builder, input shape, export training mode, seed index)
#
# vgg_bn is exported with TrainingMode.PRESERVE on a module in eval() mode: that is an
# inference-mode export too (BatchNormalization uses the running statistics, Dropout vanishes),
# but it skips torch's eval-mode peephole pass, which would fuse every BatchNorm into the Conv
# before it and rename the fused weights "onnx::Conv_NN". vgg_bn_fused is the same network and
# the same weights exported with TrainingMode.EVAL, i.e. what a user gets from the defaults.
NETWORKS = collections.OrderedDict(
    [
        ("vgg_features", (VGGFeatures, (2, 3, 16, 32), EVAL, 0)),
        ("vgg_bn", (build_vgg_bn, (2, 3, 16, 16), PRESERVE, 1)),
        ("vgg_bn_fused", (build_vgg_bn, (2, 3, 16, 16), EVAL, 1)),
        ("vgg_classifier", (VGGClassifier, (2, 3, 16, 16), EVAL, 2)),
        ("vgg_view_flatten", (VGGViewFlatten, (2, 3, 16, 16), EVAL, 3)),
        ("transpose_nhwc", (TransposeNHWC, (2, 11, 9, 3), EVAL, 4)),
    ]
)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def save_npy(path, array):
    arr = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr, allow_pickle=False)


def grad_file(name):
    """File name for a parameter's gradient: the initializer name, with ':' (not allowed in Go
    module zips nor on Windows) and '/' replaced by '_', plus .npy."""
    return name.replace(":", "_").replace("/", "_") + ".npy"


def export_onnx(model, example, opset, training=torch.onnx.TrainingMode.EVAL):
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (example,),
        buf,
        export_params=True,
        do_constant_folding=False,
        training=training,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
    )
    return buf.getvalue()


def op_types(model_proto):
    ordered = []
    counts = collections.Counter()
    for node in model_proto.graph.node:
        if node.op_type not in counts:
            ordered.append(node.op_type)
        counts[node.op_type] += 1
    return ordered, dict(counts)


def check_initializers(model_proto, torch_model, name):
    """Initializer names must equal the state_dict names (num_batches_tracked excepted), and
    their values must equal the float32 state_dict values."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model_proto.graph.initializer}
    sd = {k: v for k, v in torch_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(inits) == set(sd), "%s: initializers %s != state_dict %s" % (
        name,
        sorted(inits),
        sorted(sd),
    )
    for k, v in sd.items():
        assert inits[k].shape == tuple(v.shape), (name, k, inits[k].shape, tuple(v.shape))
        assert np.array_equal(inits[k], v.detach().numpy()), (name, k)
    graph_inputs = [i.name for i in model_proto.graph.input]
    assert graph_inputs == ["input"], (name, graph_inputs)
    assert [o.name for o in model_proto.graph.output] == ["output"], name
    return sorted(inits)


def forward_and_grads(model32, x32, r32):
    """Return (output float64, grad_input, {param name: grad}) for L = sum(output * R)."""
    m = copy.deepcopy(model32).double()
    x = torch.from_numpy(x32.astype(np.float64)).requires_grad_(True)
    r = torch.from_numpy(r32.astype(np.float64))
    out = m(x)
    loss = (out * r).sum()
    loss.backward()
    grads = {n: p.grad.detach().numpy() for n, p in m.named_parameters() if p.requires_grad}
    return out.detach().numpy(), x.grad.detach().numpy(), grads


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


def fused_grads(proto, model32, x32, r32):
    """Gradients of L with respect to the initializers of the fused vgg_bn export."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    m = VGGBNFused()
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    conv_nodes = [nd for nd in proto.graph.node if nd.op_type == "Conv"]
    assert len(conv_nodes) == len(convs)
    with torch.no_grad():
        for layer, nd in zip(convs, conv_nodes):
            layer.weight.copy_(torch.from_numpy(inits[nd.input[1]].copy()))
            layer.bias.copy_(torch.from_numpy(inits[nd.input[2]].copy()))
        m.fc.load_state_dict({"weight": model32.fc.weight, "bias": model32.fc.bias})
    # map fused-module parameter names to ONNX initializer names
    mapping = {"fc.weight": "fc.weight", "fc.bias": "fc.bias"}
    for idx, layer in m.features._modules.items():
        if isinstance(layer, nn.Conv2d):
            nd = conv_nodes[convs.index(layer)]
            mapping["features.%s.weight" % idx] = nd.input[1]
            mapping["features.%s.bias" % idx] = nd.input[2]
    m.eval()
    with torch.no_grad():
        out32 = m(torch.from_numpy(x32)).numpy()
    out64, gin, grads = forward_and_grads(m, x32, r32)
    return out32, out64, gin, {mapping[k]: v for k, v in grads.items()}


def make_fixture(out_root, name, builder, in_shape, mode, index, opset):
    # One seed per network so a fixture does not depend on the ones made before it; the same
    # weights and input are used at every opset.
    seed = 1000 + index
    torch.manual_seed(seed)
    model = builder()
    model.eval()
    g = torch.Generator().manual_seed(seed + 1)
    x32 = torch.randn(*in_shape, generator=g).numpy().astype(np.float32)

    with torch.no_grad():
        out32 = model(torch.from_numpy(x32)).numpy()
    r32 = torch.randn(*out32.shape, generator=g).numpy().astype(np.float32)

    sd_before = {k: v.clone() for k, v in model.state_dict().items()}
    onnx_bytes = export_onnx(model, torch.from_numpy(x32), opset, mode)
    for k, v in model.state_dict().items():  # export must not change the module
        assert torch.equal(v, sd_before[k]), (name, k)

    proto = onnx.load_model_from_string(onnx_bytes)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    if name == "vgg_bn_fused":
        assert [nd.op_type for nd in proto.graph.node].count("BatchNormalization") == 0
        param_names = sorted(t.name for t in proto.graph.initializer)
        fout32, out64, gin, grads = fused_grads(proto, model, x32, r32)
        # the fused network must compute what the BatchNorm network computes
        assert np.allclose(fout32, out32, rtol=1e-4, atol=1e-5), name
        ref64, refgin, _ = forward_and_grads(model, x32, r32)
        assert np.allclose(out64, ref64, rtol=1e-5, atol=1e-6)
        assert np.allclose(gin, refgin, rtol=1e-5, atol=1e-6)
        trainable = sorted(grads)
        assert set(trainable) == set(param_names)
    else:
        param_names = check_initializers(proto, model, name)
        out64, gin, grads = forward_and_grads(model, x32, r32)
        trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
        assert sorted(grads) == trainable
        assert set(trainable) <= set(param_names)
    assert np.allclose(out64, out32, rtol=1e-4, atol=1e-5), name

    d = os.path.join(out_root, "%s_opset%d" % (name, opset))
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "grads"))
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(onnx_bytes)
    save_npy(os.path.join(d, "input.npy"), x32)
    save_npy(os.path.join(d, "output.npy"), out64)
    save_npy(os.path.join(d, "output_f32.npy"), out32)
    save_npy(os.path.join(d, "loss_weight.npy"), r32)
    save_npy(os.path.join(d, "grad_input.npy"), gin)
    assert len({grad_file(n) for n in grads}) == len(grads)
    for n, gr in grads.items():
        save_npy(os.path.join(d, "grads", grad_file(n)), gr)

    ordered, counts = op_types(proto)
    return {
        "name": name,
        "dir": os.path.basename(d),
        "opset": opset,
        "ir_version": proto.ir_version,
        "mode": "eval",
        "export_training_mode": "PRESERVE (module in eval mode)" if mode == PRESERVE else "EVAL",
        "initializer_names_match_state_dict": name != "vgg_bn_fused",
        "input_shape": list(x32.shape),
        "input_layout": "NHWC" if name == "transpose_nhwc" else "NCHW",
        "output_shape": list(out32.shape),
        "op_types": ordered,
        "op_counts": counts,
        "initializers": param_names,
        "trainable_parameters": trainable,
        "grad_files": {n: "grads/" + grad_file(n) for n in trainable},
        "non_trainable_initializers": sorted(set(param_names) - set(trainable)),
        "parameter_count": int(sum(p.numel() for p in model.parameters())),
    }


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return self.bn(self.conv(x))


def make_bn_train(out_root):
    torch.manual_seed(2000)
    model = ConvBN()
    randomize_bn(model, 2001)
    with torch.no_grad():  # non-default starting running statistics
        model.bn.running_mean.copy_(torch.linspace(-0.2, 0.3, 4))
        model.bn.running_var.copy_(torch.linspace(0.5, 2.0, 4))
    model.train()
    g = torch.Generator().manual_seed(2002)
    x32 = (torch.randn(2, 3, 6, 7, generator=g) * 1.5 + 0.3).numpy().astype(np.float32)

    init_state = {k: v.clone() for k, v in model.state_dict().items()}

    d = os.path.join(out_root, "bn_train")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "grads"))
    os.makedirs(os.path.join(d, "params"))

    # ONNX export in training mode; torch traces (runs) the module, so export a copy.
    export_note = None
    proto = None
    try:
        onnx_bytes = export_onnx(
            copy.deepcopy(model), torch.from_numpy(x32), BN_TRAIN_OPSET, torch.onnx.TrainingMode.TRAINING
        )
        proto = onnx.load_model_from_string(onnx_bytes)
        onnx.checker.check_model(proto, full_check=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(onnx_bytes)
    except Exception as e:  # pragma: no cover - reported in the JSON
        export_note = "ONNX export in training mode failed: %r" % (e,)

    # float32 training-mode forward (updates running stats of a copy)
    m32 = copy.deepcopy(model)
    with torch.no_grad():
        out32 = m32(torch.from_numpy(x32)).numpy()
    g2 = torch.Generator().manual_seed(2003)
    r32 = torch.randn(*out32.shape, generator=g2).numpy().astype(np.float32)

    # float64 forward + backward, one training-mode step of the running statistics
    m64 = copy.deepcopy(model).double()
    x = torch.from_numpy(x32.astype(np.float64)).requires_grad_(True)
    out = m64(x)
    (out * torch.from_numpy(r32.astype(np.float64))).sum().backward()
    assert np.allclose(out.detach().numpy(), out32, rtol=1e-4, atol=1e-5)

    # Independent recomputation of the batch statistics and the running update.
    y = F.conv2d(torch.from_numpy(x32.astype(np.float64)), m64.conv.weight.detach(), padding=1)
    n = y.shape[0] * y.shape[2] * y.shape[3]
    bmean = y.mean(dim=(0, 2, 3))
    bvar_pop = y.var(dim=(0, 2, 3), unbiased=False)
    rm0 = init_state["bn.running_mean"].double()
    rv0 = init_state["bn.running_var"].double()
    rm1 = 0.9 * rm0 + 0.1 * bmean
    rv1 = 0.9 * rv0 + 0.1 * bvar_pop * n / (n - 1)
    assert np.allclose(rm1.numpy(), m64.bn.running_mean.numpy())
    assert np.allclose(rv1.numpy(), m64.bn.running_var.numpy())

    save_npy(os.path.join(d, "input.npy"), x32)
    save_npy(os.path.join(d, "output.npy"), out.detach().numpy())
    save_npy(os.path.join(d, "output_f32.npy"), out32)
    save_npy(os.path.join(d, "loss_weight.npy"), r32)
    save_npy(os.path.join(d, "grad_input.npy"), x.grad.numpy())
    save_npy(os.path.join(d, "batch_mean.npy"), bmean.numpy())
    save_npy(os.path.join(d, "batch_var.npy"), bvar_pop.numpy())
    save_npy(os.path.join(d, "running_mean.npy"), m64.bn.running_mean.numpy())
    save_npy(os.path.join(d, "running_var.npy"), m64.bn.running_var.numpy())
    # The ONNX spec (BatchNormalization-14/15, training_mode=1) writes ReduceVar(X), the
    # population variance, into running_var: this is that value, for runtimes that follow it.
    save_npy(os.path.join(d, "running_var_population.npy"), (0.9 * rv0 + 0.1 * bvar_pop).numpy())
    for k, v in init_state.items():
        if k.endswith("num_batches_tracked"):
            continue
        save_npy(os.path.join(d, "params", grad_file(k)), v.numpy())
    grads = {}
    for k, p in m64.named_parameters():
        grads[k] = p.grad.numpy()
        save_npy(os.path.join(d, "grads", grad_file(k)), p.grad.numpy())

    info = {
        "name": "bn_train",
        "dir": "bn_train",
        "mode": "train",
        "layer": "Conv2d(3, 4, 3, padding=1, bias=False) -> BatchNorm2d(4, eps=1e-5, momentum=0.1), training mode",
        "input_shape": list(x32.shape),
        "output_shape": list(out32.shape),
        "eps": 1e-5,
        "torch_momentum": 0.1,
        "onnx_momentum": 0.9,
        "batch_var": "population variance (divide by N*H*W) normalises the output",
        "running_var_update": "running_var = 0.9*running_var + 0.1*var_unbiased (divide by N*H*W-1 = %d), as PyTorch does"
        % (n - 1),
        "running_var_population": "running_var_population.npy = 0.9*running_var + 0.1*batch_var (population), the ONNX spec's formula",
        "running_mean_update": "running_mean = 0.9*running_mean + 0.1*batch_mean",
        "params_dir": "params/ holds the starting values (incl. running_mean/var before the step)",
        "trainable_parameters": sorted(grads),
        "initializers": sorted(k for k in init_state if not k.endswith("num_batches_tracked")),
    }
    if proto is not None:
        ordered, counts = op_types(proto)
        info["opset"] = BN_TRAIN_OPSET
        info["op_types"] = ordered
        info["op_counts"] = counts
        info["onnx_initializers"] = sorted(t.name for t in proto.graph.initializer)
        info["onnx_outputs"] = [o.name for o in proto.graph.output]
        bn_nodes = [nd for nd in proto.graph.node if nd.op_type == "BatchNormalization"]
        info["onnx_bn_attributes"] = {
            a.name: onnx.helper.get_attribute_value(a) for nd in bn_nodes for a in nd.attribute
        }
        info["onnx_bn_outputs"] = [list(nd.output) for nd in bn_nodes]
    if export_note:
        info["note"] = export_note
    with open(os.path.join(d, "layer.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="testdata/parity")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    fixtures = []
    for name, (builder, in_shape, mode, index) in NETWORKS.items():
        for opset in OPSETS:
            info = make_fixture(args.out, name, builder, in_shape, mode, index, opset)
            fixtures.append(info)
            print("%-28s ops=%s" % (info["dir"], ",".join(info["op_types"])))
    bn = make_bn_train(args.out)
    print("%-28s ops=%s" % ("bn_train", ",".join(bn.get("op_types", []))))

    manifest = {
        "generator": "tools/make_parity_fixtures.py",
        "regenerate": "/usr/bin/python3 tools/make_parity_fixtures.py",
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "loss": "L = sum(output * loss_weight); grads are dL/d(...) computed in float64, stored float32",
        "fixtures": fixtures,
        "bn_train": bn,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
