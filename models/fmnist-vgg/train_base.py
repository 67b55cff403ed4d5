#!/usr/bin/python3
"""Train the demo VGG-style convolutional base on Fashion-MNIST classes 0-4 and export it.

Run from the repository root with Debian's interpreter (torch 1.13.1, onnx 1.12):

    /usr/bin/python3 models/fmnist-vgg/train_base.py [--epochs 6] [--out models/fmnist-vgg/base.onnx]
    /usr/bin/python3 models/fmnist-vgg/train_base.py --samples-only   # only rewrite sample_*.npy

Data: Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/*.gz (IDX format).
Only classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat) are used: 30,000 training and
5,000 test images. Classes 5-9 are left for the transfer-learning demo (data/fmnist-5to9).

Preprocessing ("torch" mode): pixel/255, bilinear resize 28 -> 32
(torch.nn.functional.interpolate, align_corners=False), the one grey channel replicated to 3,
then (x - 0.286) / 0.353 on every channel.

Only the convolutional base (a bare nn.Sequential, so its initializer names are "0.weight",
"0.bias", "2.weight", ...) is exported, as ONNX opset 13 with input "input" (N x 3 x 32 x 32,
dynamic batch) and output "output" (N x 128 x 4 x 4). The pretraining head is dropped.
"""

import argparse
import gzip
import io
import os
import sys
import time

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.286
STD = 0.353
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    assert magic >> 8 == 0x08, "%s: not unsigned-byte IDX (magic %#x)" % (path, magic)
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split, classes):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(FMNIST_DIR, "%s-images-idx3-ubyte.gz" % prefix))
    labels = read_idx(os.path.join(FMNIST_DIR, "%s-labels-idx1-ubyte.gz" % prefix))
    keep = np.isin(labels, classes)
    return images[keep], labels[keep].astype(np.int64)


def preprocess(images_u8):
    """uint8 N x 28 x 28 -> float32 N x 3 x 32 x 32, torch mode."""
    x = torch.from_numpy(images_u8.astype(np.float32) / 255.0).unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = (x - MEAN) / STD
    return x.expand(-1, 3, -1, -1).contiguous()


def make_base():
    """VGG-style base; the Sequential indices give the initializer names."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),  # 0   block1
        nn.ReLU(inplace=True),  # 1
        nn.Conv2d(32, 32, 3, padding=1),  # 2
        nn.ReLU(inplace=True),  # 3
        nn.MaxPool2d(2, 2),  # 4   -> 32 x 16 x 16
        nn.Conv2d(32, 64, 3, padding=1),  # 5   block2
        nn.ReLU(inplace=True),  # 6
        nn.Conv2d(64, 64, 3, padding=1),  # 7
        nn.ReLU(inplace=True),  # 8
        nn.MaxPool2d(2, 2),  # 9   -> 64 x 8 x 8
        nn.Conv2d(64, 128, 3, padding=1),  # 10  block3
        nn.ReLU(inplace=True),  # 11
        nn.Conv2d(128, 128, 3, padding=1),  # 12
        nn.ReLU(inplace=True),  # 13
        nn.MaxPool2d(2, 2),  # 14  -> 128 x 4 x 4
    )


class Pretrain(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = make_base()
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 4 * 4, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def augment(x, gen):
    """Random horizontal flip and a random crop of the 4-pixel zero(-mean)-padded image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad_value = (0.0 - MEAN) / STD  # a black pixel after normalisation
    xp = F.pad(x, (4, 4, 4, 4), value=pad_value)
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = xp[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
    return out


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    per_class = np.zeros((len(CLASSES), 2), dtype=np.int64)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            pred = model(x[i : i + batch]).argmax(1)
            t = y[i : i + batch]
            correct += (pred == t).sum().item()
            for c in range(len(CLASSES)):
                m = t == c
                per_class[c, 0] += (pred[m] == c).sum().item()
                per_class[c, 1] += m.sum().item()
    return correct / len(x), per_class[:, 0] / per_class[:, 1]


def export_base(features, path):
    features = features.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        features,
        (torch.zeros(1, 3, 32, 32),),
        buf,
        export_params=True,
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.EVAL,
        opset_version=13,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
    )
    proto = onnx.load_model_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    sd = features.state_dict()
    assert set(inits) == set(sd), (sorted(inits), sorted(sd))
    for k, v in sd.items():
        assert np.array_equal(inits[k], v.numpy()), k
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return proto


