# deployd server image: gunicorn with the checked-in gunicorn.conf.py.
#
#   docker build -t deployd .                                     # or: podman build
#   docker build --build-arg PYTHON_IMAGE=python:3.12-slim -t deployd .
#   docker run ... deployd                                        # gunicorn (the default)
#   docker run ... --entrypoint python3 deployd -m deployd.server.granian   # the faster server
#
# The runtime stage holds a virtual environment with the deployd wheel and its dependencies,
# the gunicorn settings and nothing else: no keys, no channels, no build tools. It runs as uid
# 10001 and writes only under /tmp, so it runs with a read-only root filesystem (give it an
# emptyDir or tmpfs on /tmp). Keys, channels and REDIS_URL come from the environment and mounts
# at run time; see "Operating deployd" in the README.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deployd ./deployd
# Wheels for deployd and every dependency, so the runtime stage installs without a network.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --wheel-dir /wheels '.[granian]'

FROM ${PYTHON_IMAGE} AS runtime
ARG DEPLOYD_UID=10001
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid "${DEPLOYD_UID}" deployd \
 && useradd --system --uid "${DEPLOYD_UID}" --gid deployd --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin deployd
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python3 -m venv /opt/deployd \
 && /opt/deployd/bin/pip install --no-index --find-links /wheels 'deployd[granian]'
COPY gunicorn.conf.py /etc/deployd/gunicorn.conf.py
ENV PATH=/opt/deployd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PORT=8000 \
    DEPLOYD_STATE_DIR=/tmp/deployd
WORKDIR /tmp
USER ${DEPLOYD_UID}:${DEPLOYD_UID}
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["gunicorn", "-c", "/etc/deployd/gunicorn.conf.py"]
CMD ["deployd.wsgi:app"]
