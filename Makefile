# Two commands do everything: `make run` (execute every notebook, full mode) and `make test`.
# Both create .venv when it is missing and install the project (editable) with its dev extra.

# The first Python 3.11-3.13 on PATH (TensorFlow 2.21 has no wheels for newer ones).
PYTHON ?= $(shell for p in python3.12 python3.11 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
	2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Worked solutions to the exercises, run after the chapters they answer.
SOLUTIONS := $(sort $(wildcard notebooks/solutions/[0-9][0-9]_*.ipynb))
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: install run test test-fast lint format bench bench-peer ablation backends backends-tools sweep clutter mutation clean-artifacts

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: need Python 3.11, 3.12 or 3.13 on PATH (or make PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# A download cut short by the registry (IncompleteRead) fails pip outright, so each install is tried
# up to three times; pip's own --retries/--timeout bound every connection, so nothing hangs.
PIP_INSTALL = for try in 1 2 3; do $(BIN)/python -m pip install --quiet --retries 5 --timeout 60 $(1) && break; \
	test $$try = 3 && exit 1; echo "pip install failed (try $$try of 3); retrying in 15 s"; sleep 15; done

$(STAMP): pyproject.toml | $(BIN)/python
	$(call PIP_INSTALL,--upgrade pip)
	$(call PIP_INSTALL,-e ".[dev]")
	touch $@

install: $(STAMP)

## Execute every notebook in order, in place, in full mode (outputs are committed).
run: install
	@for nb in $(NOTEBOOKS) $(SOLUTIONS); do \
		echo "== $$nb"; \
		M2NIST_QUICK=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	done

## Lint, unit tests, then every notebook through nbval in quick mode in a throw-away M2NIST_HOME.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	home=$$(mktemp -d) && M2NIST_QUICK=1 M2NIST_HOME=$$home $(BIN)/python -m pytest -q \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=900 tests $(NOTEBOOKS) $(SOLUTIONS); \
		status=$$?; rm -rf $$home; exit $$status

## The edit-run loop: ruff and every unit test not marked slow (no training, notebooks or subprocesses).
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	home=$$(mktemp -d) && M2NIST_QUICK=1 M2NIST_HOME=$$home $(BIN)/python -m pytest -q -m "not slow" tests; \
		status=$$?; rm -rf $$home; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Remove generated data and models (they are rebuilt on demand).
clean-artifacts:
	rm -rf data models

## Speed of the input pipeline (distorted images with class maps per second, no model) and of the final FCN
## (training per epoch, inference Keras vs frozen graph): tables, results/bench.json.
bench: install
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_fcn.py

## Peers at our FCN's wall time on the same data: the Keras example's U-Net and a U-Net of our size from
## scratch, each at its learning rate chosen on the validation split (3e-4 to 1e-2; to 3e-2 for the small
## U-Net), 3 seeds at the chosen rates, scored on the test split: a table and results/peer_unet.json. About
## 1.5 hours on 2 CPU cores (the budget is wall time: run it on an otherwise idle machine); resumable
## (finished runs are skipped).
bench-peer: install
	$(BIN)/python benchmarks/bench_peer_unet.py

## Leave-one-out ablation of the final FCN, 3 seeds, validation split (notebook 06): results/ablation.json.
## About 2 hours on 2 CPU cores; resumable (finished runs are kept and skipped).
ablation: install
	$(BIN)/python benchmarks/ablation.py

## The final recipe on Keras' TensorFlow (tf.data and NumPy streams) and JAX backends, seeds 0-2: time per
## epoch and validation mean IoU side by side (notebook 07): results/backends.json. About 45 minutes on 2 CPU cores.
backends: install
	$(BIN)/python benchmarks/backends.py --seeds 0 1 2

## What each tool does to JAX's speed on this machine (notebook 07): float32 vs mixed_bfloat16, one device vs
## DataParallel over two host devices, batch 32 vs 128, at a short budget (3 epochs of 2,000 images), each with
## the images/s of its input path and of its training step: results/backends_tools.json. About 15 minutes.
backends-tools: install
	$(BIN)/python benchmarks/backends.py --tools

## Cluttered M2NIST (notebook 09): the final FCN and its variants trained on clean and on cluttered images,
## the stable recipe at 0.5x, 1x and 2x its rate, 3 seeds, scored on clean and cluttered validation images:
## results/clutter.json. About 2 hours on 2 CPU cores; resumable (finished runs are kept and skipped).
clutter: install
	$(BIN)/python benchmarks/clutter.py

## The mutation score (mutmut) of metrics, m2nist, pipeline, arrays and the losses, against the fast lane:
## results/mutation.json and a table. About three hours on 2 CPU cores; resumable, even from a fresh checkout
## (results/mutation_state.json keeps each mutant's result; a changed source file is checked again).
## benchmarks/mutation.py --survivors re-checks the survivors after new tests, --confirm against whole files.
mutation: install
	$(BIN)/python benchmarks/mutation.py --resume

## A seeded Optuna grid of learning rate x batch size x width at a short budget, 24 trials (notebook 07):
## results/sweep.json (and its journal, results/sweep.journal). About 15 minutes on 2 CPU cores; resumable.
sweep: install
	$(BIN)/python benchmarks/sweep.py
