#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops for the active Python/torch.
#
# mmdet 3.3.0 accepts mmcv < 2.2, and mmcv 2.1.0 ships no wheel for current torch, so it is built
# from the PyPI sdist. torch >= 2.10 headers need C++20, while mmcv's setup.py asks for C++17: the
# flag is raised before building (for g++ and nvcc alike). The wheel is cached under
# $MMCONV_CACHE_DIR (default ~/.cache/mmconv/wheels), keyed by mmcv/torch/python versions and, for
# CUDA builds, the CUDA version and arch list, so a second install takes seconds.
#
# CUDA ops are built when torch is a CUDA build and FORCE_CUDA=1 is set or a GPU is present
# (mmdet's Faster/Mask R-CNN and RetinaNet need RoIAlign and NMS on the GPU). No GPU is needed to
# build them: TORCH_CUDA_ARCH_LIST (default: the GPUs present, else "8.0;9.0", A100 and H100/H200)
# says what to compile for. Without an nvcc of torch's CUDA major version (looked up in
# $CUDA_HOME, then on PATH), the matching toolchain is installed from PyPI into this Python's
# environment (nvidia-cuda-nvcc, -cccl, -crt and nvidia-nvvm, pinned to torch's CUDA X.Y; torch's
# own CUDA wheels bring the runtime and library headers beside it) and CUDA_HOME points there.
#
# Usage:
#   tools/misc/build_mmcv.sh [PYTHON]                 build (or reuse) and install mmcv
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" tools/misc/build_mmcv.sh .venv/bin/python
#   tools/misc/build_mmcv.sh --check-cuda [PYTHON]   compile only RoIAlign and NMS (the ops the
#       detectors need) for TORCH_CUDA_ARCH_LIST with the same toolchain, patches and flags, and
#       check with cuobjdump that each arch holds their kernels; installs nothing (`make check-cuda-build`)
set -euo pipefail

CHECK_CUDA=0
if [ "${1:-}" = --check-cuda ]; then
    CHECK_CUDA=1
    export FORCE_CUDA=1
    shift
fi
PYTHON=${1:-python}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
CACHE_DIR=${MMCONV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mmconv/wheels}
# The sources the --check-cuda build compiles: each op's dispatcher and its CUDA kernels.
CHECK_SOURCES="roi_align roi_align_cuda nms nms_cuda"

say() { printf '[build_mmcv] %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

# torch's version, the Python tag, torch's CUDA version ('none' for a CPU build), GPUs present.
read -r TORCH_V PY_V TORCH_CUDA GPU_COUNT < <("$PYTHON" - <<'PY'
import sys, torch
print(torch.__version__.split('+')[0], f'cp{sys.version_info[0]}{sys.version_info[1]}',
      torch.version.cuda or 'none', torch.cuda.device_count() if torch.version.cuda else 0)
PY
)
WANT_CUDA=0
if [ "$TORCH_CUDA" != none ] && { [ "${FORCE_CUDA:-0}" = 1 ] || [ "$GPU_COUNT" -gt 0 ]; }; then
    WANT_CUDA=1
elif [ "$CHECK_CUDA" = 1 ]; then
    die "--check-cuda needs a CUDA build of torch; this torch $TORCH_V is a CPU build."
fi

if [ "$CHECK_CUDA" = 0 ] && "$PYTHON" - "$MMCV_VERSION" "$WANT_CUDA" <<'PY' 2>/dev/null; then
import sys, importlib.metadata as md, importlib.util
ok = md.version('mmcv') == sys.argv[1] and importlib.util.find_spec('mmcv._ext') is not None
if ok and sys.argv[2] == '1':  # a CPU-only build does not do for a CUDA request
    from mmcv.ops import get_compiling_cuda_version
    ok = get_compiling_cuda_version() != 'not available'
sys.exit(0 if ok else 1)
PY
    say "mmcv $MMCV_VERSION with compiled ops is already installed."
    exit 0
fi

# Prints CUDA_HOME of an nvcc of CUDA major version $1: $CUDA_HOME's, else the one on PATH.
find_cuda_home() {
    local nvcc home release
    for nvcc in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} "$(command -v nvcc || true)"; do
        [ -n "$nvcc" ] && [ -x "$nvcc" ] || continue
        release=$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1/p')
        # nvcc names its own installation (TOP), also when $nvcc is a wrapper script or a link.
        home=$(cd "$("$nvcc" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p')" && pwd)
        if [ "$release" = "$1" ]; then echo "$home"; return 0; fi
        say "Ignoring $nvcc: CUDA $release, but torch was built with CUDA $TORCH_CUDA." >&2
    done
    return 1
}

