#!/usr/bin/python3
"""photo_bench.py: what Pillow and torchvision spend on one phone photo, for BENCHMARKS.md.

    /usr/bin/python3 tools/bench/photo_bench.py PHOTO.jpg [N]

Times, in CPU milliseconds per image (time.process_time, one thread, best of 3 rounds of N):
  train/draft   Image.open, draft('RGB', size the crop needs), RandomResizedCrop(224) + hflip,
                ToTensor, Normalize: the fastest a PyTorch loader gets (draft is not the default)
  train/full    the same without draft: what torchvision's ImageFolder + transforms do
  eval          full decode, Resize(256) + CenterCrop(224), ToTensor, Normalize
  decode        Image.open(...).convert('RGB') alone; decode/draft the same in draft mode
The Go side is dataset's BenchmarkPhoto12MP* on the same file (TOOLKIT_BENCH_PHOTO).
"""
import sys, time
import torch
from PIL import Image
import torchvision.transforms as T

torch.set_num_threads(1)
path = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
norm = [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
rrc = T.RandomResizedCrop(224)
train = T.Compose([rrc, T.RandomHorizontalFlip()] + norm)
evalt = T.Compose([T.Resize(256), T.CenterCrop(224)] + norm)


def train_draft():
    im = Image.open(path)
    # The crop is drawn on the full size; draft then decodes at the largest reduction that
    # keeps the box at least 224 pixels, as the toolkit's jpeg_draft does.
    i, j, h, w = T.RandomResizedCrop.get_params(torch.empty(1, im.size[1], im.size[0]), rrc.scale, rrc.ratio)
    s = 1
    for k in (8, 4, 2):
        if w // k >= 224 and h // k >= 224:
            s = k
            break
    im.draft('RGB', (im.size[0] // s, im.size[1] // s))
    im = im.convert('RGB')
    f = im.size[0] / Image.open(path).size[0]
    im = im.resize((224, 224), Image.BILINEAR, box=(j * f, i * f, (j + w) * f, (i + h) * f))
    T.Compose(norm)(T.RandomHorizontalFlip()(im))


cases = {
    'train/draft': train_draft,
    'train/full': lambda: train(Image.open(path).convert('RGB')),
    'eval': lambda: evalt(Image.open(path).convert('RGB')),
    'decode': lambda: Image.open(path).convert('RGB'),
    'decode/draft8': lambda: (lambda im: (im.draft('RGB', (im.size[0] // 8, im.size[1] // 8)), im.convert('RGB')))(Image.open(path)),
}
print(f"photo: {path} ({Image.open(path).size[0]}x{Image.open(path).size[1]}), Pillow {Image.__version__}, torch {torch.__version__}, 1 thread")
for name, fn in cases.items():
    best = float('inf')
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    print(f"{name:14s} {best * 1000:7.1f} cpu-ms/image")
