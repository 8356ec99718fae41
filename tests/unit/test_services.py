"""The local S3 store's error messages, with its S3 answers stubbed (no server runs)."""

from __future__ import annotations

import re
import shutil

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from orchestration.infra.services import (
    DEFAULT_BUCKET,
    LocalS3,
    ServiceError,
)
from orchestration.sagemaker_local.session import local_session


@pytest.mark.parametrize(
    ("code", "disk_full", "explained"),
    [("InternalError", True, True), ("InternalError", False, False), ("NoSuchKey", True, False)],
)
def test_an_internal_error_on_a_nearly_full_disk_names_the_disk(
    tmp_path, code, disk_full, explained
):
    """Once its disk is nearly full, weed answers every write with a bare InternalError; the
    SageMaker SDK's S3 calls (through the store's session) name the disk instead."""
    (tmp_path / "data").mkdir()
    free = shutil.disk_usage(tmp_path).free // 2**20
    store = LocalS3(tmp_path, port=1, min_free_mib=free + 2**20 if disk_full else 1)
    client = local_session(store, tmp_path).s3_client
    expected = ServiceError if explained else ClientError
    with Stubber(client) as stub:
        stub.add_client_error("put_object", code, "We encountered an internal error.", 500)
        with pytest.raises(expected) as raised:
            client.put_object(Bucket=DEFAULT_BUCKET, Key="k", Body=b"x")
    if explained:
        assert re.search(
            rf"failed PutObject with InternalError .* {tmp_path}/data has \d+ MiB free",
            str(raised.value),
        )
