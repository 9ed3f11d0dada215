# syntax=docker/dockerfile:1
# The leadsync daemon: `docker build -t leadsync .`, then `docker run ... leadsync` runs `leadsync run`.
# deploy/docker-compose.yml runs it with PostgreSQL; deploy/leadsync.service is the systemd equivalent.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: dependencies from the hash-pinned lock, then leadsync itself (no dependency resolution) ----
FROM ${PYTHON_IMAGE} AS build
# the uv that requirements.lock pins (uv==0.13.9), from its official image
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
RUN uv venv /opt/leadsync --python /usr/local/bin/python3
WORKDIR /src
COPY requirements.lock ./
# --require-hashes: every wheel must match the lock's hash. The lock also holds the dev extras (pytest, ruff,
# mypy): they are installed too, until a runtime-only lock exists (see the README's "Running the daemon").
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip sync --python /opt/leadsync/bin/python --require-hashes requirements.lock
COPY pyproject.toml README.md ./
COPY leadsync ./leadsync
COPY sync ./sync
COPY connectors ./connectors
COPY mappings ./mappings
COPY scoring ./scoring
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/leadsync/bin/python --no-deps .

# ---- runtime: the virtualenv only, run as an unprivileged user ----
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 leadsync \
    && useradd --system --uid 10001 --gid leadsync --home-dir /var/lib/leadsync --create-home \
       --shell /usr/sbin/nologin leadsync
COPY --from=build /opt/leadsync /opt/leadsync
ENV PATH=/opt/leadsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEADSYNC_CONFIG=/etc/leadsync/leadsync.yaml
# the default state store (sqlite:///leadsync-state.db) lands here: mount a volume, or use PostgreSQL
WORKDIR /var/lib/leadsync
VOLUME ["/var/lib/leadsync"]
USER 10001:10001
# /healthz, /readyz, /metrics (run.port in the config; change the HEALTHCHECK with it)
EXPOSE 9464
# leadsync checkpoints the page in flight on SIGTERM and exits within run.shutdown_grace_s (default 30 s):
# give the container more than that (`docker stop -t 45`, compose stop_grace_period, k8s terminationGracePeriodSeconds)
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["leadsync"]
CMD ["run"]
