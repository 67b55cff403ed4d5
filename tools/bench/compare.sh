#!/bin/sh
# compare.sh: time the toolkit against PyTorch and ONNX Runtime on the same machine, in
# alternation, and report the ratios.
#
#   tools/bench/compare.sh            # from anywhere in the repository
#   MODEL=/path/vgg19-features.onnx ROUNDS=5 tools/bench/compare.sh
#
# Workloads (VGG19's conv base, float32, 2 threads/cores on every side):
#   forward   1x3x224x224 and 8x3x224x224: toolkit, PyTorch (torch.no_grad), ONNX Runtime
#   train     16x3x32x32, every layer trained, + Flatten + Linear(10), cross-entropy, an Adam
#             step (tools/bench -classes 10 -adam; torch_bench.py --classes 10 --adam)
#   train     16x3x32x32, every layer, WeightedSum loss, gradients only (no optimizer)
# The toolkit runs on its default GEMM (the fastest micro-kernel the CPU runs) and, where
# the CPU has AVX-512, again on the AVX2 one (-kernels avx2, "toolkit-avx2": what an
# AVX2-only machine would run), beside PyTorch limited to AVX2 the same way
# ("pytorch-avx2": ONEDNN_MAX_CPU_ISA=AVX2 for its oneDNN convolutions,
# OPENBLAS_CORETYPE=Haswell for its OpenBLAS). OPENBLAS=1 adds the -tags openblas build.
#
# The machines here are shared VMs whose speed drifts by tens of percent from minute to
# minute, so every workload runs ROUNDS times (default 3), each round the toolkit then
# each reference within seconds of each other; the report gives each round's ratio and
# their median. UNSET=1 runs everything a second time with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset for each command (these machines may set
# OPENBLAS_CORETYPE=Haswell for old OpenBLAS builds; PyTorch links OpenBLAS).
#
# MODEL defaults to /tmp/vgg19-features.onnx; make it with
#   /usr/bin/python3 tools/make_vgg19.py /tmp/vgg19 && cp /tmp/vgg19/vgg19-features.onnx /tmp/
# Results (JSON lines) go to $OUT/results.jsonl (OUT defaults to a new temporary folder);
# the table at the end is `go run ./tools/bench -report $OUT/results.jsonl`.
set -eu

cd "$(dirname "$0")/../.."
MODEL=${MODEL:-/tmp/vgg19-features.onnx}
ITERS=${ITERS:-5}
ROUNDS=${ROUNDS:-3}
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
echo "cores: $(nproc); flags: $(grep -o -w 'avx2\|fma\|avx512f\|avx512vl\|avx512bw\|avx512_vnni\|avx512_bf16\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "go: $(go version | cut -d' ' -f3-)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS-<unset>} OMP_NUM_THREADS=${OMP_NUM_THREADS-<unset>}"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); busiest other processes:"
ps -eo pcpu,etime,args --sort=-pcpu | sed -n '2,4p' | cut -c1-110 | sed 's/^/  /'
echo "model: $MODEL; $ITERS timed runs per command, $ROUNDS rounds; results: $RES"

echo "== building"
go build -o "$OUT/bench-go" ./tools/bench
BINS="$OUT/bench-go"
if [ "${OPENBLAS:-0}" = 1 ]; then
	if go build -tags openblas -o "$OUT/bench-openblas" ./tools/bench 2>"$OUT/openblas-build.log"; then
		BINS="$BINS $OUT/bench-openblas"
	else
		echo "(no -tags openblas build: see $OUT/openblas-build.log; install libopenblas-dev)"
	fi
fi
AVX2=no
if grep -qw avx512f /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo; then
	AVX2=yes
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

# run LABEL COMMAND...: appends the command's JSON line to $RES.
run() {
	label=$1
	shift
	echo "  $*" | sed "s|$OUT/||g"
	if ! BENCH_LABEL="$label" "$@" >>"$RES" 2>"$OUT/last.err"; then
		echo "    failed:" >&2
		sed 's/^/    /' "$OUT/last.err" >&2
	fi
}

modes=default
[ "${UNSET:-0}" = 1 ] && modes="default unset"
for mode in $modes; do
	if [ "$mode" = default ]; then
		env="machine's env"
		set --
	else
		env="OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
		set -- env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
	fi
	for r in $(seq "$ROUNDS"); do
		label="$env, round $r"
		echo "== $label"
		for w in "forward 224 1" "forward 224 8" "trainfull 32 16" "train 32 16"; do
			set -- $w
			kind=$1 size=$2 batch=$3
			shift 3
			iters=$ITERS
			[ "$batch" = 8 ] && iters=$(( (ITERS + 1) / 2 ))
			tk="-mode $kind"
			tp="--mode $kind"
			if [ "$kind" = trainfull ]; then
				tk="-mode train -classes 10 -adam"
				tp="--mode train --classes 10 --adam"
			fi
			for bin in $BINS; do
				impl=toolkit
				case $bin in *openblas) impl=toolkit-openblas ;; esac
				run "$label" "$bin" -json -impl $impl -model "$MODEL" $tk -size "$size" -batch "$batch" -iters "$iters"
				if [ "$AVX2" = yes ] && [ "$impl" = toolkit ]; then
					run "$label" "$bin" -json -impl toolkit-avx2 -kernels avx2 -model "$MODEL" $tk -size "$size" -batch "$batch" -iters "$iters"
				fi
			done
			if [ "$HAVE_TORCH" = yes ]; then
				run "$label" "$PY" tools/bench/torch_bench.py --threads 2 $tp --size "$size" --batch "$batch" --iters "$iters"
				if [ "$AVX2" = yes ]; then
					run "$label" env BENCH_IMPL=pytorch-avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \
						"$PY" tools/bench/torch_bench.py --threads 2 $tp --size "$size" --batch "$batch" --iters "$iters"
				fi
			fi
			if [ "$HAVE_ORT" = yes ] && [ "$kind" = forward ]; then
				run "$label" env ORT_NODE_MODULES="$ORT_DIR" node tools/bench/ort_bench.js "$MODEL" "$batch" "$size" "$iters" 2
			fi
		done
	done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$OUT/bench-go" -report "$RES"
