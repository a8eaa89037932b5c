# `make demo` and `make test` set up .venv on first use (see README, "Installation").
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmconv-env
ENV_INPUTS := requirements/constraints.txt requirements/runtime.txt requirements/torch.txt \
	requirements/build.txt requirements/tests.txt tools/misc/setup_env.sh tools/misc/build_mmcv.sh \
	pyproject.toml

.PHONY: install demo lint test clean-demo

$(STAMP): $(ENV_INPUTS)
	bash tools/misc/setup_env.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tools/misc/demo.py

lint: $(STAMP)
	$(PY) -m flake8 mmconv tools tests demo configs

test: lint
	$(PY) -m pytest tests -q

clean-demo:
	rm -rf data/demo work_dirs/demo
