# Two commands for a fresh machine:  `make run` (demo dashboard on SQLite)  and  `make test` (the whole suite).
# `make run PORT=8051` (or HOST=0.0.0.0) serves elsewhere; alert email links follow the address served.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo
HOST ?= 127.0.0.1
PORT ?= 8050
export SAFETY_DASH_DATA_DIR ?= $(CURDIR)/data
export SAFETY_DASH_RULES_DIR ?= $(CURDIR)/$(DEMO_DIR)/rules
export SAFETY_DASH_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: setup runtime run demo test lint bench bench-load clean

# The runtime requirements only (what `make run` needs); the test tools come on top with `make setup` / `make test`.
$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	@# setuptools says "Editable installation ... be careful with folders" on every editable install: a note, not a problem
	PYTHONWARNINGS=ignore $(VENV)/bin/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

runtime: $(VENV)/.runtime

setup: $(VENV)/.installed

# The synthetic QL1706-shaped study: three data cuts, ingested in order once (a stamp file remembers it).
demo: runtime
	@$(PY) -m safety_dash db upgrade
	@test -f $(DEMO_DIR)/cut3/ae.xpt || $(PY) -m safety_dash demo $(DEMO_DIR) > /dev/null
	@if [ ! -f $(SAFETY_DASH_DATA_DIR)/.demo-loaded ]; then \
		for cut in cut1 cut2 cut3; do $(PY) -m safety_dash ingest $(DEMO_DIR)/$$cut > $(SAFETY_DASH_DATA_DIR)/ingest-$$cut.txt \
			|| { cat $(SAFETY_DASH_DATA_DIR)/ingest-$$cut.txt; exit 1; }; \
			head -n 1 $(SAFETY_DASH_DATA_DIR)/ingest-$$cut.txt; done; \
		touch $(SAFETY_DASH_DATA_DIR)/.demo-loaded; \
	fi
	@if [ ! -f $(SAFETY_DASH_DATA_DIR)/demo-password ]; then \
		$(PY) -c "import secrets; print(secrets.token_urlsafe(12))" > $(SAFETY_DASH_DATA_DIR)/demo-password; \
		$(PY) -m safety_dash users add demo --role monitor < $(SAFETY_DASH_DATA_DIR)/demo-password; \
	fi
	@# The session key of the demo, kept beside its database: sessions survive a restart of `make run`.
	@test -f $(SAFETY_DASH_DATA_DIR)/secret-key || (umask 077; \
		$(PY) -c "import secrets; print(secrets.token_hex(32))" > $(SAFETY_DASH_DATA_DIR)/secret-key)

run: demo
	@echo ""
	@echo "  safety-dash on http://$(HOST):$(PORT)   user: demo   password: $$(cat $(SAFETY_DASH_DATA_DIR)/demo-password)"
	@echo "  (each cut's ingestion summary is in $(SAFETY_DASH_DATA_DIR)/ingest-cut*.txt; Ctrl+C stops the server)"
	@echo ""
	@SAFETY_DASH_SECRET_KEY="$${SAFETY_DASH_SECRET_KEY:-$$(cat $(SAFETY_DASH_DATA_DIR)/secret-key)}" \
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
	$(PY) bench/load.py

# The load test alone at a moderate size (minutes, not the hour of the full 1,000,000-AE run).
bench-load: setup
	$(PY) bench/load.py --subjects 2000 --events 100000 --sessions 10 --seconds 60 --database sqlite

clean:
	rm -rf $(VENV) data $(DEMO_DIR)
