#!/bin/sh
# Regenerates the test JPEGs in this folder from scipy's public-domain
# raccoon photo (scipy.misc.face), with the encoders users' files come from:
# Pillow, libjpeg-turbo's cjpeg and ImageMagick. The reference pixels are
# not stored: the tests run djpeg (and Pillow) on these files.
#
# Needs (Debian): python3-pil python3-scipy libjpeg-turbo-progs imagemagick.
# Run from anywhere: sh internal/jpeg/testdata/gen.sh
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sources: crops of the photo at a few odd sizes, as PPM/PGM for cjpeg
# and PNG for ImageMagick; and the Pillow-encoded files.
/usr/bin/python3 - "$tmp" <<'EOF'
import sys, warnings
warnings.simplefilter("ignore")
from scipy import misc
from PIL import Image
tmp = sys.argv[1]
face = Image.fromarray(misc.face())          # 1024x768 RGB
def crop(w, h, x=300, y=200, src=face):
    # A downscaled crop keeps the photo's detail at small sizes; large
    # sizes take the whole photo.
    s = 4
    if x + s * w > src.width or y + s * h > src.height:
        x, y, s = 0, 0, min(src.width / w, src.height / h)
    return src.crop((x, y, x + s * w, y + s * h)).resize((w, h), Image.LANCZOS)

crop(97, 73).save(f"{tmp}/97x73.ppm")
crop(97, 73).convert("L").save(f"{tmp}/97x73.pgm")
crop(61, 47).save(f"{tmp}/61x47.ppm")
crop(64, 48).save(f"{tmp}/64x48.png")
crop(43, 29).save(f"{tmp}/43x29.png")

def pil(name, w, h, **kw):
    mode = kw.pop("mode", "RGB")
    crop(w, h).convert(mode).save(name, "JPEG", **kw)

pil("pil_444_q90.jpg", 97, 73, quality=90, subsampling=0)
pil("pil_422_q90.jpg", 97, 73, quality=90, subsampling=1)
pil("pil_420_q90.jpg", 97, 73, quality=90, subsampling=2)
pil("pil_420_q75_prog.jpg", 97, 73, quality=75, subsampling=2, progressive=True)
pil("pil_444_q95_prog.jpg", 61, 47, quality=95, subsampling=0, progressive=True)
pil("pil_422_prog.jpg", 33, 17, quality=85, subsampling=1, progressive=True)
pil("pil_grey_q90.jpg", 97, 73, quality=90, mode="L")
pil("pil_grey_prog.jpg", 35, 21, quality=80, mode="L", progressive=True)
pil("pil_420_q100.jpg", 40, 30, quality=100, subsampling=2)
pil("pil_420_q5.jpg", 97, 73, quality=5, subsampling=2)
pil("pil_420_optimize.jpg", 61, 47, quality=90, subsampling=2, optimize=True)
for w, h in [(1, 1), (2, 2), (7, 13), (17, 9), (33, 1), (1, 33), (3, 5), (16, 16), (15, 17)]:
    pil(f"pil_420_{w}x{h}.jpg", w, h, quality=90, subsampling=2)
pil("pil_422_9x3.jpg", 9, 3, quality=90, subsampling=1)
pil("pil_444_5x7.jpg", 5, 7, quality=90, subsampling=0)
pil("pil_420_3x5_prog.jpg", 3, 5, quality=90, subsampling=2, progressive=True)
pil("pil_420_33x1_prog.jpg", 33, 1, quality=90, subsampling=2, progressive=True)
# Larger photos: the benchmarks' source and the mid-scan truncation tests.
pil("pil_420_q90_320x240.jpg", 320, 240, quality=90, subsampling=2)
pil("pil_422_prog_256x192.jpg", 256, 192, quality=90, subsampling=1, progressive=True)
EOF

cj() { out=$1; src=$2; shift 2; cjpeg "$@" -outfile "$out" "$tmp/$src"; }
cj cj_440.jpg 97x73.ppm -quality 90 -sample 1x2,1x1,1x1
cj cj_411.jpg 97x73.ppm -quality 90 -sample 4x1,1x1,1x1
cj cj_410.jpg 61x47.ppm -quality 90 -sample 4x2,1x1,1x1
cj cj_311.jpg 61x47.ppm -quality 90 -sample 3x1,1x1,1x1
cj cj_mixed.jpg 97x73.ppm -quality 90 -sample 2x2,1x1,2x1
cj cj_chroma_larger.jpg 61x47.ppm -quality 90 -sample 1x1,2x2,1x1
cj cj_420_rst2b.jpg 97x73.ppm -quality 90 -sample 2x2,1x1,1x1 -restart 2B
cj cj_422_rst1row.jpg 97x73.ppm -quality 90 -sample 2x1,1x1,1x1 -restart 1
cj cj_420_prog_rst.jpg 97x73.ppm -quality 85 -sample 2x2,1x1,1x1 -progressive -restart 3B
cj cj_grey_rst.jpg 97x73.pgm -quality 90 -grayscale -restart 5B
cj cj_grey_prog.jpg 97x73.pgm -quality 90 -grayscale -progressive
cj cj_rgb.jpg 61x47.ppm -quality 90 -rgb
cj cj_q2_16bit.jpg 61x47.ppm -quality 2
cj cj_optimize.jpg 97x73.ppm -quality 95 -optimize
cj cj_arith.jpg 61x47.ppm -quality 90 -arithmetic

# CMYK from ImageMagick (Adobe APP14, transform 0), one subsampled and one
# progressive; then variants whose APP14 says YCCK (transform 2) or that
# have no APP14 (libjpeg then assumes CMYK).
convert "$tmp/64x48.png" -colorspace CMYK -quality 90 im_cmyk.jpg
convert "$tmp/43x29.png" -colorspace CMYK -quality 90 -sampling-factor 2x2,1x1,1x1,2x2 im_cmyk_420.jpg
convert "$tmp/43x29.png" -colorspace CMYK -quality 90 -interlace JPEG im_cmyk_prog.jpg
/usr/bin/python3 - <<'EOF'
data = open("im_cmyk.jpg", "rb").read()
i = data.find(b"\xff\xee")
assert i > 0 and data[i + 4:i + 9] == b"Adobe", "no Adobe APP14"
n = data[i + 2] << 8 | data[i + 3]
ycck = bytearray(data)
ycck[i + 4 + 11] = 2  # the transform byte
open("im_ycck.jpg", "wb").write(bytes(ycck))
open("im_cmyk_noadobe.jpg", "wb").write(data[:i] + data[i + 2 + n:])
EOF
ls -l *.jpg | awk '{s += $5} END {print NR " files, " s " bytes"}'
