"""A split on disk with its manifest, read back with every check the contract promises.

``manifest.json`` is what the training stage trusts: the schema version, the counts, a sha256 per
table, the parameters that produced the split and the validation report of the raw data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from preprocessing import schema
from preprocessing.split import Holdout, Split

_COUNTS = ("users", "items", "train", "validation", "test", "num_negatives")
_RERUN = "the folder was edited or written by other code. Re-run the processing stage."


class ManifestError(ValueError):
    """The processed folder cannot be trusted: missing, stale or tampered with."""


def data_identity(manifest: dict[str, Any]) -> str:
    """The split's identity: a hash of its schema version and table checksums. The same data
    processed again (another day, another folder) keeps it; the manifest file's own checksum does
    not, since it records when it was written."""
    identity = {key: manifest[key] for key in ("schema_version", "files")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def write_split(split: Split, out_dir: Path, *, extra: dict[str, Any]) -> dict[str, Any]:
    """Write every table and then the manifest (last, so its presence means the folder is whole)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    num_negatives = split.test.negatives.shape[1]
    tables = {
        "train": (pa.Table.from_pandas(split.train, preserve_index=False), schema.TRAIN),
        "test": (_holdout_table(split.test), schema.holdout_schema(num_negatives)),
        "users": (pa.Table.from_pandas(split.users, preserve_index=False), schema.USERS),
        "items": (pa.Table.from_pandas(split.items, preserve_index=False), schema.ITEMS),
    }
    if split.validation is not None:
        tables["validation"] = (
            _holdout_table(split.validation),
            schema.holdout_schema(num_negatives),
        )
    files = {}
    for name, (table, table_schema) in tables.items():
        path = out_dir / schema.TABLE_FILES[name]
        schema.write_table(table, table_schema, path)
        files[name] = {"path": path.name, "rows": table.num_rows, "sha256": sha256_of(path)}
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {
            "users": split.n_users,
            "items": split.n_items,
            "train": len(split.train),
            "validation": 0 if split.validation is None else len(split.validation.frame),
            "test": len(split.test.frame),
            "num_negatives": num_negatives,
        },
        "files": files,
        **extra,
    }
    _write_json_atomically(manifest, out_dir / schema.MANIFEST_FILE)
    return manifest


@dataclass(frozen=True)
class ProcessedData:
    """A processed folder read back as DataFrames (negatives as numpy): what training consumes."""

    manifest: dict[str, Any]
    train: pd.DataFrame
    validation: Holdout | None
    test: Holdout
    users: pd.DataFrame
    items: pd.DataFrame

    @property
    def n_users(self) -> int:
        return int(self.manifest["counts"]["users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["counts"]["items"])


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / schema.MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"No {schema.MANIFEST_FILE} in {folder}: point the training stage at the output "
            "folder of the processing stage (python -m preprocessing ... --output-dir DIR)."
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path} is not valid JSON ({exc}); re-run the processing stage."
        ) from exc
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} is not a JSON object; {_RERUN}")
    version = manifest.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema version {version!r}, this code reads {schema.SCHEMA_VERSION!r}. "
            "Re-run the processing stage with this version of the course code."
        )
    _check_counts(manifest, path)
    _check_files(manifest, path)
    return manifest


def read_split(folder: Path, *, verify_checksums: bool = True) -> ProcessedData:
    manifest = read_manifest(folder)
    num_negatives = manifest["counts"]["num_negatives"]
    names = _tables_read(manifest)
    if verify_checksums:
        for name in names:
            _verify_checksum(folder, manifest["files"][name])

    def table(name: str, table_schema: pa.Schema) -> pa.Table:
        return schema.read_table(folder / schema.TABLE_FILES[name], table_schema)

    holdout_schema = schema.holdout_schema(num_negatives)
    return ProcessedData(
        manifest=manifest,
        train=table("train", schema.TRAIN).to_pandas(),
        validation=_holdout_from(table("validation", holdout_schema))
        if "validation" in names
        else None,
        test=_holdout_from(table("test", holdout_schema)),
        users=table("users", schema.USERS).to_pandas(),
        items=table("items", schema.ITEMS).to_pandas(),
    )


def _tables_read(manifest: dict[str, Any]) -> list[str]:
    """The tables a reader loads: all but validation, which only a split with one has."""
    return [
        name
        for name in schema.TABLE_FILES
        if name != "validation" or manifest["counts"]["validation"]
    ]


def _check_counts(manifest: dict[str, Any], path: Path) -> None:
    """Readers size tensors and schemas from the counts, so each must be a real count."""
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        raise ManifestError(f"{path} has no 'counts' object; {_RERUN}")
    bad = [name for name in _COUNTS if not _is_count(counts.get(name))]
    if bad:
        raise ManifestError(
            f"{path}: counts {', '.join(bad)} missing or not a whole number >= 0; {_RERUN}"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_files(manifest: dict[str, Any], path: Path) -> None:
    """A table read without a checksummed entry of its own could be anything: refuse it."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ManifestError(f"{path} has no 'files' object mapping table names to files; {_RERUN}")
    for name in _tables_read(manifest):
        entry = files.get(name)
        expected = schema.TABLE_FILES[name]
        if (
            not isinstance(entry, dict)
            or entry.get("path") != expected
            or not isinstance(entry.get("sha256"), str)
        ):
            raise ManifestError(
                f"{path} has no checksummed entry for table {name!r} (files.{name} must name "
                f"{expected!r} and its sha256); {_RERUN}"
            )


def _verify_checksum(folder: Path, entry: dict[str, Any]) -> None:
    path = folder / entry["path"]
    actual = sha256_of(path) if path.is_file() else None
    if actual != entry["sha256"]:
        raise ManifestError(
            f"{entry['path']} in {folder} does not match its checksum in the manifest "
            f"({'missing' if actual is None else 'modified'}); re-run the processing stage."
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _holdout_table(holdout: Holdout) -> pa.Table:
    table = pa.Table.from_pandas(holdout.frame, preserve_index=False)
    flat = pa.array(holdout.negatives.reshape(-1), type=pa.int32())
    negatives = pa.FixedSizeListArray.from_arrays(flat, holdout.negatives.shape[1])
    return table.append_column("negatives", negatives)


def _holdout_from(table: pa.Table) -> Holdout:
    negatives_column = table.column("negatives").combine_chunks()
    width = negatives_column.type.list_size
    negatives = negatives_column.flatten().to_numpy().reshape(-1, width)
    return Holdout(frame=table.drop_columns(["negatives"]).to_pandas(), negatives=negatives)


def _write_json_atomically(payload: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the manifest")