# Installs the CUDA toolchain matching torch from PyPI; prints its CUDA_HOME.
install_pypi_toolchain() {
    local major=${TORCH_CUDA%%.*} home
    if [ "$major" -lt 13 ]; then
        die "No nvcc for CUDA $TORCH_CUDA found; install the CUDA $TORCH_CUDA toolkit and set CUDA_HOME" \
            "(the PyPI toolchain is supported from CUDA 13 on)."
    fi
    say "No nvcc for CUDA $major found: installing CUDA $TORCH_CUDA's nvcc, CCCL, CRT and NVVM from PyPI." >&2
    "$PYTHON" -m pip install -q --disable-pip-version-check "nvidia-cuda-nvcc==$TORCH_CUDA.*" \
        "nvidia-cuda-cccl==$TORCH_CUDA.*" "nvidia-cuda-crt==$TORCH_CUDA.*" "nvidia-nvvm==$TORCH_CUDA.*" >&2
    # CUDA 13 wheels share one prefix, site-packages/nvidia/cu13, with torch's runtime and headers.
    home=$("$PYTHON" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu$major'))")
    [ -x "$home/bin/nvcc" ] || die "The PyPI toolchain has no nvcc at $home/bin/nvcc."
    echo "$home"
}

ARCH_TAG=""
if [ "$WANT_CUDA" = 1 ]; then
    if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
        if [ "$GPU_COUNT" -gt 0 ]; then
            TORCH_CUDA_ARCH_LIST=$("$PYTHON" -c 'import torch; print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})))')
        else
            TORCH_CUDA_ARCH_LIST="8.0;9.0"
        fi
    fi
    export TORCH_CUDA_ARCH_LIST
    ARCH_TAG="_sm$(echo "$TORCH_CUDA_ARCH_LIST" | tr -d '.+' | tr ' ;' '--')"
    CUDA_HOME=$(find_cuda_home "${TORCH_CUDA%%.*}" || install_pypi_toolchain)
    export CUDA_HOME FORCE_CUDA=1
    # torch's CUDA headers include cuBLAS and cuSPARSE headers, which a toolkit of only nvcc, CCCL
    # and CRT lacks; torch's own CUDA wheels bring them (CUDA_INC_PATH: torch's extra include dir).
    WHEEL_INCLUDE=$("$PYTHON" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu${TORCH_CUDA%%.*}', 'include'))" 2>/dev/null || true)
    if [ ! -e "$CUDA_HOME/include/cusparse.h" ] && [ -e "$WHEEL_INCLUDE/cusparse.h" ]; then
        export CUDA_INC_PATH=$WHEEL_INCLUDE
    fi
    say "CUDA ops for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST with $CUDA_HOME/bin/nvcc" \
        "($("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*\(release [0-9.]*\).*/\1/p'))."
    KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_V}_${PY_V}_cu${TORCH_CUDA}${ARCH_TAG}"
else
    KEY="mmcv-${MMCV_VERSION}_torch-${TORCH_V}_${PY_V}_cpu"
fi
WHEEL_DIR="$CACHE_DIR/$KEY"

# Lists, per arch of the arch list, which of the kernels named in $2.. the binary $1 holds.
check_cuda_kernels() {
    local binary=$1; shift
    local cuobjdump="$CUDA_HOME/bin/cuobjdump" arch sm missing=0 kernel
    if [ ! -x "$cuobjdump" ]; then
        # PyPI has cuobjdump from CUDA 13.2 on; any release of the same major reads the build.
        say "Installing cuobjdump (nvidia-cuda-cuobjdump, CUDA ${TORCH_CUDA%%.*}.x) to inspect the build."
        "$PYTHON" -m pip install -q --disable-pip-version-check \
            "nvidia-cuda-cuobjdump>=${TORCH_CUDA%%.*},<$((${TORCH_CUDA%%.*} + 1))"
        cuobjdump="$("$PYTHON" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu${TORCH_CUDA%%.*}'))")/bin/cuobjdump"
    fi
    say "cuobjdump --list-elf: $("$cuobjdump" --list-elf "$binary" | grep -o 'sm_[0-9]*' | sort | uniq -c | tr -s ' \n' ' ')"
    for arch in $(echo "$TORCH_CUDA_ARCH_LIST" | tr ';' ' '); do
        sm="sm_$(echo "${arch%+PTX}" | tr -d .)"
        local functions count
        functions=$("$cuobjdump" --dump-elf-symbols --gpu-architecture "$sm" "$binary" 2>/dev/null | grep FUNC || true)
        for kernel in "$@"; do
            # A mangled name spells an identifier as its length then its characters.
            count=$(grep -cE "(^|[^0-9])${#kernel}${kernel}" <<<"$functions" || true)
            if [ "$count" -gt 0 ]; then
                say "  $sm: $kernel ($count instantiations)"
            else
                say "  $sm: no $kernel kernel" >&2
                missing=1
            fi
        done
    done
    return $missing
}

