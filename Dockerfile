# The three SageMaker stage images, one build target each, on shared dependency layers:
#
#   preprocessing  processing job: `python -m preprocessing` with /opt/ml/processing defaults
#   training       training job (bring your own container): `train` runs `python -m training`,
#                  which reads SageMaker's container contract itself (training/sagemaker_contract.py)
#   inference      endpoint: SageMaker runs `docker run IMAGE serve`; `serve` starts
#                  `python -m inference` on port 8080 with the model from /opt/ml/model
#   training-toolkit  script mode (lesson 04): PyTorch and SageMaker's training toolkit, no
#                  course code; its `train` (the toolkit's) runs the script a job brings along
#   evaluation     processing job (lesson 06): `python -m evaluation` with /opt/ml/processing
#                  defaults; training's layers plus matplotlib for the stage's plots
#
# Each installs the pins of its lock file (locks/<target>.txt, from pyproject.toml's groups by
# `make lock`) from the host wheelhouse (build/wheelhouse, made by scripts/build_images.sh) through
# a bind mount, so no wheel lands in a layer and no index is needed. The dependency stages stack:
# torch adds the framework to preprocessing's layers; training adds the tracking client to it,
# inference the server, so the images share what they have in common on disk. From the repository
# root:
#   DOCKER_BUILDKIT=1 docker build --build-arg BASE_IMAGE=ncf-base:bookworm \
#       --target training -t ncf-training:latest .
# With internet the default python:3.11-slim-bookworm base works as is; for `local_gpu` pass a
# CUDA base and a wheelhouse with the CUDA build of torch.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS python
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/ml/code
RUN python3 -m venv /opt/venv
WORKDIR /opt/ml/code

# Each dependency stage installs its lock; pip keeps what the stage below already installed.
FROM python AS preprocessing-dependencies
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/preprocessing.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

# The framework, on its own layer: the training and inference images share it on disk.
FROM preprocessing-dependencies AS torch-dependencies
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/torch.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

FROM torch-dependencies AS training-dependencies
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/training.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

# The server and nothing that trains: no tracking client, no plotting.
FROM torch-dependencies AS inference-dependencies
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/inference.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

# Stands in for AWS's prebuilt PyTorch training image, which no offline machine can pull: the same
# framework layers as training, plus the sagemaker-training toolkit. Its console script `train`
# reads SAGEMAKER_PROGRAM (or the sagemaker_program hyperparameter the SDK sets from entry_point)
# and runs that script from /opt/ml/code, where local mode mounts the job's source_dir.
FROM training-dependencies AS training-toolkit
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/toolkit.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

FROM training-dependencies AS evaluation-dependencies
RUN --mount=type=bind,source=build/wheelhouse,target=/tmp/wheelhouse \
    --mount=type=bind,source=locks/evaluation.txt,target=/tmp/lock.txt \
    pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse -r /tmp/lock.txt

FROM preprocessing-dependencies AS preprocessing
ENV OMP_NUM_THREADS=1
COPY preprocessing/ preprocessing/
ENTRYPOINT ["python", "-m", "preprocessing"]

# No OMP_NUM_THREADS here: on SageMaker an instance is a whole machine and PyTorch should use all
# of its cores; local mode passes each container its share
# (orchestration.infra.containers.training_environment).
FROM training-dependencies AS training
RUN printf '#!/bin/sh\nexec /opt/venv/bin/python -m training "$@"\n' > /usr/local/bin/train \
    && chmod 755 /usr/local/bin/train
# training reads the processing stage's contract (preprocessing.manifest, preprocessing.schema).
COPY preprocessing/ preprocessing/
COPY training/ training/
CMD ["train"]

# The stage loads models through training's artifact contract and ranks with its evaluation code.
FROM evaluation-dependencies AS evaluation
ENV MPLBACKEND=Agg
COPY preprocessing/ preprocessing/
COPY training/ training/
COPY evaluation/ evaluation/
ENTRYPOINT ["python", "-m", "evaluation"]

# No OMP_NUM_THREADS: each worker takes its share of the container's CPU quota
# (inference/resources.py); an OMP_NUM_THREADS the container is given still wins.
FROM inference-dependencies AS inference
# SageMaker may give the server another port in SAGEMAKER_BIND_TO_PORT (inference pipelines,
# multi-container endpoints); the label says this image honours it.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# The server runs as model-server, never as root, and its model folder is read-only to it: see
# inference/serve.
RUN useradd --uid 10001 --user-group --create-home --home-dir /var/lib/model-server model-server
COPY --chmod=755 inference/serve /usr/local/bin/serve
# The recommender reads the training stage's artifact contract, which reuses the processing
# stage's schema helpers and id-map schemas.
COPY preprocessing/ preprocessing/
COPY training/ training/
COPY inference/ inference/
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080') + '/ping', timeout=2)"
CMD ["serve"]
