"""Every SageMaker SDK call of the course, in one thin place (SDK v2: v3 has no local sessions).

A session made here never talks to AWS: static dummy credentials (no credential chain, no
instance metadata), a fixed region, telemetry opted out, and S3 pointed at the course's local
store (SeaweedFS, see ``orchestration.infra.services``). The jobs run the project's own images
(bring-your-own-container): the image is what would ship to the cloud, unchanged, and its entry
points read SageMaker's ``/opt/ml`` contract themselves. Moving to SDK v3 means rewriting this
package only.

- ``session``: the offline ``LocalSession``, uploads and downloads;
- ``jobs``: processing and training jobs in the course's images;
- ``endpoints``: deploy, readiness, predictions, teardown;
- ``pipeline``: lesson 02's SageMaker Pipeline.

Importing the package sets what the SDK reads at its own import, so it comes first.
"""

import logging
import os

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# The SDK announces at import that it found no config files; ours is passed in explicitly.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
# It announces telemetry before reading the opt-out every session here sets.
logging.getLogger("sagemaker.telemetry.telemetry_logging").setLevel(logging.WARNING)
# The SDK and boto3 must never look for credentials on an EC2 metadata endpoint.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
