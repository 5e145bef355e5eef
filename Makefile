# Thin wrappers; scripts/dev.py does the work so that plain `python3 scripts/dev.py ...` works too.
PYTHON ?= python3

.PHONY: run test setup lint ci
run:
	$(PYTHON) scripts/dev.py run

test:
	$(PYTHON) scripts/dev.py test $(ARGS)

setup:
	$(PYTHON) scripts/dev.py setup

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy digest subscriptions

ci:
	bash .ci/run
