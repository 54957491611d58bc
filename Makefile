# Two commands on a fresh machine: `make run` (the bot on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run demo serve test test-random bench clean

# The suite mostly waits (servers starting, background jobs, timeouts), so it runs in TEST_WORKERS processes
# (pytest-xdist), each with its own PostgreSQL scratch databases, Redis database (CHAOSBOT_TEST_REDIS_URL's
# number plus the worker's index, and one more for replica groups), ports and temporary directories. PYTEST_ARGS adds options (`-x`, `-k ...`).
# 5: on the 2-core machine a third of the suite's time is waiting; five workers peak at about 50 PostgreSQL
# connections (the tests' servers keep 5 each) and use Redis databases 4-13 by default.
TEST_WORKERS ?= 5
PYTEST = $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --durations=15
# The suite starts about 150 Python processes (workers, servers, consoles). With PYTHONDONTWRITEBYTECODE set (some
# machines set it for everyone) each compiled every module again and each worker rewrote the asserts of every test
# module (about 25 s of the suite's CPU, measured). Byte code goes to __pycache__ (ignored by git); one collection fills pytest's
# cache before the workers start, so they read it instead of each rewriting the same modules at once.
export PYTHONDONTWRITEBYTECODE :=
WARM_BYTECODE = $(BIN)/python -m compileall -q bot adapters storage > /dev/null && $(BIN)/pytest -qq -p no:cacheprovider --collect-only > /dev/null

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the console with the demo portal to break: the whole lifecycle on SQLite, no Slack workspace needed
	$(BIN)/chaosbot db upgrade
	$(BIN)/chaosbot shell --demo-target

demo: $(STAMP)  ## the scripted walkthrough, non-interactive
	$(BIN)/chaosbot db upgrade
	$(BIN)/chaosbot shell --demo-target --script bot/console/demo.txt

serve: $(STAMP)  ## the Slack app on 127.0.0.1 (needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, CHAOSBOT_POLICY)
	$(BIN)/chaosbot db upgrade
	CHAOSBOT_BIND_ADDRESS=$${CHAOSBOT_BIND_ADDRESS:-127.0.0.1} $(BIN)/chaosbot serve

# mypy (half a minute on a fresh clone) checks types while the tests run, at a lower priority: it takes the
# CPU the tests leave while they wait, not theirs.
test: $(STAMP)  ## lint, then types beside every test, longest modules first (PostgreSQL and Redis on 127.0.0.1 are used when present)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@nice -n 10 $(BIN)/mypy > .mypy-output 2>&1 & mypy=$$!; \
	$(WARM_BYTECODE); \
	$(PYTEST) $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy:"; cat .mypy-output; rm -f .mypy-output; \
	test $$tests -eq 0 && test $$types -eq 0

test-random: $(STAMP)  ## every test again in a random order (pytest-randomly); RANDOM_SEED=N repeats an order
	@seed=$${RANDOM_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "test-random: --randomly-seed=$$seed (repeat this order: make test-random RANDOM_SEED=$$seed)"; \
	$(WARM_BYTECODE); \
	$(PYTEST) -p randomly --randomly-seed=$$seed $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/abort_latency.py

clean:
	rm -rf $(VENV) chaosbot-data .pytest_cache .ruff_cache
