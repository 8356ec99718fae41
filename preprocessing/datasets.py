"""The MovieLens releases the course can use, and a resumable, checksum-verified downloader.

GroupLens forbids redistributing MovieLens, so nothing here is committed: :func:`fetch` downloads
the official archive on a learner's machine, and :func:`locate` finds a copy the learner unzipped
by hand (an offline machine, a shared data folder). Both hand back the path of the ratings file,
so the loaders downstream read one file the same way whichever route it came by.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from preprocessing.formats import RAW_FORMATS

BASE_URL = "https://files.grouplens.org/datasets/movielens"

TIMEOUT_S = (10, 60)  # (connect, read): long enough for a slow link, short enough to fail offline
CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A MovieLens archive could not be downloaded, verified or extracted."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a release is published and where its ratings sit once unzipped."""

    name: str
    url: str
    md5: str | None  # of the .zip as GroupLens publishes it in <name>.zip.md5; None: unknown
    archive_dir: str  # the folder the archive extracts to
    ratings_file: str
    raw_format: str  # a key of formats.RAW_FORMATS
    ratings_md5: str | None = None  # of the extracted ratings file, where known


def _spec(
    name: str,
    md5: str | None,
    raw_format: str,
    *,
    archive_dir: str | None = None,
    ratings_md5: str | None = None,
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        url=f"{BASE_URL}/{name}.zip",
        md5=md5,
        archive_dir=archive_dir or name,
        ratings_file=RAW_FORMATS[raw_format].file_name,
        raw_format=raw_format,
        ratings_md5=ratings_md5,
    )


# Archive checksums are GroupLens' own <name>.zip.md5 files as quoted by public loaders (this
# machine cannot reach GroupLens): ml-100k, ml-1m, ml-10m, ml-20m and ml-25m from
# eli-osherovich/papers_with_code (datasets/movielens/dl_config.py), ml-1m, ml-20m and ml-25m
# again in NCF verify_dataset.sh scripts ("From: curl -O .../ml-1m.zip.md5", e.g.
# numericalalgorithmsgroup/MLFirstSteps_Azure ncf/verify_dataset.sh); ml-32m from several
# independent loaders citing ml-32m.zip.md5 (e.g. as pooch's known_hash). ml-latest-small is
# rebuilt now and then under the same name, so no checksum is pinned for it.
# u.data's md5 is the official file's (as in ../shared/data/ml-100k/README.md).
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "ml-100k",
            "0e33842e24a9c977be4e0107933c0723",
            "ml-100k",
            ratings_md5="6e47046882bad158b0efbb84cd5cb987",
        ),
        _spec("ml-1m", "c4d9eecfca2ab87c1945afe126590906", "ml-1m"),
        _spec("ml-10m", "ce571fd55effeba0271552578f2648bd", "ml-10m", archive_dir="ml-10M100K"),
        _spec("ml-20m", "cd245b17a1ae2cc31bb14903e1204af3", "ml-csv"),
        _spec("ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada", "ml-csv"),
        _spec("ml-32m", "d472be332d4daa821edc399621853b57", "ml-csv"),
        _spec("ml-latest-small", None, "ml-csv"),
    )
}


def spec_for(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown MovieLens release {name!r}; choose one of {', '.join(DATASETS)}."
        ) from None


def fetch(
    name: str,
    cache_dir: Path,
    *,
    progress: bool = True,
    session: requests.Session | None = None,
) -> Path:
    """Path of ``name``'s ratings file under ``cache_dir``, downloading the archive if needed.

    Safe to call every time: it does nothing once the ratings file is there, and an interrupted
    download resumes where it stopped.
    """
    spec = spec_for(name)
    ratings = cache_dir / spec.archive_dir / spec.ratings_file
    if ratings.is_file():
        return ratings
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"{spec.name}.zip"
    if not archive.is_file():
        _download(spec, archive, progress=progress, session=session)
    _extract(archive, cache_dir)
    if not ratings.is_file():
        raise DownloadError(
            f"{archive} does not contain {spec.archive_dir}/{spec.ratings_file}. "
            "Delete it and run again; if it persists, GroupLens changed the archive's layout."
        )
    return ratings


