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

.PHONY: install run data test lint unit integration serve bench bench-serve soak clean manifests-check workflows-check prometheus

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

# Debian's prometheus, for the canary analysis test (it skips, saying so, without the binary).
prometheus:
	scripts/ci/setup-prometheus.sh

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
	shellcheck scripts/ci/*.sh

unit: install
	pytest tests/unit

integration: install $(CHECKOV_STAMP)
	pytest tests/integration

# One OpenMP thread per process: on a shared 2-core runner, spinning OpenMP workers stall model fits for seconds.
test: export OMP_NUM_THREADS := 1
test: lint data podman manifests-check workflows-check
	pytest

serve: install
	conveyor serve

# Serving benchmark (wrk against this API, `mlflow models serve` and the HTTP floor) and the 60 s soak; both read
# the bundle in models/ (bench/README.md).
bench-serve: install
	python bench/serve/run.py

soak: install
	python bench/serve/soak.py

# podman, buildah and the local base image the image tests build from (quick when already done).
.PHONY: podman image-test
podman:
	scripts/ci/setup-podman.sh

# The serving image built with podman and run read-only on loopback (tests/integration/test_image.py).
image-test: install podman
	pytest tests/integration/test_image.py

clean:
	rm -rf reports artifacts models mlruns.db mlartifacts .dvc/tmp
