# brain-tumor-classifier: the web app and JSON API on the CPU, with the shipped model, from the light
# install (ONNX Runtime, NumPy, Pillow: no PyTorch, no CUDA libraries).
#
#   docker build -t brain-tumor-classifier .
#   docker run --rm -p 127.0.0.1:5000:5000 brain-tumor-classifier     # then open http://localhost:5000
#
# Behind a closed network, build a base from Debian's packages (scripts/container-base.sh) and point
# BASE and PYPI_INDEX at what you have; see docs/container.md.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG PYPI_INDEX=https://pypi.org/simple
# Behind a proxy with its own certificate authority: the path of a CA bundle mounted into the build.
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The dependencies first (a layer that survives code changes), then the package with its model and
# its ONNX graphs; pip leaves the environment afterwards (nothing is installed at run time).
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md /src/
RUN [ -n "$PIP_CERT" ] || unset PIP_CERT; \
    /opt/venv/bin/python -c "import tomllib; d = tomllib.load(open('/src/pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --index-url "${PYPI_INDEX}" -r /tmp/requirements.txt
COPY src /src/src
RUN /opt/venv/bin/pip install --no-deps /src \
 && /opt/venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 && rm -rf /src /tmp/requirements.txt

# An unprivileged user; /data holds what must persist (the feedback database), as a volume.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin braintumor \
 && mkdir -p /data && chown braintumor /data
USER braintumor
WORKDIR /home/braintumor
VOLUME ["/data"]
ENV PATH=/opt/venv/bin:$PATH

EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/api/health', timeout=4)"]
# 0.0.0.0 inside the container only: the port is published (or not) by whoever runs it.
CMD ["braintumor", "serve", "--host", "0.0.0.0", "--port", "5000"]
