"""The course's names, ports and keys, in one place that imports nothing heavy.

`make clean`, the container helpers, the checks and the SageMaker facade all read them from here,
so none of them needs the SageMaker SDK just to know what an image is called.
"""

from __future__ import annotations

# The stage images, one per SageMaker job kind; scripts/build_images.sh tags them.
IMAGES = {
    "preprocessing": "ncf-preprocessing:latest",
    "training": "ncf-training:latest",
    "inference": "ncf-inference:latest",
    # Script mode (lesson 04): the framework and SageMaker's toolkit; each job brings its code.
    "training-toolkit": "ncf-training-toolkit:latest",
    # The evaluation stage (lesson 06): the training stage's model code and matplotlib.
    "evaluation": "ncf-evaluation:latest",
}
# The compose services' images (docker-compose.yml builds them from services/Dockerfile).
SERVICE_IMAGES = ("ncf-s3:latest", "ncf-mlflow:latest")
COURSE_IMAGES = (*IMAGES.values(), *SERVICE_IMAGES)
# On every image the course builds (Python and scripts/build_images.sh), so that `make clean`
# can prune the course's own superseded image versions and nothing else.
IMAGE_LABEL = "ncf-course"

# SageMaker local mode puts every job's and endpoint's containers on this network.
NETWORK = "sagemaker-local"
# Where local mode publishes an endpoint's container on the host.
SERVING_PORT = 8080
# Local mode never checks the role, but the SDK insists on one: any well-formed ARN does.
ROLE = "arn:aws:iam::000000000000:role/ncf-local-mode"

# The local S3's only identity (the store, compose and every client use this pair).
ACCESS_KEY = "ncf-local"
SECRET_KEY = "ncf-local-secret"
REGION = "us-east-1"
DEFAULT_BUCKET = "ncf-course"
S3_PORT = 8333
MLFLOW_PORT = 5000
# The MLflow URI to hand to SageMaker containers; MLFLOW_TRACKING_URI is the host's own.
CONTAINER_TRACKING_URI_ENV = "NCF_CONTAINER_TRACKING_URI"
