#!/bin/sh
# finetune_bench.sh: a whole `toolkit finetune` run against PyTorch running the same recipe, on
# the same machine, one after the other.
#
#   tools/bench/finetune_bench.sh                 # DIR defaults to /tmp/vgg19-fmnist
#   DIR=/path EPOCHS=20 ROUNDS=2 tools/bench/finetune_bench.sh
#
# The recipe (DIR/config.yaml, written by tools/make_vgg19_fmnist.py, which runs first when
# DIR/base.onnx is missing): a VGG19 conv base pretrained at 32x32 on Fashion-MNIST classes 0-4,
# a Flatten + Dense(256) + Dropout + Dense(5) head, every layer trained with Adam 1e-4 for EPOCHS
# epochs over 500 images of classes 5-9, batch 32, then the 5,000 test images of those classes
# scored. PyTorch (tools/bench/finetune_bench.py, /usr/bin/python3, 2 threads) does the same.
#
# FROZEN=1 runs the head-only variant instead (base frozen: the toolkit's feature cache case).
#
# Each command runs under /usr/bin/time: wall seconds, CPU seconds (user + system), the average
# number of cores busy (CPU / wall) and the peak resident memory. ROUNDS alternates the two.
set -eu
cd "$(dirname "$0")/../.."
DIR=${DIR:-/tmp/vgg19-fmnist}
EPOCHS=${EPOCHS:-20}
ROUNDS=${ROUNDS:-1}
FROZEN=${FROZEN:-0}
PY=/usr/bin/python3
OUT=$(mktemp -d /tmp/finetune-bench.XXXXXX)

if [ ! -f "$DIR/base.onnx" ]; then
	echo "== making $DIR (tools/make_vgg19_fmnist.py)"
	$PY tools/make_vgg19_fmnist.py "$DIR"
fi
echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
echo "cores: $(nproc); flags: $(grep -o -w 'avx2\|fma\|avx512f\|avx512vl\|avx512bw\|avx512_vnni\|avx512_bf16\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

go build -o "$OUT/toolkit" ./cmd/toolkit
if [ "$FROZEN" = 1 ]; then
	sed -e 's/train: all, lr: 1e-4/train: [head], lr: 1e-4/' "$DIR/config.yaml" >"$OUT/config.yaml"
	pyflags=--frozen
else
	cp "$DIR/config.yaml" "$OUT/config.yaml"
	pyflags=
fi
sed -i -e "s|epochs: 20|epochs: $EPOCHS|" -e "s|onnx: base.onnx|onnx: $DIR/base.onnx|" \
	-e "s|train: train$|train: $DIR/train|" -e "s|test: test$|test: $DIR/test|" -e "s|dir: run|dir: $OUT/run|" "$OUT/config.yaml"

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

for r in $(seq "$ROUNDS"); do
	echo "== round $r ($EPOCHS epochs, frozen=$FROZEN)"
	rm -rf "$OUT/run"
	measure toolkit "$OUT/toolkit" finetune -c "$OUT/config.yaml"
	grep -i 'test\|feature cache' "$OUT/toolkit.out" | tail -3 | sed 's/^/    /'
	$PY -c 'import json,sys; e=[json.loads(l)["seconds"] for l in open(sys.argv[1]) if "train_loss" in l]; print("    epochs: first %.3f s, the others %.3f s each (median)" % (e[0], sorted(e[1:])[len(e[1:])//2] if len(e)>1 else float("nan")))' "$OUT/run/metrics.jsonl"
	measure pytorch $PY tools/bench/finetune_bench.py "$DIR" --epochs "$EPOCHS" --threads 2 $pyflags
	sed 's/^/    /' "$OUT/pytorch.out"
	$PY -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); e=d["epoch_s"]; print("    epochs: first %.3f s, the others %.3f s each (median)" % (e[0], sorted(e[1:])[len(e[1:])//2] if len(e)>1 else float("nan")))' "$OUT/pytorch.out"
done
echo "outputs in $OUT"
