#!/bin/sh
# compare.sh: time the toolkit against PyTorch and ONNX Runtime on the same machine.
#
#   tools/bench/compare.sh            # from anywhere in the repository
#   MODEL=/path/vgg19-features.onnx ITERS=5 tools/bench/compare.sh
#
# Workloads (VGG19 conv base, float32, 2 threads/cores):
#   (a) forward pass at 1x3x224x224
#   (b) training step at 3x32x32, batch 8 and 16, every layer trained (WeightedSum loss,
#       gradients of all parameters, no optimizer step)
#   (c) PyTorch doing the same (/usr/bin/python3, Debian's python3-torch 1.13)
#   (d) ONNX Runtime forward, when onnxruntime-node is installed (tools/ort/node_modules, or
#       ORT_NODE_MODULES=/path/to/node_modules)
# PyTorch and ONNX Runtime run with 2 threads and with 1; the ratios are to the faster.
# The toolkit runs twice: the default build (pure Go: the packed AVX2 GEMM in
# backend/kernels) and -tags openblas (cgo, Debian's libopenblas-dev). When a binary given
# as BEFORE=/path/to/bench exists (tools/bench built from an older tree), it runs too.
#
# Everything runs twice: once in the machine's environment, once with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset for each command only (these machines may set
# OPENBLAS_CORETYPE=Haswell for old OpenBLAS builds; unsetting lets OpenBLAS, and PyTorch's
# BLAS, pick their own kernels). The output says which is which.
#
# MODEL defaults to /tmp/vgg19-features.onnx; make it with
#   /usr/bin/python3 tools/make_vgg19.py /tmp/vgg19 && cp /tmp/vgg19/vgg19-features.onnx /tmp/
# Results (JSON lines) go to $OUT/results.jsonl (OUT defaults to a new temporary folder);
# the table at the end is `go run ./tools/bench -report $OUT/results.jsonl`.
set -eu

cd "$(dirname "$0")/../.."
MODEL=${MODEL:-/tmp/vgg19-features.onnx}
ITERS=${ITERS:-5}
TRAIN_ITERS=${TRAIN_ITERS:-$((ITERS * 2))}
OUT=${OUT:-$(mktemp -d /tmp/bench.XXXXXX)}
PY=/usr/bin/python3
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: >"$RES"

if [ ! -f "$MODEL" ]; then
	echo "compare.sh: no model at $MODEL" >&2
	echo "  make one: $PY tools/make_vgg19.py /tmp/vgg19 && MODEL=/tmp/vgg19/vgg19-features.onnx $0" >&2
	exit 1
fi

echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
echo "cores: $(nproc); avx512f: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no); avx2: $(grep -qw avx2 /proc/cpuinfo && echo yes || echo no)"
echo "go: $(go version | cut -d' ' -f3-)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS-<unset>} OMP_NUM_THREADS=${OMP_NUM_THREADS-<unset>}"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); busiest other processes:"
ps -eo pcpu,etime,args --sort=-pcpu | sed -n '2,4p' | cut -c1-110 | sed 's/^/  /'
echo "model: $MODEL; timed runs: $ITERS forward, $TRAIN_ITERS train (after warm-up); results: $RES"

echo "== building"
go build -o "$OUT/bench-go" ./tools/bench
BINS="$OUT/bench-go"
if go build -tags openblas -o "$OUT/bench-openblas" ./tools/bench 2>"$OUT/openblas-build.log"; then
	BINS="$BINS $OUT/bench-openblas"
else
	echo "(no -tags openblas build: see $OUT/openblas-build.log; install libopenblas-dev)"
fi
if [ -n "${BEFORE:-}" ] && [ -x "$BEFORE" ]; then
	BINS="$BEFORE $BINS"
fi
ORT_DIR=${ORT_NODE_MODULES:-tools/ort/node_modules}
HAVE_ORT=no
if command -v node >/dev/null 2>&1 && [ -d "$ORT_DIR/onnxruntime-node" ]; then
	HAVE_ORT=yes
	ORT_DIR=$(cd "$ORT_DIR" && pwd)
else
	echo "(no ONNX Runtime: $ORT_DIR/onnxruntime-node is missing; see tools/ort/README.md)"
fi
HAVE_TORCH=yes
$PY -c 'import torch, torchvision' 2>/dev/null || { HAVE_TORCH=no; echo "(no PyTorch under $PY)"; }

# run LABEL PREFIX... -- COMMAND...: appends the command's JSON line to $RES.
run() {
	label=$1
	shift
	echo "  $*" | sed "s|$OUT/||g"
	if ! BENCH_LABEL="$label" "$@" >>"$RES" 2>"$OUT/last.err"; then
		echo "    failed:" >&2
		sed 's/^/    /' "$OUT/last.err" >&2
	fi
}

for mode in default unset; do
	if [ "$mode" = default ]; then
		label="machine's default env (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>}, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>})"
		set --
	else
		label="OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for each command (env -u)"
		set -- env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
	fi
	echo "== $label"
	for bin in $BINS; do
		impl=toolkit
		[ "$bin" = "${BEFORE:-}" ] && impl=toolkit-before
		run "$label" "$@" "$bin" -json -impl $impl -model "$MODEL" -mode forward -size 224 -batch 1 -iters "$ITERS"
		for b in 8 16; do
			run "$label" "$@" "$bin" -json -impl $impl -model "$MODEL" -mode train -size 32 -batch "$b" -iters "$TRAIN_ITERS"
		done
	done
	# The references run with 2 threads and with 1: on a loaded machine PyTorch's OpenMP
	# threads wait for each other (a 2-thread training step was measured 4x slower than a
	# 1-thread one while another process kept a core busy). The ratios use the faster.
	for th in 2 1; do
		if [ "$HAVE_TORCH" = yes ]; then
			run "$label" "$@" "$PY" tools/bench/torch_bench.py --threads $th --mode forward --size 224 --batch 1 --iters "$ITERS"
			for b in 8 16; do
				run "$label" "$@" "$PY" tools/bench/torch_bench.py --threads $th --mode train --size 32 --batch "$b" --iters "$TRAIN_ITERS"
			done
		fi
		if [ "$HAVE_ORT" = yes ]; then
			run "$label" "$@" env ORT_NODE_MODULES="$ORT_DIR" node tools/bench/ort_bench.js "$MODEL" 1 224 "$ITERS" $th
		fi
	done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OUT/bench-go" -report "$RES"
