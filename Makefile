# Two commands on a fresh machine:  make run   and   make test
# Both set up .venv (Python 3.10, pinned by constraints.txt) when it is missing or stale.

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PYTEST_ARGS ?=

# Quieter TensorFlow C++ logs; the pipeline's own progress is logged by Python.
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONWARNINGS ?= ignore::FutureWarning,ignore::DeprecationWarning

.PHONY: setup run test test-fast test-e2e bench clean constraints

setup: $(STAMP)

# Re-installs only when setup.py or constraints.txt change: a second `make run` installs nothing.
$(STAMP): setup.py constraints.txt
	@if [ ! -x $(PY) ]; then \
	  interpreter=$$(scripts/find-python.sh) || exit 1; \
	  echo "creating $(VENV) with $$interpreter"; \
	  "$$interpreter" -m venv $(VENV) || exit 1; \
	fi
	@echo "installing the project and its pinned dependencies (a few minutes the first time)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tfxp run

# Debian packages the tests run for real (nginx in front of tfxp serve, chromium for the run report):
# installed when missing.
SYSTEM_PACKAGES := nginx chromium

# Two worker processes (pytest-xdist): a pipeline run leaves about one of the two cores idle on average (40 min of
# wall time took 41 min of CPU in one process). A file's tests stay in one worker, and so do all users of the
# sample's run (tests/conftest.py). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

test: $(STAMP)
	scripts/ensure-system-packages.sh $(SYSTEM_PACKAGES)
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

# The inner loop, after each edit: every test but those marked e2e, beam, training, nginx, browser or slow
# (setup.cfg, docs/testing.md): no Beam pipeline, no training, no nginx or Chromium (so no system packages to
# install): 550 of 732 tests in 1 min 29 s on 2 cores (2026-12-03). `make test` still runs every test, and CI
# (.ci/run) runs `make test`.
# One kind of marked test: .venv/bin/python -m pytest -m beam tests/platform/test_transforms.py
FAST_MARKS := not (e2e or beam or training or nginx or browser or slow)

test-fast: $(STAMP)
	$(PY) -m pytest -m "$(FAST_MARKS)" $(PYTEST_ARGS)

test-e2e: $(STAMP)
	scripts/ensure-system-packages.sh $(SYSTEM_PACKAGES)
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

# Every benchmark in bench/, then one table of figures against targets (bench/results/summary.json).
# BENCH_MILLION=0 make bench leaves out the scale benchmark's 1,000,000-row run (about 19 minutes on 2 cores).
bench: $(STAMP)
	$(PY) -m bench.run_all

# Re-freeze the environment after changing a dependency in setup.py.
constraints: $(STAMP)
	{ echo "# The whole environment, frozen from a working install (Python 3.10, TFX 1.16.0)."; \
	  echo "# Regenerate: make constraints   (see docs/architecture.md)"; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v -E '^pip=='; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

clean:
	rm -rf runs
