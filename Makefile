# The README's two commands: `make train` (sets up and runs the main job) and `make test`.
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml; it installs the
# dev, test and runtimes extras too (torch and torchvision, the references of tests/test_torch_parity.py:
# about 50 s; ONNX Runtime, OpenVINO, NNCF and LiteRT for tests/test_runtimes.py).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Test files run in this many processes (pytest-xdist; whole files, so module fixtures are built once): most tests
# are single-threaded Python and TensorFlow tracing, so two processes on 2 cores take under 10 minutes instead of 15.
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup train test test-all gpu-wheelhouse clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev,test,runtimes]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python scripts/train.py $(ARGS)

test: $(STAMP)
	$(PYTEST) $(ARGS)

test-all: $(STAMP)
	$(PYTEST) -m "" $(ARGS)

# What a GPU machine with JAX but without TensorFlow needs for scripts/gpu_benchmark.py (README: "Past float32").
gpu-wheelhouse: $(STAMP)
	$(VENV)/bin/python scripts/gpu_benchmark.py --build wheelhouse

clean:
	rm -rf $(VENV)
