# syntax=docker/dockerfile:1.7
# One Dockerfile for all five services (they share libs/common and one uv lock):
#
#   docker build --build-arg SERVICE=ingest -t logriver-ingest .
#
# SERVICE is one of ingest, writer, query, stream, alerter. docker-compose.yml
# builds each service from here; tests/unit/deploy/test_dockerfile.py runs the
# builder stage's uv commands in a clean virtualenv and starts each service.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: resolve and install into /app/.venv with uv --------------------
FROM ${PYTHON_IMAGE} AS builder
# uv pinned to the Makefile's UV_VERSION (a test keeps the two equal).
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
ARG SERVICE
# Layer 1, dependencies only: the lock plus every workspace member's
# pyproject.toml (uv needs the workspace's shape, not its code). This layer is
# rebuilt only when a dependency changes, not on every source edit.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/pyproject.toml
COPY services/ingest/pyproject.toml services/ingest/pyproject.toml
COPY services/writer/pyproject.toml services/writer/pyproject.toml
COPY services/query/pyproject.toml services/query/pyproject.toml
COPY services/stream/pyproject.toml services/stream/pyproject.toml
COPY services/alerter/pyproject.toml services/alerter/pyproject.toml
COPY scripts/devstack/pyproject.toml scripts/devstack/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package logriver-${SERVICE}
# Layer 2, the code: the shared library and this one service, installed as
# wheels (--no-editable) so the runtime image needs only /app/.venv.
COPY libs/common/src libs/common/src
COPY services/${SERVICE}/src services/${SERVICE}/src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package logriver-${SERVICE}

# --- runtime: the venv on a slim Python, as an unprivileged user -------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="logriver-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/logriver/logriver" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 logriver \
    && useradd --system --uid 10001 --gid logriver --no-create-home --shell /usr/sbin/nologin logriver
COPY --from=builder --chown=root:root /app/.venv /app/.venv
COPY --chown=root:root deploy/docker/healthcheck.py /app/healthcheck.py
# Containers must listen on every interface; the port stays the service's
# default unless LOGRIVER_<SERVICE>_PORT says otherwise.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_SERVICE=${SERVICE}
USER 10001:10001
WORKDIR /app
EXPOSE 8000 8001 8002 8003 8004
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
# exec: python becomes PID 1 and receives SIGTERM itself (graceful shutdown).
CMD ["sh", "-c", "exec python -m logriver_${APP_SERVICE}"]
