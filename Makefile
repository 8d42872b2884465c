# Fresh-machine entry points: each target creates .venv (Python 3.11) and installs the pinned dependencies first.
PYTHON ?= python3.11
VENV := .venv
INSTALLED := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: demo test docs bench install chromium

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

demo: $(INSTALLED)
	$(OFFLINE) $(VENV)/bin/babyvlm demo

test: $(INSTALLED) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(OFFLINE) $(VENV)/bin/python -m pytest -n 2 --durations=15 tests
	tests/installed/check_wheel.sh $(VENV)
	$(MAKE) docs

# The documentation site (mkdocs.yml): every warning (a dead link or anchor, a missing API name) fails the build.
docs: $(INSTALLED)
	$(OFFLINE) NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The explorer's browser test (tests/test_explore.py) drives Debian's Chromium; without it that test is skipped.
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "no /usr/bin/chromium and not root: the explorer's browser test is skipped (apt-get install -y chromium)"

bench: $(INSTALLED)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(OFFLINE) $(VENV)/bin/python $$script || exit 1; done
