# Two entry points for a fresh machine (Python 3.11): both create or reuse .venv/ in the repo root.
#   make demo   judge every path (split, onnx, onnx-fp16, onnx-int8, onnx-bf16, onnx-qdq, awq, awq+onnx) against original on the bundled fixture, write out/report.json
#   make test   run the whole test suite
# .ci/run runs `make test` verbatim.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
# Which torch build: cuda where an NVIDIA driver answers, else cpu (no CUDA libraries: about 3 GB less); override with
# `make venv TORCH_BUILD=cpu|cuda`. The CPU build (torch and torchvision only; their dependencies come with the rest)
# comes from PyTorch's own index; where that cannot be reached (an offline mirror, as on vlparity's CI machine) the
# default build from the package index follows, and the set-up prints which build it got.
TORCH_BUILD ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
$(if $(filter-out cpu cuda,$(TORCH_BUILD)),$(error TORCH_BUILD=$(TORCH_BUILD): expected cpu or cuda))
# The set-up's last line: which torch build it installed, and why it is not the one asked for.
define TORCH_REPORT
import torch
cuda = bool(torch.version.cuda)
missed = '; the CPU-only build was not installable from $(TORCH_CPU_INDEX)' if cuda and '$(TORCH_BUILD)' == 'cpu' else ''
print('vlparity: torch', torch.__version__, '(CUDA build)' if cuda else '(CPU-only build)', 'for TORCH_BUILD=$(TORCH_BUILD)' + missed)
endef
export TORCH_REPORT

.PHONY: demo test lint venv fixtures

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(if $(filter cpu,$(TORCH_BUILD)),$(VENV)/bin/python -m pip install --quiet --retries 1 --timeout 20 \
		--no-deps --index-url $(TORCH_CPU_INDEX) --constraint constraints.txt torch torchvision \
		|| echo "vlparity: no CPU-only torch from $(TORCH_CPU_INDEX): installing the default build instead")
	# constraints.txt pins what CI tested (torch 2.14.1 + torchvision 0.29.1 install from this machine's disk)
	$(VENV)/bin/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,awq]'
	# AutoAWQ is deprecated and pins old torch/transformers: install it without its dependencies (field notes)
	$(VENV)/bin/python -m pip install --quiet --no-deps autoawq==0.2.9
	$(VENV)/bin/python -c "$$TORCH_REPORT"
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
