#!/usr/bin/python3
"""Export the torchvision classification families to ONNX with PyTorch's references.

Run with Debian's interpreter (torch 1.13.1, torchvision 0.14.1, onnx 1.12):

    /usr/bin/python3 tools/make_family_fixtures.py OUT_DIR [--families resnet18,mobilenet_v2] [--size 32] [--full]

The Go tests run it themselves (internal/familyfixtures) into a cache folder keyed by this
file's contents; nothing it writes is committed (the models are megabytes each).

The families are torchvision's models as torchvision.models builds them (weights=None,
num_classes=10: the classifier is cut off for fine-tuning anyway);
the four whose real size would make CI slow are built from the same torchvision classes
at a reduced size unless --full is given: resnet50 is ResNet(Bottleneck, [1, 1, 2, 1]),
convnext_tiny a ConvNeXt of half the widths and depths [1, 1, 2, 1], vit_b_16 a
VisionTransformer of 8 layers of width 64 (patch 8 at 32x32), swin_t a SwinTransformer of
width 24 and depths [2, 2, 2, 2]. With --full they are the real resnet50, convnext_tiny,
vit_b_16 (image size --size) and swin_t.

For every family it builds the model with random weights (seeded), perturbs every
parameter (so that no two initializers are bit-identical and the exporter merges none) and
every BatchNorm's running statistics, puts it in eval mode, and writes <family>/ holding

    model_opset13.onnx, model_opset17.onnx
                      torch.onnx.export(training=TrainingMode.PRESERVE, do_constant_folding=False):
                      BatchNormalization nodes kept, initializer names = the parameter names;
                      input "input" [N 3 S S], output "output", dynamic batch; checked with
                      onnx.checker.check_model(full_check=True)
    model_fused_opset13.onnx
                      the default export (TrainingMode.EVAL, constant folding): each BatchNorm
                      folded into its Conv, the folded weights named onnx::Conv_NNN
    input.npy         float32 input, batch 2
    output.npy        the output computed in float64 (model.double()), stored float32
    output_f32.npy    the output computed in float32
    loss_weight.npy   fixed random R of the output's shape; L = sum(output * R)
    grad_input.npy    dL/dinput (float64)
    grads/<file>.npy  dL/dparam for every parameter (file names in the manifest's grad_files)
    train_*           for resnet18 and mobilenet_v2, the same in train() mode (BatchNorm with
                      the batch's statistics) on a batch of 8 (train_input.npy,
                      train_loss_weight.npy): train_output.npy, train_grad_input.npy,
                      train_grads/, and train_running/<name>.npy, the running means and
                      variances after the pass (momentum 0.1, unbiased variance); the
                      manifest's train_float32_error holds, per tensor, how far PyTorch's own
                      float32 pass is from its float64 one (ReLU6 masks and small-batch
                      statistics make mobilenet_v2's gradients ill-conditioned in float32)

and manifest.json: per family the opsets, input shape, parameter names and count, the
classifier's parameters (what a headless cut removes), the pooling the classifier does, and
the reference layer groups: the family's stage-level modules (ResNet: conv1, bn1, relu,
maxpool, layer1..layer4; MobileNet: features.0..N; ...) grouped by the spatial resolution of
their outputs as PyTorch computes it (a module whose output has a smaller resolution than the
one before starts a group; groups without parameters join the group before), with their
parameters; for the vision transformer, the patch embedding and then the encoder layers in
four even groups. Seeded and deterministic.
"""

import argparse
import io
import json
import os
import sys

import numpy as np
import onnx
import onnx.checker
import torch
import torchvision
from torchvision.models import vision_transformer

OPSETS = (13, 17)


def children(prefix):
    """The stage-level modules: the children of the module at prefix ('' is the model)."""

    def f(model):
        mod = model.get_submodule(prefix) if prefix else model
        return [(prefix + "." if prefix else "") + n for n, _ in mod.named_children()]

    return f


def regnet_stages(model):
    return ["stem"] + ["trunk_output." + n for n, _ in model.trunk_output.named_children()]


