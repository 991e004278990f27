# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are built in the first stage, the runtime stage has no compiler,
# runs as an unprivileged user, migrates the database and serves (scripts/entrypoint.sh).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/mgdiary
RUN python -m venv /opt/venv
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install -e .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MGDIARY_ENV=production \
    MGDIARY_HOST=0.0.0.0 \
    MGDIARY_PORT=8000
RUN groupadd --system mgdiary && useradd --system --gid mgdiary --home-dir /srv/mgdiary mgdiary
WORKDIR /srv/mgdiary
COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv/mgdiary /srv/mgdiary
COPY scripts/entrypoint.sh /usr/local/bin/mgdiary-entrypoint
RUN mkdir -p /srv/mgdiary/var && chown -R mgdiary:mgdiary /srv/mgdiary/var
USER mgdiary
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["mgdiary-entrypoint"]
