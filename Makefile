# The two commands: `make run` (install + the default experiment), `make test` (install + tests).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# CPU-only machines take torch's CPU wheel: an unpinned `torch` pulls a multi-GB CUDA build.
# Where nvidia-smi exists, pip resolves torch from pyproject's open range (any CUDA build you like).
TORCH_CPU ?= torch==2.13.0
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS   ?=
PAPER  ?= quickstart

.PHONY: install run test test-slow test-all bench report dashboard clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q "$(TORCH_CPU)"; fi
	$(PY) -m pip install -q -e ".[test,slurm,sweep,eval]"
	rm -f $(VENV)/.installed-*
	touch $@

# the default experiment (quickstart): COSMOS vs AdamW; ARGS adds overrides
run: install
	$(PY) run.py -m method=adamw,cosmos $(ARGS)

test: install
	$(PY) -m pytest -q -n 2 -m "not slow" $(ARGS)

# whole experiments and subprocess sweeps (about a minute on 2 cores; CI runs them after `make test`)
test-slow: install
	$(PY) -m pytest -q -n 2 -m slow $(ARGS)

test-all: install
	$(PY) -m pytest -q -n 2 $(ARGS)

bench: install
	$(PY) -m benchmarks $(ARGS)

report: install
	$(PY) -m experiments.report $(PAPER) $(ARGS)

# the paper's W&B dashboard: experiments/$(PAPER)/results/dashboard.{json,md} offline; ARGS=--push syncs and saves it
dashboard: install
	$(PY) -m experiments.dashboard $(PAPER) $(ARGS)

clean-venv:
	rm -rf $(VENV)
