# Two commands do all the set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv and installs medxfer with its dev tools when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# The tested PyTorch pair, installed before medxfer (whose pyproject.toml only asks for torch>=2.4).
TORCH ?= torch==2.14.1 torchvision==0.29.1
export MEDXFER_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: install demo test lint format bench fuzz

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/medxfer demo

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# Coverage-guided fuzzing of the image decoders (atheris), FUZZ_SECONDS long; corpus and findings in runs/fuzz/.
FUZZ_SECONDS ?= 600
fuzz: install
	$(PY) bench/fuzz_images.py --seconds $(FUZZ_SECONDS) --out runs/fuzz
