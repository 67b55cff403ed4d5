#!/bin/sh
# families.sh: the table of the torchvision families for the issues' closing notes: PyTorch
# parity; the forward pass at 224 against PyTorch and ONNX Runtime; the training step
# (forward, backward, Adam) at batch 16 and 32 against PyTorch, with each side's peak memory
# and cores busy; PyTorch's bfloat16 autocast step beside them. Run it on a quiet machine (the
# timings are worthless on a shared one):
#
#   tools/bench/families.sh                        # every family
#   FAMILIES=resnet50,mobilenet_v2 ITERS=3 SKIP_PARITY=1 tools/bench/families.sh
#
# Steps, with OUT a new temporary folder unless given:
#   1. parity: tools/make_family_fixtures.py --full (the real resnet50, convnext_tiny, vit_b_16,
#      swin_t) at 32 px into $OUT/fixtures, then the backend's TestFamiliesPyTorchParity on
#      them; its table (largest relative error of the output and of the gradients of the
#      input and of every parameter, per export: opsets 13 and 17, and the default folded one)
#      goes to $OUT/parity.txt.
#   2. timing at each size of $SIZES (224): tools/bench/torch_families.py exports each family
#      (opset 17, BatchNorm kept) and times PyTorch, one process per workload so that each
#      has its own peak memory: the forward pass (eval, batch $FORWARD_BATCH, $FORWARD_ITERS
#      runs: 30 by default; the toolkit's with constant weights, as predict's) and, for each
#      batch of $TRAIN_BATCHES (16 32), the training step (train mode, a forward and backward
#      pass through every parameter and an Adam step); with BF16=1 (the default where the CPU
#      has avx512_bf16) also the training step at the first batch size under
#      torch.autocast("cpu", dtype=torch.bfloat16), and the toolkit's with its bfloat16 products
#      (-kernels avx512bf16). `go run ./tools/bench` times the toolkit on the same file and
#      workloads (-adam), tools/bench/ort_bench.js ONNX Runtime's forward
#      pass where tools/ort is installed. 2 threads everywhere. Each side reports its best
#      and median time, its CPU seconds per step (cores = CPU / median wall; the toolkit's
#      CPU less the seconds its kernels' workers spent polling for work) and its peak
#      resident memory.
#   3. the table: $OUT/families.md (and printed): per family, the toolkit's time / the
#      reference's and the ratio reference / toolkit (above 1, the toolkit is faster).
# Set SKIP_PARITY=1 to time only, SKIP_TIMING=1 for the parity table only. ISA=avx2 times
# both sides as on a CPU without AVX-512: the toolkit with -kernels avx2 (and
# TOOLKIT_KERNELS=avx2 for the parity tests), PyTorch with oneDNN's DNNL_MAX_CPU_ISA=AVX2
# and ATEN_CPU_CAPABILITY=avx2 (the fixtures too); no bfloat16 column, and no ONNX
# Runtime (it has no such switch). Give the CPU (the script prints it) with the numbers.
set -eu

cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
ALL=resnet18,resnet50,mobilenet_v2,mobilenet_v3_small,efficientnet_b0,mnasnet0_5,regnet_y_400mf,shufflenet_v2_x1_0,convnext_tiny,densenet121,googlenet,squeezenet1_1,vit_b_16,swin_t,alexnet,vgg16_bn,vgg19
FAMILIES=${FAMILIES:-$ALL}
# AlexNet and VGG run only at 224 (their adaptive pooling) and are too large for the fixture
# script; their parity is the backend's VGG tests' (TestVGG19AgainstPyTorch, the parity fixtures).
PARITY_FAMILIES=$(echo "$FAMILIES" | tr ',' '\n' | grep -v -e '^alexnet$' -e '^vgg' | paste -sd, -)
ITERS=${ITERS:-5}
# The forward pass at batch 1 takes 2-150 ms: a median of ITERS runs is too noisy there.
FORWARD_ITERS=${FORWARD_ITERS:-30}
FORWARD_BATCH=${FORWARD_BATCH:-1}
TRAIN_BATCHES=${TRAIN_BATCHES:-"16 32"}
SIZES=${SIZES:-224}
BF16_DEFAULT=0
grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null && BF16_DEFAULT=1
BF16=${BF16:-$BF16_DEFAULT}
ISA=${ISA:-}
KERNELS=
case "$ISA" in
"") ;;
avx2)
	KERNELS="-kernels avx2" BF16=0
	export DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 TOOLKIT_KERNELS=avx2
	;;
