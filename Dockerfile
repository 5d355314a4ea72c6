# syntax=docker/dockerfile:1
# One image for every sgflow process: `web` (default), `worker`, `db upgrade`, `arrangements ...`.
# Build: docker build -t sgflow:local .     (docker-compose.yml builds it for you)

ARG PYTHON_IMAGE=python:3.11.15-slim

# ---- build: install the project and its dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself (what .dockerignore lets through: packages, README, pyproject).
COPY . .
RUN pip install --no-deps . \
    && pip check

# ---- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SGFLOW_DATA_DIR=/var/lib/sgflow \
    SGFLOW_WEB_HOST=0.0.0.0 \
    SGFLOW_WEB_PORT=8000

# A fixed numeric uid/gid so orchestrators can check "runs as non-root" without reading /etc/passwd.
RUN groupadd --system --gid 10001 sgflow \
    && useradd --system --uid 10001 --gid sgflow --home-dir /var/lib/sgflow --shell /usr/sbin/nologin sgflow \
    && install -d -o sgflow -g sgflow -m 0700 /var/lib/sgflow

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/sgflow
EXPOSE 8000

# Only meaningful for `web`; docker-compose.yml disables it for the worker and the migrate job.
# python, not curl: the slim image has no curl. Any non-2xx or connection error exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SGFLOW_WEB_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["sgflow"]
CMD ["web"]
