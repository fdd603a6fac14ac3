# make run  - set up (venv, install, store with a demo list) and serve SMTP and the scheduler
#             (and later the web pages and the bot)
# make test - the same set-up, then lint, type-check and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG := commonroom.toml

.PHONY: run test install init lint bench clean

install: $(STAMP)

# Reinstall only when the project's metadata changed (editable install: code changes need nothing).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# Writes commonroom.toml and var/ once; later runs only upgrade the schema and keep the demo list.
init: install
	@test -f $(CONFIG) || $(BIN)/commonroom --config $(CONFIG) init
	$(BIN)/commonroom --config $(CONFIG) db upgrade
	@$(BIN)/commonroom --config $(CONFIG) lists show demo >/dev/null 2>&1 || \
	  $(BIN)/commonroom --config $(CONFIG) lists create demo \
	    --description "Demo list: try subscribing by mail" --moderator moderator@example.org

run: init
	$(BIN)/commonroom --config $(CONFIG) serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: init lint
	$(BIN)/python -m pytest -q -n auto

# Figures, not tests: see bench/README.md.
bench: install
	PYTHONPATH=. $(BIN)/python bench/quotes.py
	PYTHONPATH=. $(BIN)/python bench/ingest.py
	PYTHONPATH=. $(BIN)/python bench/fanout.py --members 10000
	PYTHONPATH=. $(BIN)/python bench/idle.py

clean:
	rm -rf $(VENV) var $(CONFIG) .pytest_cache .mypy_cache .ruff_cache *.egg-info
