#!/usr/bin/python3
"""A VGG19 conv base pretrained on Fashion-MNIST classes 0-4 at 32x32, and the data to fine-tune it
on the other five classes: the whole-run benchmark (tools/bench/finetune_bench.sh) and the
stuck-at-chance reproduction of the diagnostics use it.

    /usr/bin/python3 tools/make_vgg19_fmnist.py OUT_DIR [--train-images 10000] [--epochs 2]

Writes into OUT_DIR (nothing here is committed; ~80 MB):

    base.onnx        torchvision vgg19(weights=None).features (16 Conv + ReLU, 5 MaxPool), trained
                     with a Flatten + Linear(512, 5) head on --train-images images of classes 0-4
                     (T-shirt, trouser, pullover, dress, coat) for --epochs epochs (Adam 1e-4,
                     batch 32, seed 0); opset 13, input "input" [N 3 32 32], output "features"
                     [N 512 1 1], initializer names "0.weight" ... "34.bias"
    train/<class>/   100 PNG images per class 5-9 (sandal, shirt, sneaker, bag, ankle boot) from
                     the training set, 28x28 grey, as the toolkit's imagefolder format reads them
    test/<class>/    the 5,000 test-set images of classes 5-9
    config.yaml      a recipe for them (see tools/bench/finetune_bench.sh)
    pretrain.json    the pretraining's loss and accuracy per epoch, and its time

Preprocessing everywhere: grey /255, bilinear to 32x32 (align_corners=False), 3 channels,
(x - 0.286) / 0.353, as the demo's. Reads /usr/share/datasets/fashion-mnist (Debian's
dataset-fashion-mnist). Takes about 2-5 minutes on 2 cores with the defaults.
"""

import argparse
import gzip
import io
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

FMNIST = "/usr/share/datasets/fashion-mnist"
NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.286, 0.353


def read_idx(name):
    for path in (os.path.join(FMNIST, name + ".gz"), os.path.join(FMNIST, name)):
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            ndim = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit("no %s under %s: install Debian's dataset-fashion-mnist" % (name, FMNIST))


def prep(images):
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return ((x - MEAN) / STD).expand(-1, 3, -1, -1).contiguous()


def write_folder(root, images, labels, per_class=None):
    counts = {}
    for img, lab in zip(images, labels):
        name = "%d-%s" % (lab, NAMES[lab].lower().replace(" ", "-").replace("/", "-"))
        n = counts.get(name, 0)
        if per_class is not None and n >= per_class:
            continue
        counts[name] = n + 1
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img).save(os.path.join(d, "%05d.png" % n))
    return counts


RECIPE = """# Fine-tune the VGG19 base of tools/make_vgg19_fmnist.py on Fashion-MNIST classes 5-9.
seed: 0
model:
  onnx: base.onnx
  input: {channels: 3, height: 32, width: 32}
head: {pool: flatten, dense: [256], dropout: 0.5, classes: 5}
groups: vgg19
optimizer: {name: adam}
stages:
  - {name: all, epochs: 20, train: all, lr: 1e-4, schedule: constant}
data:
  format: imagefolder
  train: train
  test: test
  batch_size: 32
  preprocess: {mode: torch, mean: [0.286], std: [0.353]}
output: {dir: run}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--train-images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)

    xs, ys = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte")
    xt, yt = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte")
    first = np.flatnonzero(ys < 5)[: a.train_images]
    x, y = prep(xs[first]), torch.from_numpy(ys[first].astype(np.int64))

    features = torchvision.models.vgg19(weights=None).features
    model = nn.Sequential(features, nn.Flatten(), nn.Linear(512, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    log, t0 = [], time.time()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(x))
        tl, correct = 0.0, 0
        for s in range(0, len(x), 32):
            idx = perm[s : s + 32]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tl += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        log.append({"epoch": ep + 1, "loss": tl / len(x), "accuracy": correct / len(x)})
        print("pretrain epoch %d: loss %.4f accuracy %.4f (%.0fs)" % (ep + 1, tl / len(x), correct / len(x), time.time() - t0), flush=True)

    features.eval()
    buf = io.BytesIO()
    torch.onnx.export(features, torch.zeros(1, 3, 32, 32), buf, opset_version=13, do_constant_folding=False,
                      input_names=["input"], output_names=["features"],
                      dynamic_axes={"input": {0: "N"}, "features": {0: "N"}})
    proto = onnx.load_model_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    onnx.save(proto, os.path.join(a.out, "base.onnx"))

    later = np.flatnonzero(ys >= 5)
    write_folder(os.path.join(a.out, "train"), xs[later], ys[later], per_class=100)
    tests = np.flatnonzero(yt >= 5)
    counts = write_folder(os.path.join(a.out, "test"), xt[tests], yt[tests])
    with open(os.path.join(a.out, "config.yaml"), "w") as f:
        f.write(RECIPE)
    with open(os.path.join(a.out, "pretrain.json"), "w") as f:
        json.dump({"epochs": log, "seconds": time.time() - t0, "train_images": len(x), "test_counts": counts}, f, indent=1)
    print("wrote %s: base.onnx, train/ (500 images), test/ (%d images), config.yaml" % (a.out, sum(counts.values())))


if __name__ == "__main__":
    main()
