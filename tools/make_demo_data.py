#!/usr/bin/python3
"""Write the transfer-learning demo data: Fashion-MNIST classes 5-9 as an image folder.

Run from the repository root with Debian's interpreter:

    /usr/bin/python3 tools/make_demo_data.py [--out data/fmnist-5to9] [--train-per-class 100] [--test-per-class 200]

Source: Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/*.gz (IDX format).
Writes <out>/train/<class>/<index>.png (from the Fashion-MNIST training set) and
<out>/test/<class>/<index>.png (from the Fashion-MNIST test set): 28x28 8-bit grayscale PNG,
<index> being the image's zero-padded position in the original IDX file. The class folders sort
in label order (5_sandal ... 9_ankle_boot), so an image-folder loader that sorts folder names
gives labels 0..4 for the original classes 5..9. Selection is seeded: the same files every run.
"""

import argparse
import gzip
import os
import shutil
import struct
import sys
import zlib

import numpy as np

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_DIRS = {5: "5_sandal", 6: "6_shirt", 7: "7_sneaker", 8: "8_bag", 9: "9_ankle_boot"}
SEED = 59


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    assert magic >> 8 == 0x08, "%s: not unsigned-byte IDX" % path
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def png_bytes(img):
    """8-bit grayscale PNG, written by hand (no dependency, byte-for-byte reproducible)."""
    h, w = img.shape

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))  # filter type 0 per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_split(out, split, images, labels, per_class, rng):
    lines = []
    for label, cname in CLASS_DIRS.items():
        idx = np.flatnonzero(labels == label)
        chosen = np.sort(rng.choice(idx, size=per_class, replace=False))
        d = os.path.join(out, split, cname)
        os.makedirs(d)
        for i in chosen:
            name = "%05d.png" % i
            with open(os.path.join(d, name), "wb") as f:
                f.write(png_bytes(images[i]))
            lines.append("%s/%s/%s,%d,%d" % (split, cname, name, i, label))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/fmnist-5to9")
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--test-per-class", type=int, default=200)
    args = ap.parse_args()

    for split in ("train", "test"):
        if os.path.isdir(os.path.join(args.out, split)):
            shutil.rmtree(os.path.join(args.out, split))
    rng = np.random.RandomState(SEED)
    lines = ["file,source_index,fashion_mnist_label"]
    for split, prefix, k in (("train", "train", args.train_per_class), ("test", "t10k", args.test_per_class)):
        images = read_idx(os.path.join(FMNIST_DIR, "%s-images-idx3-ubyte.gz" % prefix))
        labels = read_idx(os.path.join(FMNIST_DIR, "%s-labels-idx1-ubyte.gz" % prefix))
        lines += write_split(args.out, split, images, labels, k, rng)
    with open(os.path.join(args.out, "files.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d images under %s" % (len(lines) - 1, args.out))


if __name__ == "__main__":
    sys.exit(main())
