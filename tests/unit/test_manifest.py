"""The processed folder contract: written whole, read back only when it can be trusted."""

import json
import re

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


def edit_manifest(folder, change):
    path = folder / schema.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))


def without(manifest, *keys):
    """The manifest less manifest[keys[0]]...[keys[-1]]."""
    inner = manifest
    for key in keys[:-1]:
        inner = inner[key]
    del inner[keys[-1]]
    return manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: [m], "is not a JSON object"),
        (lambda m: without(m, "counts"), "has no 'counts' object"),
        (lambda m: without(m, "counts", "num_negatives"), "counts num_negatives missing"),
        (lambda m: m | {"counts": m["counts"] | {"users": "943"}}, "counts users missing or not"),
        (lambda m: m | {"files": list(m["files"].values())}, "has no 'files' object"),
        (lambda m: without(m, "files", "validation"), "entry for table 'validation'"),
        (lambda m: without(m, "files", "users", "sha256"), "entry for table 'users'"),
    ],
    ids=["list", "no-counts", "no-num-negatives", "text-count", "files-list", "no-val", "no-sha"],
)
def test_malformed_manifest_is_named(folder, change, message):
    edit_manifest(folder, change)
    with pytest.raises(ManifestError, match=re.escape(message)):
        read_split(folder)


def test_a_table_dropped_from_files_is_still_checked(folder):
    edit_manifest(folder, lambda m: without(m, "files", "train"))
    (folder / "train.parquet").write_bytes((folder / "train.parquet").read_bytes()[:-100])
    with pytest.raises(ManifestError, match=r"no checksummed entry for table 'train'"):
        read_split(folder)


def test_an_entry_must_checksum_the_file_that_is_read(folder):
    edit_manifest(folder, lambda m: m | {"files": m["files"] | {"train": m["files"]["test"]}})
    with pytest.raises(ManifestError, match=r"files\.train must name 'train\.parquet'"):
        read_split(folder)
