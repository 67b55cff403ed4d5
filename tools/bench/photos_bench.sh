#!/bin/sh
# photos_bench.sh: a whole `toolkit finetune` on a folder of photos at 224 px against PyTorch
# running the same recipe with torchvision's transforms and DataLoader, same machine, one
# after the other; then each side's loader alone.
#
#   tools/bench/photos_bench.sh                       # DIR=/tmp/photos-bench, ARCH=resnet50
#   ARCH=vgg19 ROUNDS=2 tools/bench/photos_bench.sh
#   ARCH=efficientnet_b0 BATCH=32 LOADERS=0 tools/bench/photos_bench.sh
#   BF16=1 tools/bench/photos_bench.sh                # also PyTorch under bfloat16 autocast
#
# ARCH: resnet*, vgg*, mobilenet*, efficientnet*, convnext_*, vit_* (the class token's
# features, a Dense head without pooling). BATCH: the batch size of both sides (16).
# BF16=1 adds two runs per round: the toolkit with --precision bf16, and PyTorch with
# torch.autocast("cpu", dtype=torch.bfloat16).
# LOADERS=0 skips the loaders' benchmark at the end.
#
# The photos: examples/photos/makephotos with 43 training and 21 test pictures per class (129
# and 63 JPEGs, 280-640 px wide, aspect ratios 0.56-1.33, some EXIF-rotated, one truncated,
# which both sides must skip: the toolkit with on_bad_image: skip, PyTorch by deleting it
# first). The base: torchvision's ARCH with seeded random weights, exported headless by
# tools/bench/photos_bench.py. The recipe: an average-pooling + Dense head; one epoch of the
# head (base frozen), one of every layer; Adam 1e-3 then 1e-4; batch 16; RandomResizedCrop(224)
# + hflip in training, Resize(256) + CenterCrop(224) for the test images; toolkit's
# jpeg_draft on (its default). PyTorch: tools/bench/photos_bench.py run, 2 threads, DataLoader
# with num_workers=0 (the loader shares the 2 cores with the step, as the toolkit's does).
#
# Each command runs under /usr/bin/time: wall seconds, CPU seconds, cores busy, peak memory.
# The loaders alone: dataset's BenchmarkLoaderFolder (TOOLKIT_BENCH_FOLDER) and a PyTorch loop
# over its DataLoader.
set -eu
cd "$(dirname "$0")/../.."
DIR=${DIR:-/tmp/photos-bench}
ARCH=${ARCH:-resnet50}
ROUNDS=${ROUNDS:-1}
BATCH=${BATCH:-16}
BF16=${BF16:-0}
LOADERS=${LOADERS:-1}
POOL=avg
case $ARCH in vit*) POOL=flatten ;; esac
PY=/usr/bin/python3
OUT=$(mktemp -d /tmp/photos-bench.XXXXXX)
mkdir -p "$DIR"
if [ ! -d "$DIR/photos" ]; then
	go run ./examples/photos/makephotos -o "$DIR/photos" -train 43 -val 0 -test 21
	rm -rf "$DIR/photos/val"
fi
if [ ! -f "$DIR/$ARCH/base.onnx" ]; then
	mkdir -p "$DIR/$ARCH"
	$PY tools/bench/photos_bench.py export "$DIR/$ARCH" --arch "$ARCH"
	ln -sfn ../photos "$DIR/$ARCH/photos"
fi
echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
echo "cores: $(nproc); flags: $(grep -o -w 'avx2\|fma\|avx512f\|avx512vl\|avx512bw\|avx512_vnni\|avx512_bf16\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$OUT/toolkit" ./cmd/toolkit
cat >"$OUT/config.yaml" <<YAML
seed: 1
model: {onnx: $DIR/$ARCH/base.onnx, input: {channels: 3, height: 224, width: 224}}
head: {pool: $POOL, dense: [], dropout: 0, classes: 3}
groups: auto
optimizer: {name: adam}
stages:
  - {name: head, epochs: 1, train: [head], lr: 1e-3, schedule: constant}
  - {name: all, epochs: 1, train: all, lr: 1e-4, schedule: constant}
