# syntax=docker/dockerfile:1
# One image, two entry points: `fedstats node ...` (the default CMD) and `fedstats operator`.
# Targets: `node` (the default, numpy engine) and `cuda` (adds CuPy with the CUDA libraries
# from PyPI; the driver comes from the host through the NVIDIA container toolkit).
#
#   docker build -t fedstats:0.1.0 .
#   docker build --target cuda -t fedstats:0.1.0-cuda .
#
# Not built on this project's own machines: they have no container engine (a docker CLI,
# no daemon). tests/delivery lints this file with hadolint and checks its commands against
# the CLI and the Helm chart; e2e/run.sh builds and runs it where an engine exists.
#
# Kubernetes probes (the operator and the chart set them): a node serves GET /healthz and
# /readyz on its port (8080); the operator serves kopf's liveness on :8081/healthz and
# Prometheus metrics on :9090. HEALTHCHECK below is for `docker run` of a node.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: a virtual environment holding fedstats and its wheels (no compiler needed)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/fedstats ./src/fedstats
RUN python -m venv /opt/fedstats \
    && /opt/fedstats/bin/pip install --no-cache-dir .

# ---- build-cuda: the same environment plus CuPy and the CUDA 12 runtime libraries
FROM build AS build-cuda
ARG CUPY_VERSION=14.2.0
RUN /opt/fedstats/bin/pip install --no-cache-dir "cupy-cuda12x[ctk]==${CUPY_VERSION}"

# ---- base: the runtime without the build's sources; a numeric non-root user
FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/fedstats/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FEDSTATS_DATA_DIR=/data \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    FEDSTATS_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
RUN groupadd --system --gid 10001 fedstats \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin fedstats \
    && mkdir -p /data \
    && chown 10001:10001 /data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['FEDSTATS_HEALTHCHECK_URL'], timeout=4)"]
USER 10001:10001
CMD ["fedstats", "node", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]

# ---- cuda: GPU peers (a Peer with spec.localType: gpu runs this image)
FROM base AS cuda
COPY --from=build-cuda /opt/fedstats /opt/fedstats
ENV FEDSTATS_ENGINE=cupy

# ---- node: the default target (last), the numpy engine
FROM base AS node
COPY --from=build /opt/fedstats /opt/fedstats
ENV FEDSTATS_ENGINE=numpy
