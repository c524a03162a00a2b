# Trainer image: `webtext train | eval | finetune | export` on NVIDIA GPUs (torchrun, DDP/FSDP, NCCL).
# Build from the repository root:
#   docker build -f infra/docker/trainer.Dockerfile -t REGISTRY/webtext-trainer:TAG .
#
# torch comes from the base image (a CUDA build). pyproject.toml accepts any torch 2.x, so installing the
# project keeps that build instead of the CPU wheel the Makefile pins; `--fsdp` (FSDP2) needs torch >= 2.6.
ARG BASE_IMAGE=pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# torch.compile (Inductor/Triton) compiles C launchers at run time: the runtime image has no compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# Pin the base image's torch so that no dependency can replace the CUDA build.
RUN python -c "import sys; assert sys.version_info >= (3, 11), sys.version" \
    && python -c "import torch; assert torch.version.cuda, 'BASE_IMAGE must carry a CUDA build of torch'" \
    && python -c "import torch; print('torch==' + torch.__version__)" > /opt/torch-constraint.txt

WORKDIR /opt/webtext
COPY pyproject.toml README.md /opt/webtext/
COPY corpus /opt/webtext/corpus
COPY pipelines /opt/webtext/pipelines
COPY training /opt/webtext/training
# gcsfs / s3fs: releases and data at gs:// or s3:// URLs (fsspec).
RUN pip install --constraint /opt/torch-constraint.txt /opt/webtext gcsfs s3fs \
    && pip check \
    && webtext train --help > /dev/null

WORKDIR /workspace
CMD ["webtext", "--help"]
