#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops for the active Python/torch.
#
# mmdet 3.3.0 accepts mmcv < 2.2, and mmcv 2.1.0 ships no wheel for current torch, so it is built
# from the PyPI sdist. torch >= 2.10 headers need C++20, while mmcv's setup.py asks for C++17: the
# flag is raised before building. The wheel is cached under $MMCONV_CACHE_DIR (default
# ~/.cache/mmconv/wheels), keyed by mmcv/torch/python/CUDA versions, so a second install takes seconds.
#
# Usage: tools/misc/build_mmcv.sh [PYTHON]   (PYTHON defaults to `python`)
set -euo pipefail

PYTHON=${1:-python}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
CACHE_DIR=${MMCONV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mmconv/wheels}

say() { printf '[build_mmcv] %s\n' "$*"; }

if "$PYTHON" - "$MMCV_VERSION" <<'PY' 2>/dev/null; then
import sys, importlib.metadata as md, importlib.util
ok = md.version('mmcv') == sys.argv[1] and importlib.util.find_spec('mmcv._ext') is not None
sys.exit(0 if ok else 1)
PY
    say "mmcv $MMCV_VERSION with compiled ops is already installed."
    exit 0
fi

read -r TORCH_V PY_V CUDA_TAG < <("$PYTHON" - <<'PY'
import sys, torch
has_gpu_build = torch.version.cuda is not None and torch.cuda.is_available()
print(torch.__version__.split('+')[0], f'cp{sys.version_info[0]}{sys.version_info[1]}',
      f'cu{torch.version.cuda}' if has_gpu_build else 'cpu')
PY
)
KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_V}_${PY_V}_${CUDA_TAG}"
WHEEL_DIR="$CACHE_DIR/$KEY"

if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    say "No cached wheel for $KEY: building mmcv $MMCV_VERSION from source."
    say "Downloading the sdist from PyPI..."
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$WORK"
    tar -xzf "$WORK"/mmcv-"$MMCV_VERSION".tar.gz -C "$WORK"
    SRC="$WORK/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers use C++20 features.
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    export MMCV_WITH_OPS=1
    export MAX_JOBS=${MAX_JOBS:-$(nproc)}
    if [ "$CUDA_TAG" != cpu ] && command -v nvcc >/dev/null 2>&1; then
        export FORCE_CUDA=1
        if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
            TORCH_CUDA_ARCH_LIST=$("$PYTHON" -c 'import torch; print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})))')
            export TORCH_CUDA_ARCH_LIST
        fi
        say "Compiling CPU and CUDA ops (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)."
    else
        say "Compiling CPU ops (no CUDA toolkit or GPU found)."
    fi
    say "This takes about 10 minutes on 2 cores; compiler progress follows."
    LOG="$WORK/build.log"
    # Keep the user informed: one numbered line per compiled source, the full log only on failure.
    "$PYTHON" -m pip wheel -v --no-deps --no-build-isolation "$SRC" -w "$WORK/dist" 2>&1 \
        | tee "$LOG" \
        | awk 'match($0, / -c [^ ]+\.(cpp|cu)/) {
                   src = substr($0, RSTART + 4, RLENGTH - 4)
                   if (!seen[src]++) { printf "[build_mmcv]   [%d] compiling %s\n", ++n, src; fflush() }
               }' || true
    if ! ls "$WORK"/dist/mmcv-*.whl >/dev/null 2>&1; then
        tail -n 60 "$LOG" >&2
        say "Building mmcv failed; the end of the compiler log is printed above." >&2
        exit 1
    fi
    mkdir -p "$WHEEL_DIR"
    # Copy then rename, so an interrupted copy never leaves a half-written wheel in the cache.
    for whl in "$WORK"/dist/mmcv-*.whl; do
        cp "$whl" "$WHEEL_DIR/.$(basename "$whl").part"
        mv "$WHEEL_DIR/.$(basename "$whl").part" "$WHEEL_DIR/$(basename "$whl")"
    done
    say "Cached the wheel in $WHEEL_DIR."
else
    say "Using the cached wheel in $WHEEL_DIR."
fi

"$PYTHON" -m pip install -q --no-deps "$WHEEL_DIR"/mmcv-*.whl
say "Installed mmcv $MMCV_VERSION."
