# syntax=docker/dockerfile:1
# The zebra-weblink-broker image: `zebra-gateway` by default; `zebra-broker` and
# `zebra-printer-emulator` are on PATH too (deploy/compose.yaml runs the emulator
# from it with --entrypoint).
#
#   docker build -t zebra-weblink-broker:0.1.0 .
#   docker run --rm -p 8080:8080 -e ZEBRA_BROKER_AMQP_URL=amqp://u:p@rabbit/ \
#       zebra-weblink-broker:0.1.0 --ws-path /zebra/weblink/
#
# Both stages use the same base image: the venv's python is a symlink to the base
# image's interpreter, so it must exist at the same path in the final stage. Pin
# the base by digest in your own builds (python:3.11-slim@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: build the wheel, install it and its dependencies into /opt/zebra --
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest out).
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY gateway ./gateway

# Every dependency ships manylinux wheels for amd64 and arm64, so no compiler is
# needed here; add build-essential to this stage only if a platform lacks one.
# The venv gets no pip of its own: the final image has nothing to install with.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/zebra \
 && python -m pip --python /opt/zebra/bin/python install --compile /wheels/*.whl

# -- final: the venv, a non-root user, nothing else ------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="zebra-weblink-broker" \
      org.opencontainers.image.description="WebLink gateway for Zebra Link-OS printers, bridged to RabbitMQ" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID so that Kubernetes' runAsNonRoot can check it and
# securityContext.runAsUser can name it (deploy/k8s uses 10001).
RUN groupadd --system --gid 10001 zebra \
 && useradd --system --uid 10001 --gid zebra --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin zebra

COPY --from=builder /opt/zebra /opt/zebra

# JSON log lines by default (a container has no TTY to choose by); modules were
# compiled at install time, so a read-only root filesystem is fine.
ENV PATH=/opt/zebra/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ZEBRA_BROKER_LOG_FORMAT=json

# An empty working directory: settings come from ZEBRA_BROKER_* variables, and
# there is no .env file here to be read by accident.
WORKDIR /app
USER 10001:10001

# WebLink, /healthz, /readyz and /metrics all share this port (ZEBRA_BROKER_PORT).
EXPOSE 8080

# `zebra-gateway --check` asks this container's /readyz (ZEBRA_BROKER_HOST/PORT)
# and exits 0 or 1; it gives up after 5 s. Kubernetes ignores HEALTHCHECK and uses
# the probes in deploy/k8s instead.
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
    CMD ["zebra-gateway", "--check"]

# SIGTERM drains: stop accepting, finish in-flight requests, close printers with 1001.
STOPSIGNAL SIGTERM
ENTRYPOINT ["zebra-gateway"]
