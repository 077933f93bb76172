# Two commands on a fresh machine: `make run` brings the system up, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A pinned torch: on this project's CPU machines pip takes the CPU build from local disk in
# seconds; on a GPU machine the same pin resolves to PyPI's CUDA build.
TORCH_VERSION ?= 2.13.0

.PHONY: install run test manage clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[runner,dev,test]"
	touch $@

run: install
	$(PY) -m product.devstack

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# An operator command, e.g. `make manage ARGS="queue_status"`: beside `make run` it reaches the
# same embedded PostgreSQL, with nothing to export (product.local_defaults).
manage: install
	@$(PY) manage.py $(ARGS)

clean:
	rm -rf $(VENV) .local staticfiles
