# Beam SDK worker image for the corpus stages (Dataflow custom container, Flink/Spark SDK harness).
# Build from the repository root:
#   docker build -f infra/docker/beam-worker.Dockerfile -t REGISTRY/webtext-beam:TAG .
#
# The base image is Beam's own Python 3.11 SDK image at the apache-beam version the project is tested with.
# Launch pipelines with the same apache-beam and Python versions (see infra/docker/README.md).
ARG BEAM_VERSION=2.78.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

ARG BEAM_VERSION
# The Beam workers need torch only because the package depends on it: the CPU wheel keeps the image small.
ARG TORCH_VERSION=2.13.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Everything the base image installed stays at its version: the SDK must match the boot binary
# (/opt/apache/beam/boot, the ENTRYPOINT), and its dependencies are the set Beam tested.
RUN pip list --format=freeze > /opt/apache/beam/base-constraints.txt \
    && grep -qx "apache-beam==${BEAM_VERSION}" /opt/apache/beam/base-constraints.txt

RUN pip install --constraint /opt/apache/beam/base-constraints.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}+cpu" \
    && pip install --constraint /opt/apache/beam/base-constraints.txt "apache-beam[gcp,aws]==${BEAM_VERSION}"

# Only what the package is built from (the .dockerignore keeps .venv, build/ and caches out of the context).
COPY pyproject.toml README.md /opt/webtext/
COPY corpus /opt/webtext/corpus
COPY pipelines /opt/webtext/pipelines
COPY training /opt/webtext/training
RUN pip install --constraint /opt/apache/beam/base-constraints.txt /opt/webtext \
    && pip check \
    && python -c "import apache_beam, webtext.cli; assert apache_beam.__version__ == '${BEAM_VERSION}'" \
    && webtext --help > /dev/null

# The base image's ENTRYPOINT (/opt/apache/beam/boot) is kept: Dataflow and the portable runners start the
# SDK harness through it; `--worker_pool` turns it into the EXTERNAL worker pool (infra/flink, infra/spark).
