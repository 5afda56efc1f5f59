# Two commands for a fresh machine:  `make run` (demo dashboard on SQLite)  and  `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo
HOST ?= 127.0.0.1
PORT ?= 8050
export SAFETY_DASH_DATA_DIR ?= $(CURDIR)/data
export SAFETY_DASH_RULES_DIR ?= $(CURDIR)/$(DEMO_DIR)/rules

.PHONY: setup run demo test lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# The synthetic QL1706-shaped study: three data cuts, ingested in order once (a stamp file remembers it).
demo: setup
	$(PY) -m safety_dash db upgrade
	@test -f $(DEMO_DIR)/cut3/ae.xpt || $(PY) -m safety_dash demo $(DEMO_DIR) > /dev/null
	@if [ ! -f $(SAFETY_DASH_DATA_DIR)/.demo-loaded ]; then \
		for cut in cut1 cut2 cut3; do $(PY) -m safety_dash ingest $(DEMO_DIR)/$$cut || exit 1; done; \
		touch $(SAFETY_DASH_DATA_DIR)/.demo-loaded; \
	fi
	@if [ ! -f $(SAFETY_DASH_DATA_DIR)/demo-password ]; then \
		$(PY) -c "import secrets; print(secrets.token_urlsafe(12))" > $(SAFETY_DASH_DATA_DIR)/demo-password; \
		$(PY) -m safety_dash users add demo --role monitor < $(SAFETY_DASH_DATA_DIR)/demo-password; \
	fi

run: demo
	@echo ""
	@echo "  safety-dash on http://$(HOST):$(PORT)   user: demo   password: $$(cat $(SAFETY_DASH_DATA_DIR)/demo-password)"
	@echo ""
	$(PY) -m safety_dash serve --host $(HOST) --port $(PORT)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) bench/ingest.py
	$(PY) bench/rates.py
	$(PY) bench/callbacks.py

clean:
	rm -rf $(VENV) data $(DEMO_DIR)
