# Two commands on a fresh Debian machine:
#   make demo   sets everything up, then runs the demo
#   make test   sets everything up, then runs the whole test suite
VENV ?= .venv

.PHONY: setup demo test unit lint bench clean

setup:
	@./scripts/setup.sh

demo: setup
	@$(VENV)/bin/lab demo

test: setup
	@$(VENV)/bin/pytest -p no:cacheprovider tests

unit:
	@$(VENV)/bin/pytest -q tests/unit

lint:
	@$(VENV)/bin/ruff check lab tests bench

bench: setup
	@$(VENV)/bin/python bench/bench_up.py
