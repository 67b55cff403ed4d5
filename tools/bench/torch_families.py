#!/usr/bin/python3
"""PyTorch side of tools/bench/families.sh: for each torchvision family, export the model at one
input size (opset 17, dynamic batch, TrainingMode.PRESERVE: BatchNormalization kept, as PyTorch
runs it, so that both train the same layers) and time PyTorch's forward pass and training step.

    /usr/bin/python3 tools/bench/torch_families.py --size 224 --export /tmp/fam224 [--families resnet18,...]
    /usr/bin/python3 tools/bench/torch_families.py --size 224 --export /tmp/fam224 --families resnet50 \
        --modes train --train-batch 32 --adam --bf16

The models are torchvision's, real size, random weights (nothing is downloaded); vit_b_16 is
built for the input size (its position embedding depends on it). forward: eval mode under
torch.no_grad(), batch --forward-batch. train: train mode (BatchNorm with batch statistics,
Dropout active), loss = sum(output * R) with a fixed random R (the toolkit's WeightedSum),
backward through every parameter and no optimizer step (what `go run ./tools/bench -mode train`
does), batch --train-batch; with --adam a torch.optim.Adam step after each (lr 1e-4, what
`tools/bench -adam` adds); with --bf16 the forward pass under torch.autocast("cpu",
dtype=torch.bfloat16) (impl "pytorch-bf16"). --modes picks forward, train or both. The
model file is exported once (an existing file is reused). Prints one JSON line per
measurement with the fields of tools/bench's results (label = the family), peak_rss_mb the
process's peak resident memory so far (run one family and mode per process for a workload's
own peak). --threads defaults to 2.
"""

import argparse
import io
import json
import os
import resource
import statistics
import sys
import time

import torch
import torchvision

FAMILIES = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "mnasnet0_5",
            "regnet_y_400mf", "shufflenet_v2_x1_0", "convnext_tiny", "densenet121", "googlenet", "squeezenet1_1",
            "vit_b_16", "swin_t", "alexnet", "vgg16_bn"]


def build(name, size):
    kw = {"weights": None}
    if name == "vit_b_16":
        kw["image_size"] = size
    if name == "googlenet":
        kw.update(aux_logits=False, init_weights=True)
    return getattr(torchvision.models, name)(**kw)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    c0 = cpu_seconds()
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times), (cpu_seconds() - c0) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--export", required=True, help="folder for <family>_<size>.onnx")
    ap.add_argument("--forward-batch", type=int, default=1)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="forward,train")
    ap.add_argument("--adam", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    modes = args.modes.split(",")
    torch.set_num_threads(args.threads)
    os.makedirs(args.export, exist_ok=True)
    for name in args.families.split(","):
        torch.manual_seed(0)
        try:
            model = build(name, args.size).eval()
            x = torch.randn(args.forward_batch, 3, args.size, args.size)
            path = os.path.join(args.export, "%s_%d.onnx" % (name, args.size))
            if not os.path.exists(path):
                torch.onnx.export(model, x, path, opset_version=17, training=torch.onnx.TrainingMode.PRESERVE,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
        except Exception as e:  # a family that does not export at this size (VGG's adaptive pool below 224)
            print("%s at %d: %s" % (name, args.size, str(e).splitlines()[0]), file=sys.stderr)
            continue
        print(json.dumps({"label": name, "model": path}), file=sys.stderr)

        def forward():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                model(x)

        if "forward" in modes:
            times, cpu = timed(forward, args.warmup, args.iters)
            emit(name, "forward", args, args.forward_batch, times, cpu)
        if "train" not in modes:
            continue
        model.train()
        xt = torch.randn(args.train_batch, 3, args.size, args.size)
        with torch.no_grad():
            r = torch.randn(model(xt).shape)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4) if args.adam else None

        def train():
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                y = model(xt)
            (y.float() * r).sum().backward()
            if opt is not None:
                opt.step()

        times, cpu = timed(train, args.warmup, args.iters)
        emit(name, "train", args, args.train_batch, times, cpu)


def emit(name, mode, args, batch, times, cpu):
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB on Linux
    print(json.dumps({"label": name, "impl": "pytorch-bf16" if args.bf16 else "pytorch", "mode": mode,
                      "size": args.size, "batch": batch, "adam": args.adam,
                      "iters": args.iters, "blas": "torch %s" % torch.__version__, "gomaxprocs": args.threads,
                      "best_s": times[0], "median_s": statistics.median(times), "cpu_s_per_run": cpu,
                      "images_per_s": batch / times[0], "peak_rss_mb": rss_mb}), flush=True)


if __name__ == "__main__":
    main()
