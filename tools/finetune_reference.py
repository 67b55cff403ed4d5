#!/usr/bin/python3
"""PyTorch reference run of the demo recipe: fine-tune models/fmnist-vgg/base.onnx on
data/fmnist-5to9 (500 training images, 1,000 test images). A sanity check for the numbers the
Go toolkit should reach; it writes nothing.

    /usr/bin/python3 tools/finetune_reference.py [--seeds 0,1,2] [--schedule recipe|constant]
        [--pool flatten|avg] [--dense 256|none] [--dropout 0.5] [--head-lr 1e-3] [--head-only]
        [--class-weights balanced] [--sampler balanced] [--ema 0.999] [--tta]

The head options make the heads of the diagnostics matrix (finetune/matrix_test.go): avg
pools globally, --dense none puts the dropout and the classifier straight on the pooled
features (Keras's usual head); hidden layers are initialised He-normal and the classifier
Glorot-uniform with zero biases, as the toolkit's headbuilder does. --head-only stops after
the head stage.

The options of issue 19's quality figures: --class-weights balanced weighs the loss by
scikit-learn's n / (classes x count) (CrossEntropyLoss(weight)); --sampler balanced draws
each epoch's len(train) examples with replacement, each class equally likely
(WeightedRandomSampler with 1/count weights); --ema keeps timm's ModelEmaV2 average of the
parameters and buffers after every optimizer step and measures it; --tta averages the
softmax of each test image and of its horizontal flip. Each seed's final line gives the
test accuracy and macro-F1 (scikit-learn's f1_score).

Recipe (the one in design.md's example config):
  head  flatten -> Linear(2048, 256) -> ReLU -> Dropout(0.5) -> Linear(256, 5)
  data  PNG 28x28 grey -> /255 -> bilinear 32x32 (align_corners=False) -> 3 channels ->
        (x - 0.286) / 0.353; training augmentation: horizontal flip + 4-pixel pad-and-crop
  stage head: 3 epochs, base frozen, Adam lr 1e-3 (one-cycle, or constant), batch 32
  stage all:  5 epochs, everything trained, Adam, ULMFiT rates max 1e-3 factor 2.6:
              head 1e-3, late (10.*, 12.*) 1e-3/2.6, early (0.*, 2.*, 5.*, 7.*) 1e-3/2.6^2,
              slanted triangular schedule (or constant)
The base weights are read from the ONNX initializers (names "0.weight", ... = Sequential indices).
"""

import argparse
import math
import os
import sys
import time

import copy

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

MEAN, STD = 0.286, 0.353


def load_folder(root):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    xs, ys = [], []
    for label, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, c))):
            xs.append(np.array(Image.open(os.path.join(root, c, f)).convert("L")))
            ys.append(label)
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0).unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = ((x - MEAN) / STD).expand(-1, 3, -1, -1).contiguous()
    return x, torch.tensor(ys), classes


def make_base():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
    )


def load_base(path):
    m = onnx.load(path)
    sd = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    base = make_base()
    base.load_state_dict(sd, strict=True)
    return base


def augment(x, gen):
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    xp = F.pad(x, (4, 4, 4, 4), value=(0.0 - MEAN) / STD)
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    return torch.stack([xp[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(n)])


def onecycle(t, total, lr_max, pct=0.3, div=25.0, final_div=1e4):
    up = max(1, int(total * pct))
    lo, end = lr_max / div, lr_max / div / final_div
    if t < up:
        return lo + (lr_max - lo) * (1 - math.cos(math.pi * t / up)) / 2
    p = (t - up) / max(1, total - up)
    return end + (lr_max - end) * (1 + math.cos(math.pi * p)) / 2


def stlr(t, total, lr_max, cut_frac=0.1, ratio=32.0):
    cut = max(1, int(total * cut_frac))
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + max(p, 0.0) * (ratio - 1)) / ratio


def predict(model, x, tta=False):
    model.eval()
    with torch.no_grad():
        p = F.softmax(model(x), 1)
        if tta:
            p = (p + F.softmax(model(x.flip(3)), 1)) / 2
    return p.argmax(1)


def accuracy(model, x, y, tta=False):
    return (predict(model, x, tta) == y).float().mean().item()


def macro_f1(model, x, y, tta=False):
    from sklearn.metrics import f1_score
    return f1_score(y.numpy(), predict(model, x, tta).numpy(), average="macro")


def make_head(pool, dense, dropout, classes=5):
    layers = [nn.Flatten()] if pool == "flatten" else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    width = 2048 if pool == "flatten" else 128
    if dense:
        hidden = nn.Linear(width, dense)
        nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
        nn.init.zeros_(hidden.bias)
        layers += [hidden, nn.ReLU(inplace=True)]
        width = dense
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    out = nn.Linear(width, classes)
    nn.init.xavier_uniform_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


