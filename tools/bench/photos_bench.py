#!/usr/bin/python3
"""photos_bench.py: the photo whole-run benchmark (tools/bench/photos_bench.sh), PyTorch's side,
and the making of its base.

    /usr/bin/python3 tools/bench/photos_bench.py export DIR [--arch resnet50]
    /usr/bin/python3 tools/bench/photos_bench.py run DIR [--arch resnet50] [--threads 2] [--workers 0] [--batch 16] [--bf16]

export writes DIR/base.onnx: torchvision's ARCH with seeded random weights (nothing is
downloaded), cut before its average pooling, BatchNormalization kept (TrainingMode.PRESERVE),
and DIR/base.pt, the same weights for the run.

run trains what DIR/config.yaml (written by photos_bench.sh) asks the toolkit for: a
global-average-pooling + Linear head on the base; one epoch of the head with the base frozen
(eval mode), one epoch of every layer (train mode), Adam lr 1e-3 then 1e-4, batch 16 (--batch),
the last partial batch kept; with --bf16 the forward passes run under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's mixed precision on the CPU; torchvision's ImageFolder with RandomResizedCrop(224) + RandomHorizontalFlip
+ ToTensor + Normalize for training, Resize(256) + CenterCrop(224) for the test images. It
prints one JSON line: each epoch's seconds, the seconds the DataLoader took (time spent waiting
for batches), images per second, test accuracy.
"""

import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ViTBase(nn.Module):
    """A torchvision VisionTransformer without its heads: the class token's features, [N, hidden]."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x):
        v = self.vit
        x = v._process_input(x)
        x = torch.cat([v.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return v.encoder(x)[:, 0]


def backbone(arch):
    """The base without its classifier, the width of its features, and whether they are
    pooled already ([N, C] rather than [N, C, H, W])."""
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(weights=None)
    if arch.startswith("resnet"):
        return nn.Sequential(*list(m.children())[:-2]), m.fc.in_features, False
    if arch.startswith("efficientnet") or arch.startswith("mobilenet"):
        return m.features, m.classifier[-1].in_features, False
    if arch.startswith("vgg"):
        return m.features, 512, False
    if arch.startswith("convnext"):
        return m.features, m.classifier[-1].in_features, False
    if arch.startswith("vit"):
        return ViTBase(m), m.hidden_dim, True
    raise SystemExit(f"no base for {arch}")


def export(d, arch):
    base, _, _ = backbone(arch)
    base.eval()
    torch.save(base.state_dict(), os.path.join(d, "base.pt"))
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(base, x, os.path.join(d, "base.onnx"), opset_version=13, input_names=["input"],
                      output_names=["features"], dynamic_axes={"input": {0: "N"}, "features": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def run(d, arch, threads, workers, batch, bf16):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    base, features, pooled = backbone(arch)
    base.load_state_dict(torch.load(os.path.join(d, "base.pt")))
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    eval_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    train = torchvision.datasets.ImageFolder(os.path.join(d, "photos", "train"), train_tf)
    test = torchvision.datasets.ImageFolder(os.path.join(d, "photos", "test"), eval_tf)
    pool = [] if pooled else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    head = nn.Sequential(*pool, nn.Linear(features, len(train.classes)))
    model = nn.Sequential(base, head)
    loss_fn = nn.CrossEntropyLoss()
    dl = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True, num_workers=workers)
    out = {"epoch_s": [], "loader_s": [], "images": len(train)}
    for stage, lr in (("head", 1e-3), ("all", 1e-4)):
        frozen = stage == "head"
        for p in base.parameters():
            p.requires_grad = not frozen
        params = head.parameters() if frozen else model.parameters()
        opt = torch.optim.Adam(params, lr=lr)
        base.train(not frozen)
        head.train()
        t0, waited = time.perf_counter(), 0.0
        it = iter(dl)
        while True:
            w0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            waited += time.perf_counter() - w0
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        out["epoch_s"].append(time.perf_counter() - t0)
        out["loader_s"].append(waited)
    model.eval()
    right = n = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test, batch_size=batch, num_workers=workers):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                right += (model(x).argmax(1) == y).sum().item()
            n += len(y)
    out["test_s"] = time.perf_counter() - t0
    out["test_acc"] = right / n
    print(json.dumps(out))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["export", "run"])
    ap.add_argument("dir")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    a = ap.parse_args()
    if a.what == "export":
        export(a.dir, a.arch)
    else:
        run(a.dir, a.arch, a.threads, a.workers, a.batch, a.bf16)