*)
	echo "families.sh: ISA=$ISA: only avx2 (or nothing, the CPU's best) is known" >&2
	exit 2
	;;
esac
OUT=${OUT:-$(mktemp -d /tmp/families.XXXXXX)}
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
[ "${SKIP_TIMING:-}" = 1 ] || : >"$RES"
echo "families.sh: results in $OUT" >&2
[ "${SKIP_TIMING:-}" = 1 ] || {
	grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
	echo "flags: $(grep -o -w 'avx2\|fma\|avx512[a-z_0-9]*\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
	echo "cores: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	[ -z "$ISA" ] || echo "isa: $ISA (toolkit $KERNELS; PyTorch DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY; no ONNX Runtime)"
} | tee "$OUT/machine.txt" >&2

ORT_DIR=${ORT_NODE_MODULES:-tools/ort/node_modules}
HAVE_ORT=no
if [ -z "$ISA" ] && command -v node >/dev/null 2>&1 && [ -d "$ORT_DIR/onnxruntime-node" ]; then
	HAVE_ORT=yes
	ORT_DIR=$(cd "$ORT_DIR" && pwd)
fi

if [ "${SKIP_PARITY:-}" != 1 ] && [ -n "$PARITY_FAMILIES" ]; then
	$PY tools/make_family_fixtures.py "$OUT/fixtures" --full --families "$PARITY_FAMILIES" >&2
	TOOLKIT_FAMILY_FIXTURES="$OUT/fixtures" go test -count=1 -v -run 'TestFamiliesPyTorchParity$' ./backend/ \
		| sed -n '/largest relative errors against PyTorch/,/^--- /p' | grep -v '^--- ' >"$OUT/parity.txt"
fi

if [ "${SKIP_TIMING:-}" != 1 ]; then
	go build -o "$OUT/bench" ./tools/bench
	for size in $SIZES; do
		for f in $(echo "$FAMILIES" | tr ',' ' '); do
			model="$OUT/models/${f}_${size}.onnx"
			tf() { $PY tools/bench/torch_families.py --size "$size" --families "$f" --export "$OUT/models" --iters "$ITERS" "$@" >>"$RES" || echo "PyTorch $f at $size ($*) failed" >&2; }
			tf --modes forward --forward-batch "$FORWARD_BATCH" --iters "$FORWARD_ITERS"
			[ -f "$model" ] || continue
			BENCH_LABEL=$f "$OUT/bench" -json $KERNELS -model "$model" -mode forward -size "$size" -batch "$FORWARD_BATCH" -iters "$FORWARD_ITERS" >>"$RES" ||
				echo "toolkit forward $f at $size failed" >&2
			if [ "$HAVE_ORT" = yes ]; then
				BENCH_LABEL=$f ORT_NODE_MODULES="$ORT_DIR" node tools/bench/ort_bench.js "$model" "$FORWARD_BATCH" "$size" "$FORWARD_ITERS" 2 >>"$RES" ||
					echo "ONNX Runtime forward $f at $size failed" >&2
			fi
			first=
			for b in $TRAIN_BATCHES; do
				tf --modes train --train-batch "$b" --adam
				BENCH_LABEL=$f "$OUT/bench" -json $KERNELS -model "$model" -mode train -adam -size "$size" -batch "$b" -iters "$ITERS" >>"$RES" ||
					echo "toolkit train $f at $size, batch $b failed" >&2
				if [ -z "$first" ] && [ "$BF16" = 1 ]; then
					tf --modes train --train-batch "$b" --adam --bf16
					BENCH_LABEL=$f "$OUT/bench" -json -impl toolkit-bf16 -kernels avx512bf16 -model "$model" -mode train -adam -size "$size" -batch "$b" -iters "$ITERS" >>"$RES" ||
						echo "toolkit bf16 train $f at $size, batch $b failed" >&2
				fi
				first=done
			done
		done
	done
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
fi

