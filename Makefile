# `make test` on a fresh machine: installs what is missing, then runs the whole suite.
PYTHON ?= python3
VENV := .venv
VLLM_VENV ?= $(CURDIR)/.venv-vllm
export VLLM_VENV

.PHONY: test test-fast render bench setup clean

test: setup
	$(VENV)/bin/python -m pytest -q

# Everything but the real-vLLM suite (seconds instead of minutes).
test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m "not e2e"

setup: $(VENV)/.installed
	bash scripts/install-system-deps.sh
	bash scripts/setup-vllm-cpu.sh

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

render: $(VENV)/.installed
	$(VENV)/bin/python -m stacks.render dev out/
	$(VENV)/bin/python -m stacks.render prod out/

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/render_bench.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) out .pytest_cache
