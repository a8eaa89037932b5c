# `make demo` and `make test` set up .venv on first use (see README, "Installation").
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmconv-env
ENV_INPUTS := requirements/constraints.txt requirements/runtime.txt requirements/torch.txt \
	requirements/build.txt requirements/tests.txt tools/misc/setup_env.sh tools/misc/build_mmcv.sh \
	pyproject.toml

.PHONY: install demo lint test check-cuda-build clean-demo

$(STAMP): $(ENV_INPUTS)
	bash tools/misc/setup_env.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/misc/demo.py

lint: $(STAMP)
	$(PY) -m flake8 mmconv tools tests demo configs
	$(PY) -m isort --check-only --quiet mmconv tools tests demo configs
	$(PY) -m yapf --diff --recursive --parallel mmconv tools tests demo configs
	$(PY) -m codespell_lib mmconv tools tests demo configs docs README.md CHANGELOG.md

test: lint
	$(PY) -m pytest tests -q

# Compile mmcv's RoIAlign and NMS CUDA sources for sm_80 and sm_90 as the CUDA build does (no GPU
# needed; about 3 minutes on 2 cores, so not part of `make test`).
check-cuda-build: $(STAMP)
	TORCH_CUDA_ARCH_LIST="8.0;9.0" bash tools/misc/build_mmcv.sh --check-cuda $(PY)

clean-demo:
	rm -rf data/demo work_dirs/demo
