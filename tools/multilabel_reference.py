#!/usr/bin/python3
"""PyTorch reference run of examples/multilabel: the demo base (models/fmnist-vgg/base.onnx)
run at 64 px with a flatten -> Linear(8192, 256) -> ReLU -> Dropout(0.5) -> Linear(256, 5)
head, one sigmoid per label, trained with BCEWithLogitsLoss on the set of
examples/multilabel/makepairs (two Fashion-MNIST items on a 64x64 canvas, labelled with the
set of their classes). The recipe of examples/multilabel/config.yaml: the head alone for 3
epochs (Adam 1e-3, one-cycle), then every group for 5 (ULMFiT rates max 1e-3 factor 2.6,
slanted triangular), batch 32, horizontal flips. It prints each seed's test mAP
(scikit-learn's average_precision_score, macro) and micro and macro F1 at 0.5.

    go run ./examples/multilabel/makepairs -o /tmp/pairs
    /usr/bin/python3 tools/multilabel_reference.py --data /tmp/pairs [--seeds 0,1,2]
"""

import argparse
import csv
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune_reference as ref  # noqa: E402


def load_csv(path, classes=None):
    root = os.path.dirname(path)
    rows = list(csv.reader(open(path)))[1:]
    names = sorted({l for _, labels in rows for l in labels.split(";") if l}) if classes is None else classes
    xs, ys = [], []
    for f, labels in rows:
        xs.append(np.array(Image.open(os.path.join(root, f)).convert("L")))
        y = np.zeros(len(names), np.float32)
        for l in labels.split(";"):
            if l:
                y[names.index(l)] = 1
        ys.append(y)
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0).unsqueeze(1)
    x = ((x - ref.MEAN) / ref.STD).expand(-1, 3, -1, -1).contiguous()
    return x, torch.from_numpy(np.stack(ys)), names


def run(seed, base_path, xtr, ytr, xte, yte, batch=32):
    from sklearn.metrics import average_precision_score, f1_score
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    base = ref.load_base(base_path)
    hidden = nn.Linear(128 * 8 * 8, 256)
    nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
    nn.init.zeros_(hidden.bias)
    out = nn.Linear(256, ytr.shape[1])
    nn.init.xavier_uniform_(out.weight)
    nn.init.zeros_(out.bias)
    head = nn.Sequential(nn.Flatten(), hidden, nn.ReLU(inplace=True), nn.Dropout(0.5), out)
    model = nn.Sequential(base, head)
    groups = {
        "early": [p for i in (0, 2, 5, 7) for p in base[i].parameters()],
        "late": [p for i in (10, 12) for p in base[i].parameters()],
        "head": list(head.parameters()),
    }
    steps = (len(xtr) + batch - 1) // batch

    def stage(epochs, trained, lrs, sched):
        for g, ps in groups.items():
            for p in ps:
                p.requires_grad_(g in trained)
        opt = torch.optim.Adam([{"params": groups[g], "lr": lrs[g], "name": g} for g in trained], lr=1e-3)
        total, t = epochs * steps, 0
        for _ in range(epochs):
            model.train()
            if "early" not in trained:
                base.eval()
            perm = torch.randperm(len(xtr), generator=gen)
            for s in range(steps):
                idx = perm[s * batch:(s + 1) * batch]
                for pg in opt.param_groups:
                    pg["lr"] = sched(t, total, lrs[pg["name"]])
                x = xtr[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
                loss = F.binary_cross_entropy_with_logits(model(x), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                t += 1

    stage(3, ["head"], {"head": 1e-3}, ref.onecycle)
    stage(5, ["early", "late", "head"], {"head": 1e-3, "late": 1e-3 / 2.6, "early": 1e-3 / 2.6**2}, ref.stlr)
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(xte)).numpy()
    y = yte.numpy()
    return (average_precision_score(y, p, average="macro"), f1_score(y, p >= 0.5, average="micro"),
            f1_score(y, p >= 0.5, average="macro"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/fmnist-vgg/base.onnx")
    ap.add_argument("--data", default="examples/multilabel/data")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, names = load_csv(os.path.join(args.data, "train.csv"))
    xte, yte, _ = load_csv(os.path.join(args.data, "test.csv"), names)
    print("labels %s, train %d, test %d" % (names, len(xtr), len(xte)))
    res = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.time()
        m, micro, macro = run(seed, args.base, xtr, ytr, xte, yte)
        res.append((m, micro, macro))
        print("seed %d: test mAP %.4f, micro-F1 %.4f, macro-F1 %.4f at 0.5 (%.0fs)" % (seed, m, micro, macro, time.time() - t0), flush=True)
    r = np.array(res)
    print("mean: mAP %.4f, micro-F1 %.4f, macro-F1 %.4f" % tuple(r.mean(0)))


if __name__ == "__main__":
    sys.exit(main())
