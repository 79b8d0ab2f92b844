# The two quick-start commands (`make demo`, `make test`) create .venv themselves.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q -e . --group dev
	touch $@

demo: $(STAMP)
	$(VENV)/bin/costhill demo

# The default suite; tests marked slow (over a minute each) run in .ci/run, after it.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=15  # the slowest, to keep the suite under 10 minutes

test-slow: $(STAMP)
	$(PY) -m pytest -q -s -m slow  # -s: the kill loops print their times

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m pip install -q --group bench
	$(PY) -m bench --write

clean:
	rm -rf $(VENV) build src/*.egg-info
