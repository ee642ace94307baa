# One command each: `make demo` runs the whole migration on a sandbox, `make test` installs
# everything and runs every test. The virtualenv is created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install test lint pytest node-test browser demo bench ui clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(STAMP)
	$(BIN)/pytest -q

node-test:
	node --test peertube-plugin/peertube-plugin-recon-domains/test/

test: lint node-test pytest

# The review page's browser test drives Debian's Chromium (never a downloaded browser);
# without it that test is skipped and says why.
browser:
	command -v chromium >/dev/null || { \
	  sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; }
	chromium --version 2>/dev/null

demo: $(STAMP)
	$(BIN)/recon-domains demo

# Speed and memory, measured (never asserted in tests): the migration on 22,000 documents,
# then the push against a sandbox answering after 20 ms, one with a fixed capacity, under
# a rate cap and a rate limit.
bench: $(STAMP)
	$(BIN)/python -m recon_domains.bench.migration
	$(BIN)/python -m recon_domains.bench.push

# The instance reads $(DAGSTER_HOME)/dagster.yaml (the writers' pool limit lives there).
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# The Dagster UI. On the last demo's result when there is one (its sandbox PeerTube started
# again and its .env read, so every job can run there); `make ui DEMO_DIR=` (or no demo)
# opens $(DAGSTER_HOME) with the settings of ./.env. Each says which instance it opens.
DEMO_DIR ?= .demo
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@if [ -n "$(DEMO_DIR)" ] && [ -f "$(DEMO_DIR)/.env" ]; then \
	  echo "make ui: the demo's instance $(DEMO_DIR)/rehearsal/dagster_home, settings $(DEMO_DIR)/.env (make ui DEMO_DIR= opens $(DAGSTER_HOME))"; \
	  exec $(BIN)/recon-domains demo --ui --workdir "$(DEMO_DIR)"; \
	else \
	  echo "make ui: the instance $(DAGSTER_HOME), settings ./.env$(if $(DEMO_DIR), (no demo in $(DEMO_DIR)),)"; \
	  exec $(BIN)/dg dev; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dagster_home .demo .bench
