# The README's two commands: `make train` (sets up and runs the main job) and `make test`.
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml; it installs the
# dev and test extras too (torch and torchvision, the references of tests/test_torch_parity.py: about 50 s).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup train test test-all clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev,test]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python scripts/train.py $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "" $(ARGS)

clean:
	rm -rf $(VENV)
