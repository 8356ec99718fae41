"""The written contract between the processing stage and everything downstream.

Every table the processing stage writes is one of the schemas below, stored as Parquet next to a
``manifest.json`` (see :mod:`preprocessing.manifest`). Readers check the schema version and each
table's schema before trusting a file, so a stale or hand-edited output fails loudly.

Ids: ``user`` and ``item`` are dense 0-based indices (what embedding tables need); ``user_id`` and
``item_id`` are the original MovieLens ids, kept in ``users.parquet`` / ``items.parquet``.

Readers accept their own schema version only. An added column raises the minor number, a changed
or removed one the major: 1.0 was the first contract, 1.1 added ``items.title``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "1.1"
MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.csv"

# Raw interactions as every loader returns them (pandas dtypes), before id mapping.
RAW_COLUMNS = {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}

TRAIN = pa.schema(
    [
        pa.field("user", pa.int32(), nullable=False),
        pa.field("item", pa.int32(), nullable=False),
        pa.field("rating", pa.float32(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
    ]
)


def holdout_schema(num_negatives: int) -> pa.Schema:
    """One held-out positive per user plus the sampled never-seen items it is ranked against."""
    return TRAIN.append(pa.field("negatives", pa.list_(pa.int32(), num_negatives), nullable=False))


USERS = pa.schema(
    [
        pa.field("user", pa.int32(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("n_train", pa.int32(), nullable=False),
        pa.field("first_timestamp", pa.int64(), nullable=False),
        pa.field("last_timestamp", pa.int64(), nullable=False),
    ]
)

ITEMS = pa.schema(
    [
        pa.field("item", pa.int32(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("n_train", pa.int32(), nullable=False),
        pa.field("mean_rating", pa.float32(), nullable=True),  # null: no train ratings
        pa.field("title", pa.string(), nullable=True),  # null: the dataset has no titles
    ]
)

TABLE_FILES = {
    "train": "train.parquet",
    "validation": "validation.parquet",
    "test": "test.parquet",
    "users": "users.parquet",
    "items": "items.parquet",
}

# Every file a processing run writes, by name, the manifest first: a folder being cleared in this
# order never looks whole. A run removes exactly these, so other files in the folder are safe.
OUTPUT_FILES = (MANIFEST_FILE, *TABLE_FILES.values(), REJECTS_FILE)


class SchemaError(ValueError):
    """A processed file does not match the contract this code was written for."""


def write_table(table: pa.Table, schema: pa.Schema, path: Path) -> None:
    """Write atomically so a crashed job never leaves a half-written Parquet file behind."""
    if not table.schema.equals(schema):
        table = table.cast(schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def read_table(path: Path, schema: pa.Schema) -> pa.Table:
    if not path.is_file():
        raise SchemaError(f"{path} is missing: was the processing stage run into this folder?")
    table = pq.read_table(path)
    if not table.schema.equals(schema, check_metadata=False):
        raise SchemaError(
            f"{path.name} does not match schema version {SCHEMA_VERSION}.\n"
            f"expected:\n{schema}\nfound:\n{table.schema}\n"
            "Re-run the processing stage with this version of the code."
        )
    return table
