# syntax=docker/dockerfile:1
# One image, two commands: `python -m api` (the default) and `python -m consumer` (the worker).
#
#   docker build -t vehicle-anomaly .
#   docker run --rm -p 8000:8000 -e API_KEYS=change-me -e MODEL_SIGNING_KEY=change-me-too vehicle-anomaly
#   docker run --rm -p 8001:8001 -e MODEL_SIGNING_KEY=change-me-too vehicle-anomaly python -m consumer
#
# Both stages use the same Python image, so the virtual environment built in the first one
# (its interpreter is a symlink to /usr/local/bin/python3) runs unchanged in the second.
ARG PYTHON_VERSION=3.12

# --- builder: resolve the locked dependencies into /opt/venv, then install the project -------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or uv.lock
# change, not on every code change. No dev group, no optional extras (deploy, parquet).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-editable

# Then the project itself, installed (not editable) into the same environment.
COPY README.md LICENSE ./
COPY shared ./shared
COPY consumer ./consumer
COPY api ./api
COPY cli ./cli
COPY simulator ./simulator
RUN uv sync --frozen --no-dev --no-editable

# --- runtime: the virtual environment only; no uv, pip caches or sources ---------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# The uid/gid the EFS access point of the CDK app (deploy/cdk/stacks/config.py) writes as.
ARG APP_UID=10001
ARG APP_GID=10001

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    MODEL_DIR=/var/lib/vehicle-anomaly/models \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    CONSUMER_PORT=8001

RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && install -d -o "${APP_UID}" -g "${APP_GID}" -m 0750 /var/lib/vehicle-anomaly/models

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The only writable place besides MODEL_DIR (the numba cache, temporary files): a volume, so
# the containers can run with a read-only root filesystem (the CDK tasks do).
VOLUME ["/tmp"]
USER 10001:10001

EXPOSE 8000 8001

# Liveness of whichever service this container runs: the worker (PID 1 is `python -m consumer`)
# answers on CONSUMER_PORT, the api on API_PORT. No curl in a slim image: Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; w = b'consumer' in open('/proc/1/cmdline', 'rb').read(); p = os.environ.get('CONSUMER_PORT', '8001') if w else os.environ.get('API_PORT', '8000'); u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]

CMD ["python", "-m", "api"]
