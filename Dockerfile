# syntax=docker/dockerfile:1.7
# One image recipe for the three services: `--build-arg SERVICE=api|auth|users`.
# Build with `make images` (docker when its engine answers, else podman).
#
# BASE_IMAGE: the official slim Python image, pinned by version. Not by digest: no registry
# can be reached where this is built and checked, so a digest here could not be verified;
# pin one yourself with BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>.
# `make base-image` builds a stand-in from Debian (debootstrap) when this cannot be pulled;
# `make images` then passes BASE_IMAGE=localhost/bulwark-python:3.11-bookworm.
ARG BASE_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG SERVICE
ENV PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Build tools (uv, hatchling) live in /opt/build, which the final stage never sees.
COPY deploy/images/build-requirements.txt /tmp/build-requirements.txt
# The CA bundle is a build secret (a TLS-intercepting proxy's CA, if any): never in a layer.
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export PIP_CERT=/run/secrets/cabundle; fi; \
    python3 -m venv /opt/build \
    && /opt/build/bin/pip install --quiet --no-cache-dir --require-hashes --only-binary=:all: \
       -r /tmp/build-requirements.txt
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/pyproject.toml
COPY services/api/pyproject.toml services/api/pyproject.toml
COPY services/auth/pyproject.toml services/auth/pyproject.toml
COPY services/users/pyproject.toml services/users/pyproject.toml
COPY tools/devstack/pyproject.toml tools/devstack/pyproject.toml
# Third-party dependencies exactly as locked (uv verifies every hash in uv.lock).
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export SSL_CERT_FILE=/run/secrets/cabundle; fi; \
    test -n "${SERVICE}" \
    && python3 -m venv --without-pip /opt/venv \
    && /opt/build/bin/uv sync --quiet --frozen --no-dev --no-install-workspace --compile-bytecode \
       --package "bulwark-${SERVICE}"
COPY libs/common/src libs/common/src
COPY services/${SERVICE}/src services/${SERVICE}/src
# The two workspace packages as real wheels (entry points included), built offline with
# the hash-pinned hatchling, installed without touching their (already locked) dependencies.
RUN /opt/build/bin/pip wheel --quiet --no-cache-dir --no-deps --no-build-isolation --no-index -w /tmp/wheels \
       libs/common "services/${SERVICE}" \
    && /opt/build/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps \
       --no-index --compile-bytecode /tmp/wheels/*.whl \
    && ln -s "bulwark-${SERVICE}" /opt/venv/bin/bulwark-service \
    && /opt/venv/bin/bulwark-service --help >/dev/null

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG SERVICE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="bulwark-${SERVICE}" \
      org.opencontainers.image.description="Bulwark ${SERVICE} service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=builder --chown=0:0 /opt/venv /opt/venv
# Bytecode is compiled at build time; the root filesystem is read-only at run time and only
# /tmp (an emptyDir / tmpfs) is writable.
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BULWARK_DATA_DIR=/tmp/bulwark \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
# Exec form: the service is PID 1 and gets SIGTERM itself; `serve` drains in-flight calls
# (10 s grace) and exits.
ENTRYPOINT ["/opt/venv/bin/bulwark-service"]
CMD ["serve"]
