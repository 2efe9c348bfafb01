.PHONY: install dev test test-all lint format type train bench

install:
	pip install torch==2.13.0 && pip install -e .

dev:
	pip install torch==2.13.0 && pip install -e ".[dev]"

test:
	python -m pytest -q

test-all:
	python -m pytest -q -m ""

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

type:
	mypy sb3_dreamer

train:
	python -m sb3_dreamer.train

bench:
	python benchmarks/classic_control.py
