# Two entry points for a fresh machine (Python 3.11): both create or reuse .venv/ in the repo root.
#   make demo   judge every path (split, onnx, onnx-fp16, onnx-int8, onnx-bf16, onnx-qdq, awq, awq+onnx) against original on the bundled fixture, write out/report.json
#   make test   run the whole test suite
# .ci/run runs `make test` verbatim.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)

.PHONY: demo test lint venv fixtures

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	# constraints.txt pins what CI tested (torch 2.14.1 + torchvision 0.29.1 install from this machine's disk)
	$(VENV)/bin/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,awq]'
	# AutoAWQ is deprecated and pins old torch/transformers: install it without its dependencies (field notes)
	$(VENV)/bin/python -m pip install --quiet --no-deps autoawq==0.2.9
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/vlparity run --report-json out/report.json

test: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

fixtures: venv
	$(VENV)/bin/python fixtures/build_fixtures.py
