#!/usr/bin/python3
"""Write the photo fixtures of package dataset into dataset/testdata/photos/.

Run from the repository root with Debian's interpreter (Pillow 9.4, scipy, numpy):

    /usr/bin/python3 tools/make_photo_fixtures.py [--out dataset/testdata/photos]

The pictures are scipy's two sample photographs: `face` (a raccoon, 1024x768, colour; public
domain, from public-domain-image.com) and `ascent` (512x512, grey). The dataset tests compare
the toolkit's decoding, resizing and augmentation of these files with Pillow and torchvision
run on the same files at test time; nothing here records an expected output.

Files (all small; the folder is about 0.6 MB):

    face_640x480.jpg        quality 90, 4:2:0 (Pillow's default), landscape
    face_360x640.jpg        portrait, quality 90, 4:2:0
    face_500x281.jpg        16:9, quality 85
    face_444_300x225.jpg    quality 95, 4:4:4
    face_422_300x225.jpg    quality 90, 4:2:2
    face_prog_320x240.jpg   progressive, quality 90
    face_97x131.png         odd size, RGB
    face_rgba_200x150.png   RGBA with a varying alpha
    face_pal_160x120.png    palette (P mode, 256 colours)
    face_pal_120x90.gif     palette GIF
    face_cmyk_160x120.jpg   CMYK JPEG (Pillow writes Adobe's inverted CMYK)
    face_16_120x90.png      16-bit RGB PNG (written by hand: Pillow writes no 16-bit RGB)
    ascent_gray_300x200.jpg greyscale JPEG
    ascent_gray_200x300.png greyscale PNG
    ascent_16_160x120.png   16-bit greyscale PNG (mode I;16)
    face_120x90.bmp, face_120x90.tiff, face_lossless_120x90.webp, face_lossy_120x90.webp
    exif/orient{1..8}.jpg   the same upright 240x160 picture, stored transposed as a camera
                            would for each EXIF orientation 1-8, with the tag set: after
                            ImageOps.exif_transpose all eight show the same picture
    bad/truncated.jpg       face_640x480.jpg cut in the middle of its scan (the header is whole)
    bad/truncated.png       face_97x131.png cut in its image data
    bad/empty.jpg           zero bytes
    bad/text.jpg            a text file named .jpg

Everything is deterministic: running the script twice gives the same bytes.
"""

import argparse
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image
from scipy import misc


def face():
    return Image.fromarray(misc.face())  # 1024x768 RGB


def ascent():
    a = misc.ascent().astype(np.float64)  # 512x512, 0-255 floats
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def crop_resize(im, w, h):
    """Centre-crop im to the aspect w:h, then resize to w x h (Lanczos)."""
    W, H = im.size
    if W * h > H * w:  # too wide
        cw = H * w // h
        box = ((W - cw) // 2, 0, (W - cw) // 2 + cw, H)
    else:
        ch = W * h // w
        box = (0, (H - ch) // 2, W, (H - ch) // 2 + ch)
    return im.resize((w, h), Image.LANCZOS, box=box)


def save(im, path, **kw):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im.save(path, **kw)


def png16(path, arr):
    """Write a 16-bit PNG (grey HxW or RGB HxWx3) with zlib, big-endian samples."""
    h, w = arr.shape[:2]
    colour = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# For EXIF orientation k, the stored pixels are the upright picture transformed by the inverse
# of what exif_transpose applies (PIL's Image.Transpose names).
STORE = {
    1: [],
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],   # exif_transpose applies ROTATE_270
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],  # exif_transpose applies ROTATE_90
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="dataset/testdata/photos")
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    f = face()
    g = ascent()
    p = lambda name: os.path.join(out, name)

    save(crop_resize(f, 640, 480), p("face_640x480.jpg"), quality=90)
    save(crop_resize(f, 360, 640), p("face_360x640.jpg"), quality=90)
    save(crop_resize(f, 500, 281), p("face_500x281.jpg"), quality=85)
    save(crop_resize(f, 300, 225), p("face_444_300x225.jpg"), quality=95, subsampling=0)
    save(crop_resize(f, 300, 225), p("face_422_300x225.jpg"), quality=90, subsampling=1)
    save(crop_resize(f, 320, 240), p("face_prog_320x240.jpg"), quality=90, progressive=True)
    save(crop_resize(f, 97, 131), p("face_97x131.png"))
    rgba = crop_resize(f, 200, 150).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (150, 1))
    rgba.putalpha(Image.fromarray(alpha, "L"))
    save(rgba, p("face_rgba_200x150.png"))
    save(crop_resize(f, 160, 120).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE), p("face_pal_160x120.png"))
    save(crop_resize(f, 120, 90).quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE), p("face_pal_120x90.gif"))
    save(crop_resize(f, 160, 120).convert("CMYK"), p("face_cmyk_160x120.jpg"), quality=92)
    rgb16 = np.asarray(crop_resize(f, 120, 90), dtype=np.uint16) * 257
    rgb16 = rgb16 + (np.arange(120, dtype=np.uint16)[None, :, None] * 2)  # low bytes that differ
    png16(p("face_16_120x90.png"), rgb16)
    save(crop_resize(g, 300, 200), p("ascent_gray_300x200.jpg"), quality=90)
    save(crop_resize(g, 200, 300), p("ascent_gray_200x300.png"))
    g16 = np.asarray(crop_resize(g, 160, 120), dtype=np.uint16) * 257
    png16(p("ascent_16_160x120.png"), g16)
    small = crop_resize(f, 120, 90)
    save(small, p("face_120x90.bmp"))
    save(small, p("face_120x90.tiff"))
    save(small, p("face_lossless_120x90.webp"), lossless=True)
    save(small, p("face_lossy_120x90.webp"), quality=80)

    upright = crop_resize(f, 240, 160)
    for k, ops in STORE.items():
        im = upright
        for op in ops:
            im = im.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = k
        save(im, p(f"exif/orient{k}.jpg"), quality=92, exif=exif.tobytes())

    os.makedirs(p("bad"), exist_ok=True)
    whole = open(p("face_640x480.jpg"), "rb").read()
    open(p("bad/truncated.jpg"), "wb").write(whole[: len(whole) // 2])
    png = open(p("face_97x131.png"), "rb").read()
    open(p("bad/truncated.png"), "wb").write(png[: len(png) * 2 // 3])
    open(p("bad/empty.jpg"), "wb").write(b"")
    open(p("bad/text.jpg"), "wb").write(b"this is not a picture\n")


if __name__ == "__main__":
    main()