$PY - "$OUT" "$TRAIN_BATCHES" <<'PYEOF' | tee "$OUT/families.md"
import json, os, sys
out, batches = sys.argv[1], [int(b) for b in sys.argv[2].split()]
parity = {}
p = os.path.join(out, "parity.txt")
if os.path.exists(p):
    for line in open(p):
        f = line.split()
        if len(f) >= 5 and f[1].endswith(".onnx"):
            parity.setdefault(f[0], {})[f[1]] = f[2:5]
res = {}
rp = os.path.join(out, "results.jsonl")
if os.path.exists(rp):
    for line in open(rp):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        res[(r.get("label"), r["impl"], r["mode"], r["size"], r["batch"])] = r
mp = os.path.join(out, "machine.txt")
if os.path.exists(mp):
    print("".join("    " + l for l in open(mp)))
fams = sorted(set(list(parity) + [k[0] for k in res]))
sizes = sorted({k[3] for k in res}, reverse=True)


def cell(a, b):
    if not a or not b:
        return "-"
    return "%.3f / %.3f s (**%.2fx**)" % (a["best_s"], b["best_s"], b["best_s"] / a["best_s"])


def cores(r):
    # The toolkit's CPU time less what its kernels' workers spent polling for work.
    return "%.2f" % ((r["cpu_s_per_run"] - r.get("spin_s_per_run", 0)) / r["median_s"]) if r and r.get("median_s") else "-"


def mem(r):
    return "%.0f" % r["peak_rss_mb"] if r and r.get("peak_rss_mb") else "-"


for s in sizes:
    b0 = batches[0] if batches else None  # TRAIN_BATCHES=" ": the forward passes alone
    head = "| family | fwd %d: toolkit / PyTorch | fwd: toolkit / ORT |" % s
    for b in batches:
        head += " train b%d: toolkit / PyTorch | cores | peak MB |" % b
    if b0:
        head += " bf16 b%d: toolkit / PyTorch autocast | peak MB |" % b0
    print(head)
    print("|" + "---|" * (3 + 3 * len(batches) + (2 if b0 else 0)))
    for fam in fams:
        fb = min([k[4] for k in res if k[0] == fam and k[2] == "forward" and k[3] == s] or [1])
        t, pt, o = (res.get((fam, i, "forward", s, fb)) for i in ("toolkit", "pytorch", "onnxruntime"))
        row = "| %s | %s | %s |" % (fam, cell(t, pt), cell(t, o))
        for b in batches:
            t, pt = res.get((fam, "toolkit", "train", s, b)), res.get((fam, "pytorch", "train", s, b))
            row += " %s | %s / %s | %s / %s |" % (cell(t, pt), cores(t), cores(pt), mem(t), mem(pt))
        if b0:
            t, pb = res.get((fam, "toolkit-bf16", "train", s, b0)), res.get((fam, "pytorch-bf16", "train", s, b0))
            row += " %s | %s / %s |" % (cell(t, pb), mem(t), mem(pb))
        print(row)
    print()
if parity:
    print("| family | parity: output / d input / d params (opset 13; opset 17; folded) |")
    print("|---|---|")
    for fam in sorted(parity):
        cells = ["/".join(parity[fam][f]) for f in ("model_opset13.onnx", "model_opset17.onnx", "model_fused_opset13.onnx") if f in parity[fam]]
        print("| %s | %s |" % (fam, "; ".join(cells)))
PYEOF
