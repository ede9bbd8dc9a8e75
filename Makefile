# The two commands of the README: `make demo` (the main job) and `make test`.
# Each one installs what it needs into $(VENV) first, so both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU build used where no GPU is present; a torch that is already importable is kept.
TORCH_CPU_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PRESET ?= demo
PYTEST_ARGS ?=

.PHONY: demo test test-release install install-dev torch lint clean

demo: install
	$(VENV)/bin/agkd pipeline --preset $(PRESET)

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# The release where it is pushed (fresh virtual environments, the wheel, the Space started as a Space, headless
# Chromium) and the smoke pipeline end to end: slow, so not in `make test`; CI runs both.
test-release: install-dev
	$(PY) -m pytest -m release $(PYTEST_ARGS)

install: $(VENV)/.installed-train
install-dev: $(VENV)/.installed-dev

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

# torch first: `pip install agkd` alone would resolve torch to a multi-GB CUDA build on a CPU-only machine.
torch: $(PY)
	@if $(PY) -c "import torch, sys; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 6))" 2>/dev/null; then \
		echo "keeping the installed torch: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PIP) install "torch>=2.6"; \
	elif $(PIP) install --no-index --no-deps "torch==$(TORCH_CPU_VERSION)" >/dev/null 2>&1; then \
		echo "installed the local build of torch $(TORCH_CPU_VERSION) (pip's find-links), now its dependencies"; \
		$(PIP) install "torch==$(TORCH_CPU_VERSION)"; \
	else \
		$(PIP) install "torch==$(TORCH_CPU_VERSION)" --index-url $(TORCH_CPU_INDEX); \
	fi

$(VENV)/.installed-train: pyproject.toml | torch
	$(PIP) install -e ".[train,space]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | torch
	$(PIP) install -e ".[dev]"
	@touch $@ $(VENV)/.installed-train

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs
