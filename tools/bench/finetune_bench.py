#!/usr/bin/python3
"""PyTorch running the whole-run benchmark's recipe (tools/bench/finetune_bench.sh): the config.yaml
that tools/make_vgg19_fmnist.py writes, done the way `toolkit finetune` does it.

    /usr/bin/python3 tools/bench/finetune_bench.py DIR [--epochs 20] [--threads 2] [--frozen]

DIR holds base.onnx (a torchvision VGG19 features export), train/ and test/ image folders.
Recipe: head Flatten -> Linear(512, 256) -> ReLU -> Dropout(0.5) -> Linear(256, C); Adam, lr 1e-4
constant; batch 32, a new shuffle each epoch, the last partial batch kept; every layer trained
(--frozen: the base frozen and in eval mode, only the head trained, as a head-only stage); no
augmentation; then the test set scored in eval mode, batch 32. Images: grey /255, bilinear to
32x32 (align_corners=False), 3 channels, (x - 0.286) / 0.353. Prints one JSON line: seconds
loading, training and testing, images per second, final train loss, test accuracy.
"""

import argparse
import json
import os
import time

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
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
    return ((x - MEAN) / STD).expand(-1, 3, -1, -1).contiguous(), torch.tensor(ys), classes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frozen", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.time()
    xtr, ytr, classes = load_folder(os.path.join(a.dir, "train"))
    xte, yte, _ = load_folder(os.path.join(a.dir, "test"))
    m = onnx.load(os.path.join(a.dir, "base.onnx"))
    sd = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    base = torchvision.models.vgg19(weights=None).features
    base.load_state_dict(sd, strict=True)
    with torch.no_grad():
        feats = base(xtr[:1]).flatten(1).shape[1]
    head = nn.Sequential(nn.Flatten(), nn.Linear(feats, 256), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(256, len(classes)))
    model = nn.Sequential(base, head)
    if a.frozen:
        for p in base.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    load = time.time() - t0

    t1 = time.time()
    loss_sum = 0.0
    epoch_s = []
    for ep in range(a.epochs):
        te = time.time()
        model.train()
        if a.frozen:
            base.eval()
        perm = torch.randperm(len(xtr))
        loss_sum = 0.0
        for s in range(0, len(xtr), a.batch):
            idx = perm[s : s + a.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        epoch_s.append(time.time() - te)
    train = time.time() - t1

    t2 = time.time()
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(xte), a.batch):
            correct += (model(xte[s : s + a.batch]).argmax(1) == yte[s : s + a.batch]).sum().item()
    test = time.time() - t2
    print(json.dumps({
        "impl": "pytorch", "threads": torch.get_num_threads(), "epochs": a.epochs, "frozen": a.frozen,
        "load_s": load, "train_s": train, "test_s": test, "epoch_s": epoch_s,
        "train_images_per_s": a.epochs * len(xtr) / train, "test_images_per_s": len(xte) / test,
        "train_loss": loss_sum / len(xtr), "test_accuracy": correct / len(xte),
    }))


if __name__ == "__main__":
    main()
