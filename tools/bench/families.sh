#!/bin/sh
# families.sh: the table of the torchvision families for the issue's closing note: PyTorch
# parity, and forward and training-step time of the toolkit against PyTorch at 224 and at
# 32 px. Run it on a quiet machine (the timings are worthless on a shared one):
#
#   tools/bench/families.sh                        # every family
#   FAMILIES=resnet18,mobilenet_v2 ITERS=3 tools/bench/families.sh
#
# Steps, with OUT a new temporary folder unless given:
#   1. parity: tools/make_family_fixtures.py --full (the real resnet50, convnext_tiny, vit_b_16,
#      swin_t) at 32 px into $OUT/fixtures, then the backend's TestFamiliesPyTorchParity on
#      them; its table (largest relative error of the output and of the gradients of the
#      input and of every parameter, per export: opsets 13 and 17, and the default folded one)
#      goes to $OUT/parity.txt.
#   2. timing at 224 and 32 px: tools/bench/torch_families.py exports each family (opset 17,
#      BatchNorm kept) and times PyTorch (forward: eval, batch $FORWARD_BATCH; train: a forward
#      and backward pass through every parameter, batch $TRAIN_BATCH); `go run ./tools/bench`
#      times the toolkit on the same file and workload. 2 threads on both sides.
#   3. the table: $OUT/families.md (and printed).
# Set SKIP_PARITY=1 to time only, SKIP_TIMING=1 for the parity table only. Give the CPU (grep
# -o 'avx512[a-z]*' /proc/cpuinfo | sort -u) with the numbers.
set -eu

cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
ALL=resnet18,resnet50,mobilenet_v2,mobilenet_v3_small,efficientnet_b0,mnasnet0_5,regnet_y_400mf,shufflenet_v2_x1_0,convnext_tiny,densenet121,googlenet,squeezenet1_1,vit_b_16,swin_t,alexnet,vgg16_bn
FAMILIES=${FAMILIES:-$ALL}
# AlexNet and VGG run only at 224 (their adaptive pooling) and are too large for the fixture
# script; their parity is the backend's VGG tests' (TestVGG19AgainstPyTorch, the parity fixtures).
PARITY_FAMILIES=$(echo "$FAMILIES" | tr ',' '\n' | grep -v -e '^alexnet$' -e '^vgg' | paste -sd, -)
ITERS=${ITERS:-5}
FORWARD_BATCH=${FORWARD_BATCH:-1}
TRAIN_BATCH=${TRAIN_BATCH:-8}
SIZES=${SIZES:-"224 32"}
OUT=${OUT:-$(mktemp -d /tmp/families.XXXXXX)}
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: >"$RES"
echo "families.sh: results in $OUT" >&2

if [ "${SKIP_PARITY:-}" != 1 ] && [ -n "$PARITY_FAMILIES" ]; then
  $PY tools/make_family_fixtures.py "$OUT/fixtures" --full --families "$PARITY_FAMILIES" >&2
  TOOLKIT_FAMILY_FIXTURES="$OUT/fixtures" go test -count=1 -v -run 'TestFamiliesPyTorchParity$' ./backend/ \
    | sed -n '/largest relative errors against PyTorch/,/^--- /p' | grep -v '^--- ' >"$OUT/parity.txt"
fi

if [ "${SKIP_TIMING:-}" != 1 ]; then
  go build -o "$OUT/bench" ./tools/bench
  for size in $SIZES; do
    $PY tools/bench/torch_families.py --size "$size" --families "$FAMILIES" --export "$OUT/models" \
      --forward-batch "$FORWARD_BATCH" --train-batch "$TRAIN_BATCH" --iters "$ITERS" >>"$RES"
    for f in $(echo "$FAMILIES" | tr ',' ' '); do
      model="$OUT/models/${f}_${size}.onnx"
      [ -f "$model" ] || continue
      BENCH_LABEL=$f "$OUT/bench" -json -model "$model" -mode forward -size "$size" -batch "$FORWARD_BATCH" -iters "$ITERS" >>"$RES" ||
        echo "toolkit forward $f at $size failed" >&2
      BENCH_LABEL=$f "$OUT/bench" -json -model "$model" -mode train -size "$size" -batch "$TRAIN_BATCH" -iters "$ITERS" >>"$RES" ||
        echo "toolkit train $f at $size failed" >&2
    done
  done
fi

$PY - "$OUT" <<'PYEOF' | tee "$OUT/families.md"
import json, os, re, sys
out = sys.argv[1]
parity = {}
p = os.path.join(out, "parity.txt")
if os.path.exists(p):
    for line in open(p):
        f = line.split()
        if len(f) >= 5 and f[1].endswith(".onnx"):
            fam = parity.setdefault(f[0], {})
            fam[f[1]] = f[2:5]
times = {}
rp = os.path.join(out, "results.jsonl")
if os.path.exists(rp):
    for line in open(rp):
        r = json.loads(line)
        times[(r.get("label"), r["impl"], r["mode"], r["size"])] = r["best_s"]
fams = sorted(set(list(parity) + [k[0] for k in times]))
sizes = sorted({k[3] for k in times}, reverse=True)
head = "| family | parity: output / d input / d params (opset 13, 17, folded) |"
for s in sizes:
    head += " fwd %d: toolkit / torch | train %d: toolkit / torch |" % (s, s)
print(head)
print("|" + "---|" * (2 + 2 * len(sizes)))
for fam in fams:
    cells = []
    for file in ("model_opset13.onnx", "model_opset17.onnx", "model_fused_opset13.onnx"):
        e = parity.get(fam, {}).get(file)
        if e:
            cells.append("/".join(e))
    row = "| %s | %s |" % (fam, "; ".join(cells) or "-")
    for s in sizes:
        for mode in ("forward", "train"):
            a, b = times.get((fam, "toolkit", mode, s)), times.get((fam, "pytorch", mode, s))
            if a and b:
                row += " %.3fs / %.3fs (%.2fx) |" % (a, b, a / b)
            else:
                row += " - |"
    print(row)
PYEOF
