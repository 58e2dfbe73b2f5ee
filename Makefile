# Both entry points create (or reuse) .venv and install what they need, so they work on a fresh machine.
# torch==2.13.0 is installed first: it is the CPU build on this machine's disk; a bare `torch` would pull CUDA.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint bench bench-lm bench-classify bench-forecast bench-autoencode bench-gan clean

# The main job needs only the package and matplotlib (loss.png); the tests pull the benchmarks' libraries too
# (aeon, statsmodels, pmdarima, scikit-learn), which take minutes to install: a new user's first command skips them.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[plot]'
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,plot]'
	touch $(STAMP)

# The main job: a character LSTM trained on Python's own documentation (the built-in pydoc corpus) for a few
# minutes, its validation bits per character, three samples, and where the run was written.
MINUTES ?= 3
RUN := runs/make-run-$(shell date +%Y%m%d-%H%M%S)
run: $(RUN_STAMP)
	$(BIN)/seqlab lm train pydoc --minutes $(MINUTES) --out $(RUN)
	@echo; echo "--- three samples from $(RUN)"
	$(BIN)/seqlab lm sample $(RUN) --prompt "The " --num-samples 3 --length 300 --seed 1
	@echo; echo "run written to $(RUN) (continue it: $(BIN)/seqlab lm train --resume $(RUN) --minutes 5)"

bench-lm: $(RUN_STAMP)
	$(BIN)/seqlab lm bench pydoc --minutes 10

# Six UCR/UEA sets that aeon ships and a text set, 3 seeds, beside MiniRocket, MultiRocket-Hydra, 1-NN DTW and
# TF-IDF + LR: about an hour on 2 cores (the Inception rows take most of it).
bench-classify: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[aeon]'
	$(BIN)/seqlab classify bench --out runs/classify-bench-$(shell date +%Y%m%d-%H%M%S)

# M1 yearly (aeon) and airpassengers, co2, sunspots: rolling origin beside statsforecast; 3 seeds (~25-30 min).
bench-forecast: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[forecast,aeon]'
	$(BIN)/seqlab forecast bench --out runs/forecast-bench-$(shell date +%Y%m%d-%H%M%S)

# Injected anomalies, GunPoint one-class, and codes -> logistic regression on ItalyPowerDemand; 3 seeds.
bench-autoencode: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[aeon,anomaly]'
	$(BIN)/seqlab autoencode bench --out runs/autoencode-bench-$(shell date +%Y%m%d-%H%M%S)

# TimeGAN on the paper's sines and on JapaneseVowels (conditional on the speaker), side by side on one thread
# each (about 1.5 hours on 2 cores); one table from both in GAN_OUT/table.md.
GAN_OUT := runs/gan-bench-$(shell date +%Y%m%d-%H%M%S)
bench-gan: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[aeon]'
	$(BIN)/seqlab gan bench --only sines --out $(GAN_OUT) --threads 1 & pid=$$!; \
	$(BIN)/seqlab gan bench --only JapaneseVowels --out $(GAN_OUT) --threads 1; status=$$?; \
	wait $$pid && exit $$status
	cat $(GAN_OUT)/table.md

test: $(STAMP)
	$(BIN)/ruff check seqlab tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check seqlab tests
	$(BIN)/ruff format --check seqlab tests

bench: $(RUN_STAMP)
	$(BIN)/seqlab bench --json bench.json

clean:
	rm -rf $(VENV) build *.egg-info
