# Passerelle: `make run` starts the gateway, `make test` runs every test.
# The virtualenv is a file target: it is (re)built when the pinned dependencies change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench fuzz lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gateway keys init --if-missing
	$(BIN)/gateway serve

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench fuzz
	$(BIN)/ruff format --check gateway tests bench fuzz

bench: $(STAMP)
	$(BIN)/python -m bench

# Every atheris target in fuzz/ for FUZZ_SECONDS each; crashing inputs land in var/fuzz/.
FUZZ_SECONDS ?= 30
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# Re-resolve the pinned set after editing pyproject.toml.
lock:
	rm -rf /tmp/passerelle-lock && $(PYTHON) -m venv /tmp/passerelle-lock
	/tmp/passerelle-lock/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	/tmp/passerelle-lock/bin/pip freeze --exclude-editable --exclude passerelle-gateway > requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
