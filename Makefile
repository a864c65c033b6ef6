# One entry point per job. Every target sets up what it needs from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= dev

.PHONY: venv test lint unit up preview e2e demo demo-shell demo-down image bench bench-test clean \
	policy-venv policy-test

$(BIN)/.installed: requirements.txt requirements-dev.txt proxy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The proxy's pins carry hashes; pip requires hashes for every line of such a run.
	$(BIN)/pip install --quiet --require-hashes -r proxy/requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

# The policy pack's own virtualenv: pulumi_policy pins protobuf/grpcio apart from the program's.
POLICY_BIN := policy/.venv/bin

$(POLICY_BIN)/.installed: policy/requirements.txt policy/requirements-dev.txt
	$(PYTHON) -m venv policy/.venv
	$(POLICY_BIN)/pip install --quiet --upgrade pip
	$(POLICY_BIN)/pip install --quiet -r policy/requirements.txt -r policy/requirements-dev.txt
	touch $@

policy-venv: $(POLICY_BIN)/.installed

## make policy-test: type-check and unit-test the policy pack (policy/) in its virtualenv.
policy-test: policy-venv
	cd policy && .venv/bin/mypy . && .venv/bin/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## make test: install, lint, type-check and run every test except the real-engine e2e
## and the benchmark's own (`make bench-test`).
test: lint policy-test
	$(BIN)/pytest -m "not e2e and not bench"

## make up STACK=dev: deploy one stack with scripts/pulumi-stack.sh (your backend and secrets provider).
up: venv
	STACK=$(STACK) scripts/pulumi-stack.sh up

preview: venv
	STACK=$(STACK) scripts/pulumi-stack.sh preview --diff

## make e2e: build the real toolchain (cached), start a local single-node cluster, run the scenarios.
e2e: venv policy-venv
	scripts/e2e.sh

## make demo: a local node built here, the proxy image, `pulumi up` of dev, the smoke test.
demo: venv
	scripts/demo.sh up

## make demo-shell: a shell inside the demo node's network namespace (kubectl, pulumi ready).
demo-shell:
	scripts/demo.sh shell

## make demo-down: `pulumi destroy` the demo stack, stop the node, remove its state.
demo-down:
	scripts/demo.sh down

## make image: build the proxy image here (Debian base + buildah, cached); last line: its digest.
image:
	scripts/image/build.sh

## make bench: the proxy vs a bare passthrough, nginx and direct (results in bench/RESULTS.md).
## BENCH_ARGS="--quick" for a short run, "--before PATH" to add another tree's proxy (a worktree),
## "--proxy-tree PATH" to measure a clean checkout of a commit instead of this tree as it is.
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

## make bench-test: the benchmark's own tests (pytest -m bench).
bench-test: $(BIN)/.bench-installed
	$(BIN)/pytest -m bench

# Bench-only packages, on top of the dev venv; never installed by `make test`.
$(BIN)/.bench-installed: requirements-bench.txt $(BIN)/.installed
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

clean:
	rm -rf $(VENV) policy/.venv .pytest_cache .mypy_cache .ruff_cache
