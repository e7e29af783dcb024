# Two images from one file:
#   runtime  (the default, last stage): the model API. Only requirements-serve.txt, the conveyor package and the
#            exported model bundle (models/); non-root, runs on a read-only root filesystem.
#   pipeline (--target pipeline): `conveyor <step>` for Argo Workflows, with requirements.txt, git and DVC.
# With no registry at hand, build FROM a local base: scripts/ci/setup-podman.sh makes one and
# scripts/ci/build_image.py passes it as --build-arg BASE_IMAGE with the host's pip settings as build secrets.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The serving dependencies in a venv without pip: the runtime copies only this folder. The base image's pip
# installs into it (--python); pip compiles bytecode at install time, so nothing is compiled at run time.
# The packages' own test suites (a fifth of the folder; nothing imports them) are removed.
# Optional build secrets: pip-conf (a pip.conf) and pip-ca (a CA bundle it may point at), for hosts whose
# pip needs them; neither ends up in a layer.
FROM base AS serve-deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv --without-pip /opt/venv
COPY requirements-serve.txt /tmp/requirements-serve.txt
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf --mount=type=secret,id=pip-ca \
    python3 -m pip --python /opt/venv/bin/python install --no-deps -r /tmp/requirements-serve.txt \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +

FROM serve-deps AS serve-venv
COPY pyproject.toml README.md /src/
COPY src/ /src/src/
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf --mount=type=secret,id=pip-ca \
    python3 -m pip --python /opt/venv/bin/python install --no-deps /src

# The pipeline image grows from the serving dependencies, so both targets share those layers. Argo Workflows
# runs `conveyor <step>` in a checkout on the shared workspace volume; DVC needs git there, and the volume's
# owner may not be this user, hence the safe.directory entry. git is not pinned (DL3008): Debian keeps only
# the newest build of a release's package, so a pin breaks at its next security update.
# The checkout task's demo fetch runs `python -m pip download`, so this venv (unlike the runtime's) gets pip:
# ensurepip installs the wheel the interpreter bundles, offline, with no version to pin here.
FROM serve-deps AS pipeline
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin conveyor
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf --mount=type=secret,id=pip-ca \
    python3 -m pip --python /opt/venv/bin/python install --no-deps -r /tmp/requirements.txt \
    && /opt/venv/bin/python -m ensurepip --default-pip
COPY pyproject.toml README.md /src/
COPY src/ /src/src/
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf --mount=type=secret,id=pip-ca \
    python3 -m pip --python /opt/venv/bin/python install --no-deps /src
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /workspace
USER 10001:10001
ENTRYPOINT ["conveyor"]
CMD ["--help"]

FROM base AS runtime
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin conveyor
COPY --from=serve-venv /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    MODEL_DIR=/app/models \
    CONVEYOR_PARAMS=/app/params.yaml
# serve.port in params.yaml; the health check reads it from there.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from conveyor.config import load_settings; urllib.request.urlopen(f'http://127.0.0.1:{load_settings().serve.port}/readyz', timeout=3)"]
CMD ["conveyor", "serve", "--host", "0.0.0.0", "--wait-for-model"]
USER 10001:10001
# What changes with every model comes last: the bundle (owned by root, read-only to the user) and the labels.
COPY params.yaml /app/params.yaml
COPY models/ /app/models/
ARG SOURCE_URL=""
ARG GIT_SHA=""
ARG MODEL_VERSION=""
LABEL org.opencontainers.image.title="conveyor" \
      org.opencontainers.image.description="Conveyor model API: the gated model behind HTTP" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      io.conveyor.model.version="${MODEL_VERSION}"
