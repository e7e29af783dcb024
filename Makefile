# Conveyor: `make run` runs the pipeline, `make test` runs the test suite. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins packaging<24, which pytest outgrew: it gets a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
UV_PIN = $(shell grep -m1 '^uv==' requirements.txt)
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Times a phase: `$(PHASE) NAME COMMAND...`; `make test` and `make check` print every phase's time at the end.
PHASE := scripts/ci/phase.sh
# pytest on every core, at most 4 (pytest-xdist). loadgroup keeps the tests that share a module-scoped build or
# run (the image, the act runs) on one worker; the session's expensive fixtures are built once across workers
# (tests/conftest.py).
# nproc --all: plain nproc reports 1 wherever OMP_NUM_THREADS=1 is already set.
PYTEST_WORKERS ?= $(shell n=$$(nproc --all 2>/dev/null || echo 1); echo $$(( n > 4 ? 4 : n )))
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: install run data test check lint unit integration serve bench bench-serve soak clean manifests-check workflows-check prometheus
.PHONY: rules promtool-test stack stack-down

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(UV_PIN)"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt $(STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.txt
	touch $@

# Render k8s/ and argocd/, validate every object, checkov, and cross-check against the serving app.
manifests-check: install $(CHECKOV_STAMP)
	conveyor manifests check

# Debian's prometheus and promtool, for the canary analysis, alert-rule and dashboard tests (they skip, saying so,
# without the binaries) and `make stack`.
prometheus:
	scripts/ci/setup-prometheus.sh

# The alert rules (k8s/monitoring/rules/<env>, stack/rules.yml) written from params.yaml; `promtool-test` runs their
# promtool unit tests (k8s/monitoring/tests) on the rendered overlays, as `make test` does.
rules: install
	conveyor manifests rules

promtool-test: install prometheus
	pytest -q tests/integration/test_alert_rules.py

# The local stack as processes on loopback, no containers: MLflow (sqlite), the API on models/, Prometheus with the
# alert rules (docs/monitoring.md, "Local stack"). A second `make stack` says it is running; stack-down stops it all.
stack: install prometheus
	stack/stack.sh up

stack-down:
	stack/stack.sh down

# The workflows and the act stubs: syntax and expressions with shellcheck, security, and the schemas.
workflows-check: install
	actionlint
	zizmor --offline --quiet .github
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	check-jsonschema --builtin-schema vendor.github-actions .github/act/*/action.yml
	check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	shellcheck .github/act/*/*.sh

# params.yaml data.source: demo fetches the demo data (never over a file that differs) and checks it is the version
# data.dvc records; dvc writes nothing into data/ and checks your data is the version data.dvc records.
data: install
	conveyor data prepare

run: data
	dvc repro; status=$$?; conveyor gate --explain; exit $$status

lint: install
	ruff check src tests scripts bench
	ruff format --check src tests scripts bench
	hadolint Dockerfile
	shellcheck scripts/ci/*.sh stack/stack.sh

unit: export OMP_NUM_THREADS := 1
unit: install
	pytest $(PYTEST_PARALLEL) tests/unit

integration: export OMP_NUM_THREADS := 1
integration: install $(CHECKOV_STAMP)
	pytest $(PYTEST_PARALLEL) --durations=25 tests/integration

# The whole suite, as CI runs it (.ci/run). One OpenMP thread per process: on a shared 2-core runner, spinning
# OpenMP workers stall model fits for seconds. The set-up steps run side by side (the podman set-up beside the
# Python installs; --output-sync keeps each step's output whole), then the static checks, then pytest on every
# core with the 25 slowest tests listed; each phase's time is printed as it ends and again at the end.
test: export OMP_NUM_THREADS := 1
test:
	@$(PHASE) reset
	@$(PHASE) "set-up (side by side)" $(MAKE) --no-print-directory -j4 --output-sync=target \
		setup-install setup-podman setup-data setup-checkov
	@$(PHASE) "static checks" $(MAKE) --no-print-directory -j2 --output-sync=target \
		lint manifests-check workflows-check
	@$(PHASE) pytest pytest $(PYTEST_PARALLEL) --durations=25
	@$(PHASE) summary

# The quick inner loop (no data fetch, podman or integration tests): the static checks and the unit tests.
check: export OMP_NUM_THREADS := 1
check: install $(CHECKOV_STAMP)
	@$(PHASE) reset
	@$(PHASE) "static checks" $(MAKE) --no-print-directory -j2 --output-sync=target \
		lint manifests-check workflows-check
	@$(PHASE) "unit tests" pytest $(PYTEST_PARALLEL) -q tests/unit
	@$(PHASE) summary

# `make test`'s set-up steps, each timed: install beside the apt installs (podman, prometheus, chromium), then the
# data beside the checkov venv.
.PHONY: setup-install setup-podman setup-data setup-checkov
setup-install:
	@$(PHASE) "  install" $(MAKE) --no-print-directory install
# The apt installs run one after the other (apt holds one lock), beside the Python installs.
setup-podman:
	@$(PHASE) "  podman" $(MAKE) --no-print-directory podman
	@$(PHASE) "  prometheus" $(MAKE) --no-print-directory prometheus
	@$(PHASE) "  chromium" scripts/ci/setup-chromium.sh
setup-data: setup-install
	@$(PHASE) "  data" $(MAKE) --no-print-directory data
setup-checkov: setup-install
	@$(PHASE) "  checkov venv" $(MAKE) --no-print-directory $(CHECKOV_STAMP)

serve: install
	conveyor serve

# Serving benchmark (wrk against this API, `mlflow models serve` and the HTTP floor; then this API with the prediction
# log off and at 0%, 10% and 100% sampling) and the 60 s soak, without and with the prediction log; all read the
# bundle in models/ (bench/README.md).
bench-serve: install
	python bench/serve/run.py
	python bench/serve/run.py --prediction-log --rounds 5

soak: install
	python bench/serve/soak.py
	python bench/serve/soak.py --prediction-log 1.0 --out bench/serve/soak-log-results.json

# podman, buildah and the local base image the image tests build from (quick when already done).
.PHONY: podman image-test
podman:
	scripts/ci/setup-podman.sh

# The serving image built with podman and run read-only on loopback (tests/integration/test_image.py).
image-test: install podman
	pytest tests/integration/test_image.py

clean:
	rm -rf reports artifacts models mlruns.db mlartifacts .dvc/tmp build/phases.txt