def run(seed, base_path, xtr, ytr, xte, yte, schedule, batch=32, head_epochs=3, all_epochs=5,
        pool="flatten", dense=256, dropout=0.5, head_lr=1e-3, head_only=False,
        class_weights=None, sampler=None, ema=0.0, tta=False):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    base = load_base(base_path)
    head = make_head(pool, dense, dropout)
    model = nn.Sequential(base, head)
    groups = {
        "early": [p for i in (0, 2, 5, 7) for p in base[i].parameters()],
        "late": [p for i in (10, 12) for p in base[i].parameters()],
        "head": list(head.parameters()),
    }
    steps = (len(xtr) + batch - 1) // batch
    log = []
    classes = int(ytr.max()) + 1
    counts = torch.bincount(ytr, minlength=classes).double()
    weight = None
    if class_weights == "balanced":
        weight = (len(ytr) / (classes * counts)).float()
    average = None  # timm's ModelEmaV2: a copy of the model, averaged after every step
    if ema > 0:
        average = copy.deepcopy(model)
        for p in average.parameters():
            p.requires_grad_(False)

    def update_ema():
        with torch.no_grad():
            for a, v in zip(average.state_dict().values(), model.state_dict().values()):
                if a.dtype.is_floating_point:
                    a.mul_(ema).add_(v, alpha=1 - ema)
                else:
                    a.copy_(v)

    measured = lambda: average if average is not None else model

    def stage(name, epochs, trained, lrs, sched):
        for g, ps in groups.items():
            for p in ps:
                p.requires_grad_(g in trained)
        pgroups = [{"params": groups[g], "lr": lrs[g], "name": g} for g in trained]
        opt = torch.optim.Adam(pgroups, lr=1e-3)
        total, t = epochs * steps, 0
        for ep in range(epochs):
            model.train()
            if "early" not in trained and "late" not in trained:
                base.eval()
            if sampler == "balanced":
                perm = torch.multinomial((1 / counts)[ytr], len(xtr), replacement=True, generator=gen)
            else:
                perm = torch.randperm(len(xtr), generator=gen)
            tl = 0.0
            for s in range(steps):
                idx = perm[s * batch : (s + 1) * batch]
                for pg in opt.param_groups:
                    mx = lrs[pg["name"]]
                    pg["lr"] = mx if schedule == "constant" else sched(t, total, mx)
                loss = F.cross_entropy(model(augment(xtr[idx], gen)), ytr[idx], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if average is not None:
                    update_ema()
                tl += loss.item() * len(idx)
                t += 1
            acc = accuracy(measured(), xte, yte, tta)
            log.append((name, ep + 1, tl / len(xtr), acc, macro_f1(measured(), xte, yte, tta)))
            print("  seed %d %-4s epoch %d: train loss %.4f  test acc %.4f" % (seed, name, ep + 1, tl / len(xtr), acc), flush=True)

    stage("head", head_epochs, ["head"], {"head": head_lr}, onecycle)
    if head_only:
        return log
    stage("all", all_epochs, ["early", "late", "head"], {"head": 1e-3, "late": 1e-3 / 2.6, "early": 1e-3 / 2.6**2}, stlr)
    return log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="models/fmnist-vgg/base.onnx")
    ap.add_argument("--data", default="data/fmnist-5to9")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--schedule", default="recipe", choices=["recipe", "constant"])
    ap.add_argument("--pool", default="flatten", choices=["flatten", "avg"])
    ap.add_argument("--dense", default="256", help="hidden width, or none")
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--head-only", action="store_true")
    ap.add_argument("--class-weights", choices=["balanced"])
    ap.add_argument("--sampler", choices=["balanced"])
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--tta", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    xtr, ytr, classes = load_folder(os.path.join(args.data, "train"))
    xte, yte, _ = load_folder(os.path.join(args.data, "test"))
    print("classes %s, train %d, test %d" % (classes, len(xtr), len(xte)))
    finals = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.time()
        log = run(seed, args.base, xtr, ytr, xte, yte, args.schedule, pool=args.pool,
                  dense=0 if args.dense == "none" else int(args.dense), dropout=args.dropout,
                  head_lr=args.head_lr, head_only=args.head_only, class_weights=args.class_weights,
                  sampler=args.sampler, ema=args.ema, tta=args.tta)
        finals.append((log[2][3], log[-1][3], log[-1][4]))
        print("seed %d: after head stage %.4f, final %.4f, macro-F1 %.4f (%.0fs)" % (seed, log[2][3], log[-1][3], log[-1][4], time.time() - t0))
    h = np.array(finals)
    print("schedule=%s: head-stage acc mean %.4f min %.4f | final acc mean %.4f min %.4f max %.4f | macro-F1 mean %.4f" % (
        args.schedule, h[:, 0].mean(), h[:, 0].min(), h[:, 1].mean(), h[:, 1].min(), h[:, 1].max(), h[:, 2].mean()))


if __name__ == "__main__":
    sys.exit(main())