if [ "$CHECK_CUDA" = 0 ] && ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    say "Using the cached wheel in $WHEEL_DIR."
    "$PYTHON" -m pip install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
    say "Installed mmcv $MMCV_VERSION."
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say "Downloading the mmcv $MMCV_VERSION sdist from PyPI..."
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$WORK"
tar -xzf "$WORK"/mmcv-"$MMCV_VERSION".tar.gz -C "$WORK"
SRC="$WORK/mmcv-$MMCV_VERSION"
# torch >= 2.10 headers use C++20 features.
sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
export MMCV_WITH_OPS=1
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
if [ "$WANT_CUDA" = 1 ]; then
    # Extensions link -lcudart; the CUDA 13 wheels ship only libcudart.so.13, so the unversioned
    # name the linker looks for is provided in a folder of the build's own.
    if [ ! -e "$CUDA_HOME/lib64/libcudart.so" ] && [ ! -e "$CUDA_HOME/lib/libcudart.so" ]; then
        mkdir -p "$WORK/link"
        ln -s "$(ls "$CUDA_HOME"/lib*/libcudart.so.* | head -n 1)" "$WORK/link/libcudart.so"
        export LIBRARY_PATH="$WORK/link${LIBRARY_PATH:+:$LIBRARY_PATH}"
    fi
    if [ "$CHECK_CUDA" = 1 ]; then
        # Only the listed sources of the CUDA extension (same flags); the link leaves the other
        # ops' symbols undefined, which a shared object may, and nothing imports it.
        "$PYTHON" - "$SRC/setup.py" "$CHECK_SOURCES" <<'PY'
import sys
path, names = sys.argv[1], sys.argv[2].split()
text = open(path).read()
anchor = "                glob.glob('./mmcv/ops/csrc/pytorch/cuda/*.cpp')\n"
assert text.count(anchor) == 1, 'mmcv setup.py changed: update build_mmcv.sh --check-cuda'
keep = (f"            op_files = [f for f in op_files if os.path.basename(f).rsplit('.', 1)[0] in {names!r}]\n")
open(path, 'w').write(text.replace(anchor, anchor + keep))
PY
    fi
    say "Compiling CPU and CUDA ops (this takes about an hour on 2 cores; compiler progress follows)."
else
    say "Compiling CPU ops (no CUDA build of torch, or no FORCE_CUDA=1 and no GPU)."
    say "This takes about 10 minutes on 2 cores; compiler progress follows."
fi
LOG="$WORK/build.log"
START=$SECONDS
# Keep the user informed: one numbered line per compiled source, the full log only on failure.
"$PYTHON" -m pip wheel -v --no-deps --no-build-isolation "$SRC" -w "$WORK/dist" 2>&1 \
    | tee "$LOG" \
    | awk 'match($0, / -c [^ ]+\.(cpp|cu)/) {
               src = substr($0, RSTART + 4, RLENGTH - 4)
               if (!seen[src]++) { printf "[build_mmcv]   [%d] compiling %s\n", ++n, src; fflush() }
           }' || true
if ! ls "$WORK"/dist/mmcv-*.whl >/dev/null 2>&1; then
    grep -B 2 -A 12 -m 3 -E 'error|Error' "$LOG" >&2 || tail -n 60 "$LOG" >&2
    die "Building mmcv failed after $((SECONDS - START)) s; the compiler's first errors are printed above."
fi
WHEEL=$(ls "$WORK"/dist/mmcv-*.whl)
say "Built $(basename "$WHEEL") in $((SECONDS - START)) s ($(du -h "$WHEEL" | cut -f1))."
if [ "$WANT_CUDA" = 1 ]; then
    mkdir -p "$WORK/ext"
    "$PYTHON" -m zipfile -e "$WHEEL" "$WORK/ext"
    EXT=$(ls "$WORK"/ext/mmcv/_ext*.so)
    say "$(basename "$EXT"): $(du -h "$EXT" | cut -f1)."
    check_cuda_kernels "$EXT" roi_align_forward_cuda_kernel roi_align_backward_cuda_kernel nms_cuda || die "The build lacks kernels for an arch of $TORCH_CUDA_ARCH_LIST."
fi
if [ "$CHECK_CUDA" = 1 ]; then
    say "RoIAlign and NMS compile for $TORCH_CUDA_ARCH_LIST with CUDA $TORCH_CUDA (nothing installed)."
    exit 0
fi
mkdir -p "$WHEEL_DIR"
# Copy then rename, so an interrupted copy never leaves a half-written wheel in the cache.
cp "$WHEEL" "$WHEEL_DIR/.$(basename "$WHEEL").part"
mv "$WHEEL_DIR/.$(basename "$WHEEL").part" "$WHEEL_DIR/$(basename "$WHEEL")"
say "Cached the wheel in $WHEEL_DIR."
"$PYTHON" -m pip install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
say "Installed mmcv $MMCV_VERSION."
