# Two commands on a fresh machine: `make run` (the bot on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run demo serve test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the console: the whole lifecycle on SQLite, no Slack workspace needed
	$(BIN)/chaosbot db upgrade
	$(BIN)/chaosbot shell

demo: $(STAMP)  ## the scripted walkthrough, non-interactive
	$(BIN)/chaosbot db upgrade
	$(BIN)/chaosbot shell --demo-target --script bot/console/demo.txt

serve: $(STAMP)  ## the Slack app (needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, CHAOSBOT_POLICY)
	$(BIN)/chaosbot db upgrade
	$(BIN)/chaosbot serve

test: $(STAMP)  ## lint, types, then every test (PostgreSQL and Redis on 127.0.0.1 are used when present)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/abort_latency.py

clean:
	rm -rf $(VENV) chaosbot-data .pytest_cache .ruff_cache