diagnostics: off
data:
  train: $DIR/photos/train
  test: $DIR/photos/test
  batch_size: $BATCH
  on_bad_image: skip
  preprocess: {mode: torch, resize: crop}
  augment: {random_resized_crop: true, hflip: true}
output: {dir: $OUT/run, checkpoint_every: 1000}
YAML
# PyTorch's ImageFolder cannot skip a bad file: it gets a copy without it.
cp -r "$DIR/photos" "$OUT/photos-torch"
rm -f "$OUT/photos-torch/train/checks/bad.jpg"
mkdir -p "$OUT/torch"
ln -s "$DIR/$ARCH/base.pt" "$OUT/torch/base.pt"
ln -s "$OUT/photos-torch" "$OUT/torch/photos"

measure() { # NAME COMMAND...: prints one line
	name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$OUT/time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || {
		echo "$name failed:" >&2
		tail -5 "$OUT/$name.err" >&2
		return 1
	}
	read -r wall user sys rss <"$OUT/time"
	echo "$name $wall $user $sys $rss" | awk '{printf "%-8s wall %7.1f s  cpu %7.1f s  cores %.2f  peak %6.0f MB\n", $1, $2, $3+$4, ($3+$4)/$2, $5/1024}'
}

torch_epochs() { # NAME: the epochs of a PyTorch run
	$PY -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); print("    epochs: head %.1f s (loader %.1f s), all %.1f s (loader %.1f s); test %.1f s, accuracy %.3f" % (d["epoch_s"][0], d["loader_s"][0], d["epoch_s"][1], d["loader_s"][1], d["test_s"], d["test_acc"]))' "$OUT/$1.out"
}

for r in $(seq "$ROUNDS"); do
	echo "== round $r ($ARCH, batch $BATCH)"
	rm -rf "$OUT/run"
	measure toolkit "$OUT/toolkit" finetune -c "$OUT/config.yaml"
	grep -i '^test\|skipped' "$OUT/toolkit.out" | sed 's/^/    /'
	$PY -c 'import json,sys; e=[json.loads(l) for l in open(sys.argv[1]) if "train_loss" in l]; print("    epochs: " + ", ".join("%s %.1f s" % (x["stage"], x["seconds"]) for x in e))' "$OUT/run/metrics.jsonl"
	measure pytorch $PY tools/bench/photos_bench.py run "$OUT/torch" --arch "$ARCH" --threads 2 --batch "$BATCH"
	torch_epochs pytorch
	if [ "$BF16" = 1 ]; then
		rm -rf "$OUT/run"
		measure tk-bf16 "$OUT/toolkit" finetune -c "$OUT/config.yaml" --precision bf16
		grep -i '^test' "$OUT/tk-bf16.out" | sed 's/^/    /'
		measure pt-bf16 $PY tools/bench/photos_bench.py run "$OUT/torch" --arch "$ARCH" --threads 2 --batch "$BATCH" --bf16
		torch_epochs pt-bf16
	fi
done
[ "$LOADERS" = 1 ] || { echo "outputs in $OUT"; exit 0; }
echo "== the loaders alone, one epoch of the training folder (RandomResizedCrop + hflip to 224)"
TOOLKIT_BENCH_FOLDER="$DIR/photos/train" go test ./dataset -run XXX -bench 'LoaderFolder$' -benchtime 3x | grep Benchmark
$PY - "$OUT/photos-torch/train" <<'PYEOF'
import sys, time, torch, torchvision, torchvision.transforms as T
torch.set_num_threads(2)
tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = torchvision.datasets.ImageFolder(sys.argv[1], tf)
for workers in (0, 2):
    dl = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, num_workers=workers)
    best = 1e9
    for _ in range(3):
        t = time.perf_counter(); n = sum(len(y) for _, y in dl); best = min(best, time.perf_counter() - t)
    print(f"PyTorch DataLoader (num_workers={workers}): {n / best:.1f} images/s")
PYEOF
echo "outputs in $OUT"
