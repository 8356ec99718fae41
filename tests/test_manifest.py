"""The processed folder contract: written whole, read back only when it can be trusted."""

import json

import pytest

from preprocessing import schema
from preprocessing.manifest import ManifestError, read_split, write_split
from preprocessing.split import leave_one_out


@pytest.fixture
def folder(tmp_path, small_interactions):
    write_split(leave_one_out(small_interactions, seed=0), tmp_path, extra={"params": {"x": 1}})
    return tmp_path


def test_round_trip(folder, small_interactions):
    data = read_split(folder)
    manifest = data.manifest
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["counts"]["users"] == small_interactions.user_id.nunique()
    assert manifest["counts"]["train"] + 2 * manifest["counts"]["users"] == len(small_interactions)
    assert set(manifest["files"]) == {"train", "validation", "test", "users", "items"}
    assert data.test.negatives.shape == (manifest["counts"]["users"], 99)
    assert data.train.dtypes.astype(str).to_dict() == {
        "user": "int32",
        "item": "int32",
        "rating": "float32",
        "timestamp": "int64",
    }


def test_missing_manifest_says_what_to_run(tmp_path):
    with pytest.raises(ManifestError, match="processing stage"):
        read_split(tmp_path)


def test_schema_version_mismatch(folder):
    path = folder / schema.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = "0.1"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"schema version '0\.1'"):
        read_split(folder)


def test_modified_table_fails_its_checksum(folder):
    with (folder / "test.parquet").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(ManifestError, match=r"test.parquet .*\(modified\)"):
        read_split(folder)


def test_table_with_another_schema_is_refused(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from preprocessing.manifest import sha256_of

    pq.write_table(pa.table({"user": [1], "item": [2]}), folder / "train.parquet")
    path = folder / schema.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["files"]["train"]["sha256"] = sha256_of(folder / "train.parquet")
    path.write_text(json.dumps(manifest))
    with pytest.raises(schema.SchemaError, match=r"train\.parquet does not match"):
        read_split(folder)