def tv(name, **kw):
    return lambda size, full: getattr(torchvision.models, name)(weights=None, num_classes=10, **kw)


def resnet50(size, full):
    if full:
        return torchvision.models.resnet50(weights=None, num_classes=10)
    return torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 1, 2, 1], num_classes=10)


def convnext(size, full):
    if full:
        return torchvision.models.convnext_tiny(weights=None, num_classes=10)
    C = torchvision.models.convnext.CNBlockConfig
    return torchvision.models.convnext.ConvNeXt([C(48, 96, 1), C(96, 192, 1), C(192, 384, 2), C(384, None, 1)],
                                                num_classes=10)


def vit(size, full):
    if full:
        return torchvision.models.vit_b_16(weights=None, image_size=size, num_classes=10)
    return vision_transformer.VisionTransformer(
        image_size=size, patch_size=8, num_layers=8, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10)


def swin(size, full):
    if full:
        return torchvision.models.swin_t(weights=None, num_classes=10)
    return torchvision.models.swin_transformer.SwinTransformer(
        patch_size=[4, 4], embed_dim=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=[7, 7],
        num_classes=10)


# name -> (constructor, stage-level modules, classifier modules, pooling of the classifier, preset)
FAMILIES = {
    "resnet18": (tv("resnet18"), children(""), ["fc"], "avg", "resnet"),
    "resnet50": (resnet50, children(""), ["fc"], "avg", "resnet"),
    "mobilenet_v2": (tv("mobilenet_v2"), children("features"), ["classifier"], "avg", "mobilenet_v2"),
    "mobilenet_v3_small": (tv("mobilenet_v3_small"), children("features"), ["classifier"], "avg", "mobilenet_v3_small"),
    "efficientnet_b0": (tv("efficientnet_b0"), children("features"), ["classifier"], "avg", "efficientnet"),
    "mnasnet0_5": (tv("mnasnet0_5"), children("layers"), ["classifier"], "avg", "mnasnet"),
    "regnet_y_400mf": (tv("regnet_y_400mf"), regnet_stages, ["fc"], "avg", "regnet"),
    "shufflenet_v2_x1_0": (tv("shufflenet_v2_x1_0"), children(""), ["fc"], "avg", "shufflenet_v2"),
    "convnext_tiny": (convnext, children("features"), ["classifier"], "avg", "convnext"),
    "densenet121": (tv("densenet121"), children("features"), ["classifier"], "avg", "densenet"),
    "googlenet": (tv("googlenet", aux_logits=False, init_weights=True), children(""), ["fc"], "avg", "googlenet"),
    "squeezenet1_1": (tv("squeezenet1_1"), children("features"), ["classifier"], "avg", "squeezenet1_1"),
    "vit_b_16": (vit, None, ["heads"], "token", "vit"),
    "swin_t": (swin, lambda m: children("features")(m) + ["norm"], ["head"], "avg", "swin"),
}


