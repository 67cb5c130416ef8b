# Two commands do all the set-up on a fresh machine:
#   make demo   run the main job end to end
#   make test   run the test suite (ruff + pytest), without the full-size runs (make test-slow)
PYTHON ?= python3
VENV   ?= .venv
# Test processes (3 on 2 cores: many tests wait on subprocesses and timeouts); each starts its own
# private redis-server(s); files are not split between them.
TEST_WORKERS ?= 3
PY     := $(VENV)/bin/python

.PHONY: demo test test-slow lint docs bench redis-stop clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"' \
		|| { echo "error: $(PYTHON) is missing or older than 3.10" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m featurelib.fast_start install
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-mlflow.txt requirements-spark.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-spark.txt
	@touch $@

demo: $(VENV)/.runtime
	$(PY) -m featurelib.demo

# The suite without the full-size runs (marker `slow`): a few minutes.
test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# The full-size runs: the benchmarks, `make demo` and every README command at demo scale.
test-slow: $(VENV)/.dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m slow

lint: $(VENV)/.dev
	$(PY) -m ruff check .

docs: $(VENV)/.runtime
	$(PY) feature_utils.py docs --output-file docs/FEATURES.md

bench: $(VENV)/.runtime
	$(PY) bench/backfill.py

# Stops the private redis-server that `make demo` starts when nothing answers on :6379.
redis-stop:
	@if [ -f data/redis/redis.pid ]; then kill "$$(cat data/redis/redis.pid)" && rm -f data/redis/redis.pid && echo "stopped"; \
	 else echo "no private redis-server running"; fi

clean:
	rm -rf data/raw data/features data/registry.db .pytest_cache
