#!/usr/bin/env bash
# Create (or complete) the virtual environment that `make demo` and `make test` use.
# Usage: tools/misc/setup_env.sh VENV_DIR
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/../.."

say() { printf '[setup] %s\n' "$*"; }

PYTHON_BIN=${PYTHON:-}
if [ -z "$PYTHON_BIN" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON_BIN=$candidate; break; fi
    done
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "Creating $VENV with $("$PYTHON_BIN" --version)."
    "$PYTHON_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check -c requirements/constraints.txt)

say "Installing build requirements and PyTorch (torch 2.14.1 comes from the local wheel cache when present)."
"${PIP[@]}" -r requirements/build.txt
"${PIP[@]}" -r requirements/torch.txt
say "Installing mmengine."
"${PIP[@]}" mmengine==0.10.7
bash tools/misc/build_mmcv.sh "$PY"
say "Installing mmpretrain, mmdet and test requirements."
"${PIP[@]}" -r requirements/runtime.txt -r requirements/tests.txt
# mmengine and mmcv import pkg_resources: keep setuptools below 82 even if a dependency raised it.
"${PIP[@]}" -r requirements/build.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
"$PY" - <<'PY'
import mmcv, mmdet, mmengine, mmpretrain, torch
from mmcv.ops import nms  # noqa: F401  (the compiled ops are present)
print(f'[setup] Ready: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmpretrain {mmpretrain.__version__}.')
PY
