#!/usr/bin/env bash
# One prepared run for the first GPU machine: the operators against their references on the device,
# the op benchmark, and (when mmengine/mmpretrain/mmcv import) the model-level benchmark, written
# into one markdown report. Needs torch (+ triton for the CUDA involution kernels) for the operator
# part; builds nothing. Each step has its own time limit, so the whole run stays within ~8 minutes.
#
# Usage: tools/misc/gpu_check.sh [--device cuda|cpu] [--out REPORT.md] [--quick] [--wheelhouse DIR]
#   --quick       small shapes and few repeats (the CPU rehearsal in the tests uses it)
#   --wheelhouse  a folder of wheels (mmengine, mmpretrain, mmcv-lite and their pure-Python
#                 dependencies) installed offline for the model benchmark when those do not import
set -uo pipefail

DEVICE=cuda
OUT=gpu_check_report.md
QUICK=0
WHEELHOUSE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
        *) echo "gpu_check.sh: error: unknown argument '$1'; see the usage at the top of the script." >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check.sh: error: '$PY' cannot import torch; set PYTHON to the interpreter that has it." >&2
    exit 2
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check.sh: error: torch sees no CUDA device; pass --device cpu to rehearse on the CPU." >&2
    exit 2
fi

if [ "$QUICK" = 1 ]; then
    OP_SIZE=8; BENCH_OPS=(--ops involution7 scc3 --shape 2 16 12 12 --repeat 1)
    BENCH_MODELS=(--batch 2 --size 32 --repeat 1); MODEL_MODES=(eager); MODEL_DTYPES=(fp32); MODELS=(--models SDNet-18)
else
    OP_SIZE=56; BENCH_OPS=(--repeat 20 --compile); BENCH_MODELS=(--batch 32 --size 224 --repeat 10)
    MODEL_MODES=(eager compiled); MODEL_DTYPES=(fp32 bf16); MODELS=()
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
FAILED=0

# step TITLE SECONDS COMMAND...: run COMMAND under a time limit and append its output to the report.
step() {
    local title="$1" limit="$2"; shift 2
    local start=$SECONDS status
    timeout "$limit" "$@" >"$TMP/out" 2>"$TMP/err"
    status=$?
    {
        echo "## $title"
        echo
        cat "$TMP/out"
        if [ $status -ne 0 ]; then
            echo
            [ $status -eq 124 ] && echo "**Stopped after ${limit} s.**" || echo "**Exit status $status:**"
            echo '```'; tail -n 20 "$TMP/err"; echo '```'
        fi
        echo
        echo "_$((SECONDS - start)) s_"
        echo
    } >>"$OUT"
    [ $status -eq 0 ] || FAILED=1
}

{
    echo "# mmconv GPU check"
    echo
    echo '```'
    "$PY" - "$DEVICE" <<'PYEOF'
import platform, sys, torch
print(f'python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}')
try:
    import triton
    print(f'triton {triton.__version__}')
except ImportError:
    print('triton: not installed')
if sys.argv[1] == 'cuda':
    print(torch.cuda.get_device_name(0), f'{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB')
PYEOF
    grep -m1 'model name' /proc/cpuinfo 2>/dev/null
    echo '```'
    echo
} >"$OUT"

step "Operators against their references ($DEVICE)" 150 \
    "$PY" "$REPO/tools/misc/check_ops_on_device.py" --device "$DEVICE" --size "$OP_SIZE"
step "Operator benchmark ($DEVICE; involution: Triton vs unfold on CUDA)" 180 \
    "$PY" "$REPO/tools/analysis_tools/benchmark_ops.py" --device "$DEVICE" "${BENCH_OPS[@]}"

if ! "$PY" -c "import mmengine, mmpretrain, mmcv" 2>/dev/null && [ -n "$WHEELHOUSE" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELHOUSE" mmengine mmpretrain mmcv-lite >"$TMP/pip" 2>&1 \
        || { echo "(offline install from $WHEELHOUSE failed: $(tail -n 1 "$TMP/pip"))" >>"$OUT"; }
fi
if MISSING="$("$PY" -c "import mmengine, mmpretrain, mmcv" 2>&1)"; then
    step "Model benchmark ($DEVICE)" 240 \
        "$PY" "$REPO/tools/analysis_tools/benchmark_models.py" --device "$DEVICE" --modes "${MODEL_MODES[@]}" \
        --dtypes "${MODEL_DTYPES[@]}" "${MODELS[@]}" "${BENCH_MODELS[@]}"
else
    printf '## Model benchmark\n\nSkipped: the model benchmark needs mmengine, mmpretrain and mmcv (%s); pass --wheelhouse DIR.\n\n' \
        "$(echo "$MISSING" | tail -n 1)" >>"$OUT"
fi

echo "gpu_check.sh: report written to $OUT"
exit $FAILED