def _download(
    spec: DatasetSpec, archive: Path, *, progress: bool, session: requests.Session | None
) -> None:
    part = archive.with_name(archive.name + ".part")
    try:
        with nullcontext(session) if session else requests.Session() as http:
            _stream(spec, http, part, progress)
    except requests.RequestException as exc:  # refused, timed out, HTTP error, cut off midway
        raise DownloadError(
            f"Could not download {spec.name} from {spec.url} ({exc}). If this machine is offline, "
            "download the archive on another machine, unzip it and pass "
            f"--data-dir <folder containing {spec.ratings_file}> (in a lesson: set NCF_DATA_DIR "
            "to that folder before starting JupyterLab)."
        ) from exc
    _verify(spec, part)
    part.replace(archive)


def _stream(spec: DatasetSpec, http: requests.Session, part: Path, progress: bool) -> None:
    """Append to ``part`` from where it stopped; start over if the server ignores the Range."""
    done = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    with http.get(spec.url, headers=headers, stream=True, timeout=TIMEOUT_S) as response:
        if response.status_code == requests.codes.range_not_satisfiable:
            return  # ``part`` already holds the whole file; the checksum will tell
        response.raise_for_status()
        if response.status_code != requests.codes.partial_content:
            done = 0
        size = int(response.headers.get("Content-Length", 0))
        with (
            part.open("ab" if done else "wb") as out,
            _progress_bar(spec.name, done + size if size else None, done, progress) as bar,
        ):
            for chunk in response.iter_content(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))


def _progress_bar(name: str, total: int | None, initial: int, progress: bool) -> tqdm:
    # ``disable`` stays unset unless asked for, so that TQDM_DISABLE=1 (tqdm reads it) still works.
    switch = {} if progress else {"disable": True}
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        **switch,
    )


def md5_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def _verify(spec: DatasetSpec, part: Path) -> None:
    actual = md5_of(part)
    if spec.md5 is None:
        print(
            f"{spec.name}: no published checksum is pinned, so the download could not be "
            f"verified; its md5 is {actual}.",
            file=sys.stderr,
        )
    elif actual != spec.md5:
        part.unlink()
        raise DownloadError(
            f"{spec.name}.zip failed its checksum: expected md5 {spec.md5}, got {actual}. "
            "The damaged download was deleted; run again to download it afresh."
        )


def _extract(archive: Path, destination: Path) -> None:
    """Extract every member, refusing paths that leave ``destination``.

    Each file is written under a temporary name and renamed when complete, so a crash never
    leaves a truncated ratings file that a later call would take for a finished one.
    """
    root = destination.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (root / member.filename).resolve()
                if not target.is_relative_to(root):
                    raise DownloadError(
                        f"{archive} holds a member outside its folder ({member.filename!r}); "
                        "it is not a MovieLens archive. Delete it and download again."
                    )
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    _extract_file(zf, member, target)
    except zipfile.BadZipFile as exc:
        archive.unlink()
        raise DownloadError(
            f"{archive} is not a valid zip archive ({exc}). It was deleted; run again to "
            "download it afresh."
        ) from exc


def _extract_file(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with zf.open(member) as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK_BYTES)
    partial.replace(target)


def locate(name: str, data_dir: Path) -> Path:
    """The ratings file of ``name`` in a folder the learner unzipped by hand.

    Accepts the folder that holds the file or its parent (``data/ml-100k`` or ``data``).
    """
    spec = spec_for(name)
    candidates = [data_dir / spec.ratings_file, data_dir / spec.archive_dir / spec.ratings_file]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = "\n".join(f"  {candidate}" for candidate in candidates)
    raise FileNotFoundError(
        f"No {spec.ratings_file} for {name} in {data_dir}. Looked for:\n{looked}\n"
        f"Unzip {spec.name}.zip ({spec.url}) and pass the folder that holds {spec.ratings_file}, "
        "or leave out --data-dir to download it."
    )


def known_checksum_matches(name: str, ratings_path: Path) -> bool | None:
    """Whether a ratings file is the official one; None when no checksum is known for it."""
    expected = spec_for(name).ratings_md5
    return None if expected is None else md5_of(ratings_path) == expected
