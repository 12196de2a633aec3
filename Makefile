# Two entry points, both of which set themselves up on a fresh machine:
#   make demo   -> the demo KL sweep on the built-in offline model
#   make test   -> the test suite (what CI runs)
# torch goes in first, pinned to the CPU build on disk (TORCH_SPEC), so no resolver pulls a
# multi-GB CUDA build; on a GPU machine set TORCH_SPEC to the build you want.

VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo lint test test-all clean

setup: $(VENV)/.installed

# The deepspeed extra installs DeepSpeed's Python side only (DS_BUILD_OPS=0: no ops compiled at
# install time; ~30 s on CPU): the tests validate the ZeRO configs with it.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	DS_BUILD_OPS=0 $(PY) -m pip install -q -e ".[dev,deepspeed]"
	touch $@

demo: setup
	$(VENV)/bin/goodhart sweep configs/sweep/demo.yaml

# ruff: lint and format, configured in pyproject.toml (also a pre-commit hook).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Lint, then the fast suite (slow end-to-end runs are marked `slow` and have small variants here).
# pytest's exit code 5 ("no tests collected") is not a failure of the project.
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf runs mlflow.db .pytest_cache
