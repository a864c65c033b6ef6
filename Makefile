# One entry point per job. Every target sets up what it needs from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= dev

.PHONY: venv test lint unit up preview e2e bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt proxy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The proxy's pins carry hashes; pip requires hashes for every line of such a run.
	$(BIN)/pip install --quiet --require-hashes -r proxy/requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## make test: install, lint, type-check and run every test except the real-engine e2e.
test: lint
	$(BIN)/pytest -m "not e2e"

## make up STACK=dev: deploy one stack (local file backend, passphrase secrets).
up: venv
	STACK=$(STACK) scripts/pulumi-stack.sh up

preview: venv
	STACK=$(STACK) scripts/pulumi-stack.sh preview --diff

## make e2e: build the real toolchain (cached), start a local kube-apiserver, run the scenarios.
e2e: venv
	scripts/e2e.sh

## make bench: proxy vs direct, side by side (results in bench/RESULTS.md).
bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
