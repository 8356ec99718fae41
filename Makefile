# Set-up is part of every target: a fresh clone needs only `make pipeline` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup pipeline test test-fast lint format lock lessons bootstrap images clean

$(BIN)/.installed: pyproject.toml requirements.txt locks/all.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

pipeline: setup
	$(BIN)/ncf-course $(ARGS)

# Where a Docker engine answers but the course's images are missing, they are built first.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m orchestration.infra.images
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier only (tests/unit: no subprocess, server, Docker or network; under a minute):
# no lint, no notebooks. `make test` stays the full run.
test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-run every lesson as a learner would (full profile) and store its outputs, each code cell
# stamped with its source's hash (tests/unit/test_lesson_outputs.py). Offline: set NCF_DATA_DIR.
lessons: setup
	NCF_PROFILE=full $(BIN)/python scripts/execute_lessons.py notebooks/0*.ipynb

# After editing a dependency in pyproject.toml: pin it again for the host and every image.
lock:
	scripts/lock.sh

# Offline machines (root): Docker engine, the debootstrap base image, then `images`.
bootstrap:
	scripts/bootstrap.sh

# The stage and service images; with internet, from the public python:3.11-slim-bookworm.
images:
	PYTHON=$(PYTHON) scripts/build_images.sh

# Stopped local-mode containers, the sagemaker-local network, scratch and run folders
# (root-owned files written by containers included).
clean: setup
	$(BIN)/python -m orchestration.infra.cleanup runs results
	rm -rf .pytest_cache .ruff_cache