def perturb(model, gen):
    """Random values everywhere torchvision initialises constants (zero biases, unit BN
    scales, layer scales of 1e-6), so that no two initializers are equal; BatchNorm running
    statistics moved away from 0 and 1."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            scale = float(p.abs().mean()) or 0.05
            p.add_(torch.randn(p.shape, generator=gen) * 0.2 * scale)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def export(model, x, opset, training, fold):
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, opset_version=opset, training=training, do_constant_folding=fold,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return buf.getvalue(), proto


def save(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def grad_file(name):
    return name.replace(":", "_").replace("/", "_") + ".npy"


def references(model, x32, r32):
    m = __import__("copy").deepcopy(model).double()
    x = torch.from_numpy(x32.astype(np.float64)).requires_grad_(True)
    out = m(x)
    (out * torch.from_numpy(r32.astype(np.float64))).sum().backward()
    grads = {n: p.grad.detach().numpy() for n, p in m.named_parameters()}
    return out.detach().numpy(), x.grad.detach().numpy(), grads


# Families that also get references in training mode (BatchNorm with batch statistics).
TRAIN_REFERENCES = ("resnet18", "mobilenet_v2")


def train_pass(model, x32, r32, dtype):
    """The outputs, gradients and updated running statistics of one forward and backward
    pass in train() mode (BatchNorm normalising with the batch's statistics, momentum 0.1;
    Dropout left in eval mode, as the eval-mode export has none), in dtype."""
    m = __import__("copy").deepcopy(model).to(dtype).train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.eval()
    x = torch.from_numpy(x32).to(dtype).requires_grad_(True)
    out = m(x)
    (out * torch.from_numpy(r32).to(dtype)).sum().backward()
    tensors = {"output": out.detach().double().numpy(), "input gradient": x.grad.detach().double().numpy()}
    for n, p in m.named_parameters():
        tensors[n] = p.grad.detach().double().numpy()
    for n, b in m.named_buffers():
        if n.endswith("running_mean") or n.endswith("running_var"):
            tensors[n] = b.detach().double().numpy()
    return tensors


def train_references(model, x32, r32):
    """train_pass in float64, and how far PyTorch's own float32 pass is from it per tensor
    (max|f32 - f64| / max|f64|): a float32 implementation cannot be held closer than that."""
    ref, f32 = train_pass(model, x32, r32, torch.float64), train_pass(model, x32, r32, torch.float32)
    err = {k: float(np.abs(f32[k] - v).max() / max(np.abs(v).max(), 1e-300)) for k, v in ref.items()}
    return ref, err


def spatial(model, o):
    """The number of spatial positions of a module's output: NCHW, or NHWC for the Swin
    transformer, whose stages keep channels last."""
    if o.dim() != 4:
        return None
    if isinstance(model, torchvision.models.swin_transformer.SwinTransformer):
        return o.shape[1] * o.shape[2]
    return o.shape[2] * o.shape[3]


def resolution_stages(model, modules, x):
    """Group the stage-level modules by the spatial resolution of their outputs."""
    res = {}
    hooks = []
    for path in modules:
        mod = model.get_submodule(path)
        hooks.append(mod.register_forward_hook(
            lambda m, i, o, path=path: res.__setitem__(path, spatial(model, o))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    groups, prev = [], None
    for path in modules:
        r = res.get(path)
        if r is None:
            continue  # not run (a module the forward pass does not call)
        if not groups or (prev is not None and r < prev):
            groups.append([])
        groups[-1].append(path)
        prev = r
    return groups


def group_params(model, groups):
    out = []
    for mods in groups:
        ps = []
        for path in mods:
            ps += [path + "." + n for n, _ in model.get_submodule(path).named_parameters()]
        out.append({"modules": mods, "params": ps})
    merged = []
    for g in out:
        if not g["params"] and merged:
            merged[-1]["modules"] += g["modules"]
        elif merged and not merged[-1]["params"]:
            merged[-1] = {"modules": merged[-1]["modules"] + g["modules"], "params": g["params"]}
        else:
            merged.append(g)
    return merged


def vit_stages(model):
    layers = [n for n, _ in model.encoder.layers.named_children()]
    k = min(4, len(layers))
    groups = [{"modules": ["conv_proj", "class_token", "encoder.pos_embedding"],
               "params": ["class_token", "conv_proj.weight", "conv_proj.bias", "encoder.pos_embedding"]}]
    at = 0
    for i in range(k):
        n = len(layers) // k + (1 if i < len(layers) % k else 0)
        mods = ["encoder.layers." + l for l in layers[at:at + n]]
        at += n
        if i == k - 1:
            mods.append("encoder.ln")
        ps = []
        for path in mods:
            ps += [path + "." + n for n, _ in model.get_submodule(path).named_parameters()]
        groups.append({"modules": mods, "params": ps})
    return groups


def make(out, name, size, seed, full):
    build, stages, head_modules, pool, preset = FAMILIES[name]
    if name == "vit_b_16" and not full:
        preset = None  # the preset is ViT-B's 12 layers; the reduced model has 8
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(size, full)
    perturb(model, gen)
    model.eval()
    x32 = torch.randn((2, 3, size, size), generator=gen).numpy()
    x = torch.from_numpy(x32)
    with torch.no_grad():
        out32 = model(x).numpy()
    r32 = torch.randn(out32.shape, generator=gen).numpy()
    out64, gin, grads = references(model, x32, r32)
    params = [n for n, _ in model.named_parameters()]
    head = [n for n in params if any(n == h or n.startswith(h + ".") for h in head_modules)]
    if stages is None:
        stage_ref = vit_stages(model)
    else:
        stage_ref = group_params(model, resolution_stages(model, stages(model), x))
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "grads"), exist_ok=True)
    models = {}
    for opset, training, fold, file in [(13, torch.onnx.TrainingMode.PRESERVE, False, "model_opset13.onnx"),
                                        (17, torch.onnx.TrainingMode.PRESERVE, False, "model_opset17.onnx"),
                                        (13, torch.onnx.TrainingMode.EVAL, True, "model_fused_opset13.onnx")]:
        data, proto = export(model, x, opset, training, fold)
        if training == torch.onnx.TrainingMode.PRESERVE:
            inits = {t.name for t in proto.graph.initializer}
            missing = [p for p in params if p not in inits]
            assert not missing, "%s: parameters not among the initializers: %s" % (name, missing[:5])
        with open(os.path.join(d, file), "wb") as f:
            f.write(data)
        models[file] = {"opset": opset, "fused": training == torch.onnx.TrainingMode.EVAL}
    save(os.path.join(d, "input.npy"), x32)
    save(os.path.join(d, "output.npy"), out64)
    save(os.path.join(d, "output_f32.npy"), out32)
    save(os.path.join(d, "loss_weight.npy"), r32)
    save(os.path.join(d, "grad_input.npy"), gin)
    for p, g in grads.items():
        save(os.path.join(d, "grads", grad_file(p)), g)
    train = name in TRAIN_REFERENCES
    if train:
        # Batch 8: at 32x32 the last stage's BatchNorms see 1x1 maps, and with batch 2 their
        # two-sample statistics are so ill-conditioned that PyTorch's own float32 pass is
        # 4e-3 away from its float64 one (4e-6 at batch 8).
        tx32 = torch.randn((8, 3, size, size), generator=gen).numpy()
        tr32 = torch.randn((8,) + tuple(out32.shape[1:]), generator=gen).numpy()
        ref, train_err = train_references(model, tx32, tr32)
        os.makedirs(os.path.join(d, "train_grads"), exist_ok=True)
        os.makedirs(os.path.join(d, "train_running"), exist_ok=True)
        save(os.path.join(d, "train_input.npy"), tx32)
        save(os.path.join(d, "train_loss_weight.npy"), tr32)
        save(os.path.join(d, "train_output.npy"), ref.pop("output"))
        save(os.path.join(d, "train_grad_input.npy"), ref.pop("input gradient"))
        for k, v in ref.items():
            sub = "train_grads" if k in grads else "train_running"
            save(os.path.join(d, sub, grad_file(k)), v)
    return {"models": models, "input_shape": list(x32.shape), "output_shape": list(out32.shape), "params": params,
            "param_count": int(sum(p.numel() for p in model.parameters())), "classifier_params": head,
            "pool": pool, "preset": preset, "stages": stage_ref, "full": full, "train_references": train,
            "train_float32_error": train_err if train else None,
            "grad_files": {p: grad_file(p) for p in params}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--full", action="store_true", help="the real resnet50, convnext_tiny and vit_b_16")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
                "size": args.size, "full": args.full, "families": {}}
    for i, name in enumerate(args.families.split(",")):
        if name not in FAMILIES:
            sys.exit("unknown family %r; known: %s" % (name, ", ".join(FAMILIES)))
        manifest["families"][name] = make(args.out, name, args.size, 800 + list(FAMILIES).index(name), args.full)
        print("%s: %d parameters" % (name, manifest["families"][name]["param_count"]), file=sys.stderr)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
