# Two commands for a newcomer: `make demo` and `make test`. Both create the
# pinned environment in .venv/ first if it is missing or out of date.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedmeta-installed
TFF := tensorflow-federated==0.87.0

# `make notebook`: a Jupyter server for Colab's "Connect to a local runtime",
# its kernel .venv's Python.
NOTEBOOK_VENV := .venv-notebook
NOTEBOOK_STAMP := $(NOTEBOOK_VENV)/.fedmeta-installed
NOTEBOOK_PORT ?= 8888
NOTEBOOK_TOKEN ?=
COLAB := https://colab.research.google.com

.PHONY: venv demo test test-fast lock clean notebook

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	# TFF 0.87.0 pins jaxlib==0.4.14, which the registry no longer serves;
	# requirements.lock holds TFF's other requirements with jaxlib 0.4.13
	# (it imports and runs), so TFF itself goes in with --no-deps.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(TFF)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps \
	  --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fedmeta.experiments.demo --root_output_dir=/tmp/fedmeta_runs \
	  --experiment_name=demo_$$(date +%Y%m%d_%H%M%S)

$(NOTEBOOK_STAMP): requirements-notebook.lock
	test -x $(NOTEBOOK_VENV)/bin/python || $(PYTHON) -m venv $(NOTEBOOK_VENV)
	$(NOTEBOOK_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  -r requirements-notebook.lock
	touch $(NOTEBOOK_STAMP)

# Prints the URL (with its token) to paste into Colab's local-runtime dialog.
notebook: $(STAMP) $(NOTEBOOK_STAMP)
	$(PY) -m ipykernel install --prefix $(NOTEBOOK_VENV) --name fedmeta \
	  --display-name "fedmeta (.venv)" >/dev/null
	$(NOTEBOOK_VENV)/bin/jupyter server --ServerApp.root_dir=notebooks \
	  --ServerApp.allow_origin=$(COLAB) --ServerApp.port=$(NOTEBOOK_PORT) \
	  --ServerApp.port_retries=0 --ServerApp.open_browser=False \
	  --MappingKernelManager.default_kernel_name=fedmeta \
	  $(if $(NOTEBOOK_TOKEN),--IdentityProvider.token=$(NOTEBOOK_TOKEN)) \
	  $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)

# The whole suite; what CI runs. TEST_WORKERS pytest-xdist processes share
# its tests (most of the suite's time is single-threaded: Python, tracing,
# starting processes); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The unit tier (under 3 minutes): no process, no notebook, no test marked
# slow (pyproject.toml's markers).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Rewrites requirements.lock from the current environment.
lock: $(STAMP)
	{ sed -n '1,/^$$/p' requirements.lock; \
	  $(PY) -m pip freeze --all --exclude-editable \
	    | grep -viE '^(tensorflow[-_]federated|pip|wheel)=='; \
	} > requirements.lock.new && mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) $(NOTEBOOK_VENV)
