#!/usr/bin/python3
"""Export randomly initialised (seeded) torchvision VGG19 models to ONNX, with reference outputs.

    /usr/bin/python3 tools/make_vgg19.py OUT_DIR

Writes into OUT_DIR (about 1.3 GB; nothing here is committed):

    vgg19-features.onnx            torchvision vgg19().features (headless, 1x3x224x224 -> 1x512x7x7), ~80 MB
    vgg19.onnx                     the full vgg19() with its 1000-class classifier, ~548 MB
    vgg19_bn-features.onnx         vgg19_bn().features with BatchNormalization nodes kept, ~80 MB
    vgg19_bn-features-fused.onnx   the same weights exported with the default TrainingMode.EVAL:
                                   torch folds each BN into its Conv and names the folded weights
                                   "onnx::Conv_NN" (what users get from a default export)
    input.npy                      float32 1x3x224x224, seeded standard normal
    <model>_output.npy             PyTorch's float32 output for input.npy, one per model
    manifest.json                  shapes, initializer counts and names, op types, timings

All: opset 13, input "input", output "output", dynamic batch (axis 0 "N"),
do_constant_folding=False, initializer names = PyTorch state_dict names (e.g. "0.weight" for a
bare features Sequential, "features.0.weight" and "classifier.6.bias" for the full model).
Nothing is downloaded: torchvision builds the architectures with weights=None.
"""

import copy
import io
import json
import os
import sys
import time

import numpy as np
import onnx
import onnx.checker
import torch
import torch.nn as nn
import torchvision

OPSET = 13


def export(model, x, path, training=torch.onnx.TrainingMode.EVAL):
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (x,),
        buf,
        export_params=True,
        do_constant_folding=False,
        training=training,
        opset_version=OPSET,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
    )
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    proto = onnx.load_model_from_string(data)
    onnx.checker.check_model(path)  # by path: works for models over 2 GB too
    return proto


def describe(proto, model, path, out, seconds, expect_names=True):
    inits = [t.name for t in proto.graph.initializer]
    sd = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if expect_names:
        assert set(inits) == set(sd), (path, sorted(set(inits) ^ set(sd))[:10])
    ops = []
    for n in proto.graph.node:
        if n.op_type not in ops:
            ops.append(n.op_type)
    return {
        "file": os.path.basename(path),
        "bytes": os.path.getsize(path),
        "output_file": os.path.basename(path)[: -len(".onnx")] + "_output.npy",
        "output_shape": list(out.shape),
        "op_types": ops,
        "nodes": len(proto.graph.node),
        "initializers": len(inits),
        "initializer_names": inits,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "initializer_names_match_state_dict": set(inits) == set(sd),
        "export_seconds": round(seconds, 1),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_vgg19.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    g = torch.Generator().manual_seed(19)
    x = torch.randn(1, 3, 224, 224, generator=g)
    np.save(os.path.join(out_dir, "input.npy"), x.numpy().astype("<f4"), allow_pickle=False)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "opset": OPSET,
                "input": {"file": "input.npy", "shape": list(x.shape), "seed": 19}, "models": []}

    torch.manual_seed(1919)
    vgg = torchvision.models.vgg19(weights=None).eval()
    torch.manual_seed(1920)
    vgg_bn = torchvision.models.vgg19_bn(weights=None)
    # torchvision initialises every bias to 0, and torch.onnx.export (eval mode) merges
    # initializers with identical contents: the zero biases of one shape would collapse into a
    # single shared initializer ("0.bias" used by two Convs, "19.bias" by eight). Pretrained
    # weights never look like that, so give every bias small distinct seeded values.
    with torch.no_grad():
        for net in (vgg, vgg_bn):
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.1 - 0.05)
    # Non-trivial BatchNorm parameters and running statistics (fresh ones are 1, 0, 0, 1).
    with torch.no_grad():
        for m in vgg_bn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
        vgg_bn.train()
        for _ in range(3):
            vgg_bn.features(torch.randn(8, 3, 64, 64, generator=g) + 0.2)
    vgg_bn.eval()

    jobs = [
        ("vgg19-features.onnx", vgg.features, torch.onnx.TrainingMode.EVAL, True),
        ("vgg19.onnx", vgg, torch.onnx.TrainingMode.EVAL, True),
        # PRESERVE on an eval()-mode module is an inference export that skips the Conv+BN fusion.
        ("vgg19_bn-features.onnx", vgg_bn.features, torch.onnx.TrainingMode.PRESERVE, True),
        ("vgg19_bn-features-fused.onnx", vgg_bn.features, torch.onnx.TrainingMode.EVAL, False),
    ]
    for name, model, mode, names in jobs:
        path = os.path.join(out_dir, name)
        t0 = time.time()
        with torch.no_grad():
            out = model(x)
        t_fwd = time.time() - t0
        np.save(os.path.join(out_dir, name[: -len(".onnx")] + "_output.npy"), out.numpy().astype("<f4"), allow_pickle=False)
        t0 = time.time()
        proto = export(copy.deepcopy(model), x, path, mode)
        info = describe(proto, model, path, out, time.time() - t0, names)
        info["torch_forward_seconds"] = round(t_fwd, 2)
        info["export_mode"] = {torch.onnx.TrainingMode.EVAL: "EVAL", torch.onnx.TrainingMode.PRESERVE: "PRESERVE (eval module)"}[mode]
        manifest["models"].append(info)
        print("%-30s %6.1f MB  out %s  ops %s  (forward %.1fs, export %.1fs)" % (
            name, info["bytes"] / 1e6, info["output_shape"], ",".join(info["op_types"]), t_fwd, info["export_seconds"]), flush=True)
        del proto

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
