# rw-tf developer entry points. Every target creates .venv (Python 3.10 + the lock) if it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIPELINE_ROOT ?= runs/pipeline
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: env run pretrain lint test test-all bench lock clean

env:
	@bash scripts/ensure_env.sh

# The main job: the pretraining then the fine-tuning TFX pipeline (LocalDagRunner) on the
# embedded default corpus (the web sample set up with the environment, refined by RefineWebData;
# no downloads at run time), tiny model. Prints a line per component and a summary table;
# library logs go to $(PIPELINE_ROOT)/logs/.
run: env
	@$(VENV)/bin/rw-tf pipeline run --root $(PIPELINE_ROOT)

# A quick Keras-fit pretraining experiment without TFX.
pretrain: env
	$(VENV)/bin/rw-tf pretrain --output-dir runs/pretrain --preset tiny

lint: env
	$(VENV)/bin/ruff check .

# Lint, then the fast suite (slow end-to-end tests excluded); what CI runs. TEST_WORKERS pytest-xdist
# processes share the test files; files that read one expensive session fixture stay on one worker
# (SHARED_SESSION_FIXTURES in tests/conftest.py). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider --durations=15 -n $(TEST_WORKERS) --dist loadfile

# Everything, including the slow end-to-end tests.
test-all: lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

bench: env
	$(PY) benchmarks/train_throughput.py

# Regenerate the fully pinned lock after changing requirements/requirements.in.
lock:
	uv pip compile --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
		requirements/requirements.in -o requirements/requirements.lock

clean:
	rm -rf runs build *.egg-info
