# make demo: set up .venv (torch 2.13.0 CPU wheel first, then ganforge) and train DCGAN on the embedded digits.
# make test: the whole test suite (what CI runs); make test-fast: without the tests marked slow.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup demo test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/ganforge train --model dcgan --data digits --image-size 28 --steps 2000 --out $(DEMO_OUT)

test: setup
	$(PYTHON) -m pytest -q

test-fast: setup
	$(PYTHON) -m pytest -q -m 'not slow'

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
