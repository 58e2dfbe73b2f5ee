# Both entry points create (or reuse) .venv and install what they need, so they work on a fresh machine.
# torch==2.13.0 is installed first: it is the CPU build on this machine's disk; a bare `torch` would pull CUDA.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,plot]'
	touch $(STAMP)

# The main job. Until the language-model issue lands it is the quick benchmark against torch.nn.
run: $(STAMP)
	$(BIN)/seqlab bench --quick

test: $(STAMP)
	$(BIN)/ruff check seqlab tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check seqlab tests
	$(BIN)/ruff format --check seqlab tests

bench: $(STAMP)
	$(BIN)/seqlab bench --json bench.json

clean:
	rm -rf $(VENV) build *.egg-info
