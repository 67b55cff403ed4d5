#!/bin/sh
# quality19.sh: issue 19's quality figures, the toolkit beside PyTorch running the same
# recipes (tools/finetune_reference.py, tools/multilabel_reference.py), three seeds each:
#   (a) the demo data made imbalanced (100, 50, 25, 12, 6 training images of classes 5-9;
#       the 1,000 balanced test images): test accuracy and macro-F1 plain, with
#       loss.class_weights: balanced and with data.sampler: balanced;
#   (b) examples/multilabel (makepairs): test mAP and micro/macro F1;
#   (c) the demo with ema (decay 0.99: the runs are 120 steps long) and with TTA.
# The demo recipe trains on all 500 (or the imbalanced) training images here, without a
# validation split, as the reference does. Slow: about 20 minutes on 2 cores.
#
#   tools/bench/quality19.sh [OUT]
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-$(mktemp -d /tmp/quality19.XXXXXX)}
SEEDS=${SEEDS:-0 1 2}
PY=/usr/bin/python3
mkdir -p "$OUT"
go build -o "$OUT/toolkit" ./cmd/toolkit
T="$OUT/toolkit"
# (a)'s data: the first N images of each class (in name order), linked.
rm -rf "$OUT/imb"
mkdir -p "$OUT/imb/train"
ln -s "$PWD/data/fmnist-5to9/test" "$OUT/imb/test"
set -- 100 50 25 12 6
for c in $(ls data/fmnist-5to9/train); do
	mkdir -p "$OUT/imb/train/$c"
	for f in $(ls data/fmnist-5to9/train/$c | head -n "$1"); do
		ln -s "$PWD/data/fmnist-5to9/train/$c/$f" "$OUT/imb/train/$c/$f"
	done
	shift
done
# recipe NAME TRAIN EXTRA: the demo recipe on TRAIN without a validation split, plus EXTRA lines.
recipe() {
	sed -e "s#^  onnx: .*#  onnx: $PWD/models/fmnist-vgg/base.onnx#" \
		-e "s#^  train: .*#  train: $2#" -e "s#^  test: .*#  test: $PWD/data/fmnist-5to9/test#" \
		-e '/val_split/d' -e '/^output:/d' config.yaml >"$OUT/$1.yaml"
	printf '%s\n' "$3" >>"$OUT/$1.yaml"
}
# toolkit NAME SEED [EVALUATE FLAGS]: finetune and evaluate, one line of figures.
toolkit() {
	cfg="$OUT/$1-$2.yaml"
	sed "s/^seed: .*/seed: $2/" "$OUT/$1.yaml" >"$cfg"
	printf 'output: {dir: %s}\n' "$OUT/runs/$1-$2" >>"$cfg"
	"$T" finetune -c "$cfg" --overwrite >"$OUT/runs-$1-$2.log" 2>&1
	shift 2
	"$T" evaluate "$OUT/runs/$(basename "$cfg" .yaml)/model.onnx" -c "$cfg" --json "$@" >"$OUT/eval.json"
	$PY - "$OUT/eval.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
if "tta" in r:
    r["tta_accuracy"], r["tta_macro_f1"] = r["tta"]["accuracy"], r["tta"]["macro_f1"]
keys = [k for k in ("accuracy", "macro_f1", "map", "micro_f1", "tta_accuracy", "tta_macro_f1") if k in r]
print("  " + ", ".join("%s %.4f" % (k, r[k]) for k in keys))
PYEOF
}
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
recipe imb "$OUT/imb/train" ""
recipe imb_weights "$OUT/imb/train" "loss: {class_weights: balanced}"
sed -i 's/^  batch_size: 32/  batch_size: 32\n  sampler: balanced/' "$OUT/imb.yaml" && cp "$OUT/imb.yaml" "$OUT/imb_sampler.yaml" && sed -i '/sampler: balanced/d' "$OUT/imb.yaml"
recipe demo "$PWD/data/fmnist-5to9/train" ""
recipe demo_ema "$PWD/data/fmnist-5to9/train" "ema: {decay: 0.99}"
for name in imb imb_weights imb_sampler demo demo_ema; do
	echo "== toolkit $name"
	for s in $SEEDS; do
		extra=""
		[ $name = demo ] && extra=--tta
		toolkit $name "$s" $extra
	done
done
echo "== PyTorch (a) plain, class weights, sampler; (c) plain with TTA, ema"
seeds=$(echo $SEEDS | tr ' ' ,)
$PY tools/finetune_reference.py --data "$OUT/imb" --seeds "$seeds" | tail -1
$PY tools/finetune_reference.py --data "$OUT/imb" --seeds "$seeds" --class-weights balanced | tail -1
$PY tools/finetune_reference.py --data "$OUT/imb" --seeds "$seeds" --sampler balanced | tail -1
$PY tools/finetune_reference.py --seeds "$seeds" | tail -1
$PY tools/finetune_reference.py --seeds "$seeds" --tta | tail -1
$PY tools/finetune_reference.py --seeds "$seeds" --ema 0.99 | tail -1
echo "== (b) multi-label"
[ -f "$OUT/pairs/train.csv" ] || go run ./examples/multilabel/makepairs -o "$OUT/pairs" >/dev/null
sed -e "s#^  onnx: .*#  onnx: $PWD/models/fmnist-vgg/base.onnx#" -e "s#data/train.csv#$OUT/pairs/train.csv#" \
	-e "s#data/test.csv#$OUT/pairs/test.csv#" -e '/^output:/d' examples/multilabel/config.yaml >"$OUT/multi.yaml"
for s in $SEEDS; do toolkit multi "$s"; done
$PY tools/multilabel_reference.py --data "$OUT/pairs" --seeds "$seeds" | tail -1