def write_samples(onnx_path, xte_u8, yte):
    """sample_input.npy: the first 4 test images of classes 0-4, preprocessed (4x3x32x32);
    sample_output.npy: the base's features for them (4x128x4x4), computed in PyTorch from the
    initializers of onnx_path; sample_labels.txt: their labels."""
    proto = onnx.load(onnx_path)
    base = make_base()
    base.load_state_dict(
        {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}, strict=True
    )
    base.eval()
    x = preprocess(xte_u8[:4])
    with torch.no_grad():
        y = base(x).numpy()
    d = os.path.dirname(os.path.abspath(onnx_path))
    np.save(os.path.join(d, "sample_input.npy"), x.numpy().astype("<f4"), allow_pickle=False)
    np.save(os.path.join(d, "sample_output.npy"), y.astype("<f4"), allow_pickle=False)
    with open(os.path.join(d, "sample_labels.txt"), "w") as f:
        f.write(" ".join(str(int(v)) for v in yte[:4]) + "\n")
    return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "base.onnx"))
    ap.add_argument("--samples-only", action="store_true", help="only (re)write the sample_*.npy files from --out")
    args = ap.parse_args()

    if args.samples_only:
        xte_u8, yte = load_split("test", list(range(len(CLASSES))))
        y = write_samples(args.out, xte_u8, yte)
        print("wrote samples next to %s: features %s" % (args.out, y.shape))
        return

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed + 1)

    t0 = time.time()
    classes = list(range(len(CLASSES)))
    xtr_u8, ytr = load_split("train", classes)
    xte_u8, yte = load_split("test", classes)
    xtr, xte = preprocess(xtr_u8), preprocess(xte_u8)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    print("data: train %s test %s (%.1fs)" % (tuple(xtr.shape), tuple(xte.shape), time.time() - t0), flush=True)

    model = Pretrain(len(CLASSES))
    nparams = sum(p.numel() for p in model.features.parameters())
    print("base parameters: %d" % nparams, flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(xtr) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )

    t_train = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        tot, correct, seen = 0.0, 0, 0
        te = time.time()
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch : (s + 1) * args.batch]
            xb, yb = augment(xtr[idx], gen), ytr[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
        acc, per_class = evaluate(model, xte, yte)
        print(
            "epoch %d: train loss %.4f acc %.4f | test acc %.4f | %.0fs (%.0f img/s)"
            % (epoch + 1, tot / seen, correct / seen, acc, time.time() - te, seen / (time.time() - te)),
            flush=True,
        )
    train_time = time.time() - t_train
    acc, per_class = evaluate(model, xte, yte)
    print("test accuracy on classes 0-4: %.4f (%d images)" % (acc, len(xte)))
    for name, a in zip(CLASSES, per_class):
        print("  %-12s %.4f" % (name, a))
    print("training time: %.0fs" % train_time)

    proto = export_base(model.features, args.out)
    print("wrote %s (%d bytes); initializers: %s" % (
        args.out, os.path.getsize(args.out), ", ".join(t.name for t in proto.graph.initializer)))
    # The exported base must reproduce PyTorch's features.
    with torch.no_grad():
        ref = model.features(xte[:4]).numpy()
    y = write_samples(args.out, xte_u8, yte)
    assert np.array_equal(ref, y)
    print("wrote sample_input.npy / sample_output.npy / sample_labels.txt (4 test images)")


if __name__ == "__main__":
    sys.exit(main())
