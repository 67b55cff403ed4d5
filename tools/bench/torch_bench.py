#!/usr/bin/python3
"""PyTorch reference for tools/bench: the same VGG19 conv base workloads as `go run ./tools/bench`.

    /usr/bin/python3 tools/bench/torch_bench.py --mode forward --size 224 --batch 1
    /usr/bin/python3 tools/bench/torch_bench.py --mode train --size 32 --batch 8
    /usr/bin/python3 tools/bench/torch_bench.py --mode train --size 32 --batch 16 --classes 10 --adam

torchvision's vgg19().features (randomly initialised; nothing is downloaded), float32, NCHW.
forward: eval mode under torch.no_grad(). train: train mode, loss = sum(output * target) with a
fixed random target (the toolkit's WeightedSum loss), backward through every parameter, no
optimizer step (the toolkit's Program.Run computes gradients only); the input needs no gradient.
--classes N appends Flatten + Linear(N) and trains with the cross-entropy of random labels;
--adam adds a torch.optim.Adam step (lr 1e-4) to each run, as tools/bench -classes N -adam.
Prints one JSON line with the same fields as the Go program (images_per_s from the best run).
Run it with Debian's /usr/bin/python3 (python3-torch 1.13); --threads defaults to 2, the number
of cores the toolkit uses (torch otherwise picks one thread on these machines).
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
import torchvision


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["forward", "train"], default="forward")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--classes", type=int, default=0)
    ap.add_argument("--adam", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = torchvision.models.vgg19(weights=None).features
    x = torch.randn(a.batch, 3, a.size, a.size)
    if a.mode == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    else:
        if a.classes:
            with torch.no_grad():
                feats = model(x).flatten(1).shape[1]
            model = torch.nn.Sequential(model, torch.nn.Flatten(), torch.nn.Linear(feats, a.classes))
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4) if a.adam else None
        if a.classes:
            labels = torch.randint(0, a.classes, (a.batch,))

            def loss_of(out):
                return torch.nn.functional.cross_entropy(out, labels)
        else:
            with torch.no_grad():
                target = torch.randn_like(model(x)) / model(x).numel()

            def loss_of(out):
                return (out * target).sum()

        def step():
            model.zero_grad(set_to_none=True)
            loss = loss_of(model(x))
            loss.backward()
            if opt is not None:
                opt.step()
    build = time.perf_counter() - t0
    for _ in range(a.warmup):
        step()
    times = []
    c0 = cpu_seconds()
    for _ in range(a.iters):
        s = time.perf_counter()
        step()
        times.append(time.perf_counter() - s)
    cpu = (cpu_seconds() - c0) / a.iters
    times.sort()
    med = statistics.median(times)
    print(json.dumps({
        "label": os.environ.get("BENCH_LABEL", ""), "impl": os.environ.get("BENCH_IMPL", "pytorch"), "mode": a.mode, "size": a.size, "batch": a.batch, "iters": a.iters,
        "classes": a.classes, "adam": a.adam,
        "blas": "torch-%s/mkldnn=%s" % (torch.__version__, torch.backends.mkldnn.is_available()),
        "gomaxprocs": torch.get_num_threads(),
        "best_s": times[0], "median_s": med, "cpu_s_per_run": cpu,
        "images_per_s": a.batch / times[0], "median_images_per_s": a.batch / med,
        "build_s": build,
    }))


if __name__ == "__main__":
    main()
