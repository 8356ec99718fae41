"""The downloader against a real HTTP server on 127.0.0.1, and the lookup of unzipped copies."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from preprocessing import datasets
from preprocessing.datasets import DATASETS, DownloadError, fetch, known_checksum_matches, locate

RATINGS = b"1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n"


@dataclass
class FakeGroupLens:
    """What the test server serves and what it was asked; the handler reads and writes this."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    requests: list[dict[str, str | None]] = field(default_factory=list)
    url: str = ""


def _handler(state: FakeGroupLens) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            state.requests.append({"path": self.path, "range": wanted})
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
            elif wanted is None or state.ignore_range:
                self._send(200, body)
            else:
                self._send_range(body, int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1)))

        def _send_range(self, body: bytes, start: int) -> None:
            if start >= len(body):
                self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
            else:
                content_range = f"bytes {start}-{len(body) - 1}/{len(body)}"
                self._send(206, body[start:], {"Content-Range": content_range})

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FakeGroupLens]:
    state = FakeGroupLens()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """Ignores proxy settings from the environment, which would otherwise catch 127.0.0.1."""
    with requests.Session() as http:
        http.trust_env = False
        yield http


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


ARCHIVE = _zip({"ml-1m/ratings.dat": RATINGS, "ml-1m/README": b"test archive\n"})


def _serve(
    server: FakeGroupLens,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes = ARCHIVE,
    md5: str | None = None,
) -> None:
    """Serve ``body`` as ml-1m.zip and point the ml-1m spec at it, with a matching checksum."""
    server.files["/ml-1m.zip"] = body
    spec = replace(
        DATASETS["ml-1m"],
        url=f"{server.url}/ml-1m.zip",
        md5=md5 or hashlib.md5(body).hexdigest(),
    )
    monkeypatch.setitem(DATASETS, "ml-1m", spec)


def _fetch(tmp_path: Path, session: requests.Session) -> Path:
    return fetch("ml-1m", tmp_path, progress=False, session=session)


def test_fresh_download_extracts_the_ratings_file(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch)
    ratings = fetch("ml-1m", tmp_path, progress=True, session=session)
    assert ratings == tmp_path / "ml-1m" / "ratings.dat"
    assert ratings.read_bytes() == RATINGS
    assert (tmp_path / "ml-1m.zip").read_bytes() == ARCHIVE
    assert not list(tmp_path.rglob("*.part"))
    assert server.requests == [{"path": "/ml-1m.zip", "range": None}]


def test_second_call_makes_no_request(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch)
    first = _fetch(tmp_path, session)
    server.requests.clear()
    assert _fetch(tmp_path, session) == first
    assert server.requests == []


def test_partial_download_resumes_with_a_range_request(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch)
    half = len(ARCHIVE) // 2
    (tmp_path / "ml-1m.zip.part").write_bytes(ARCHIVE[:half])
    assert _fetch(tmp_path, session).read_bytes() == RATINGS
    assert server.requests == [{"path": "/ml-1m.zip", "range": f"bytes={half}-"}]
    assert (tmp_path / "ml-1m.zip").read_bytes() == ARCHIVE


def test_server_ignoring_range_restarts_the_download(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch)
    server.ignore_range = True
    (tmp_path / "ml-1m.zip.part").write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    assert _fetch(tmp_path, session).read_bytes() == RATINGS
    assert server.requests[0]["range"] is not None
    assert (tmp_path / "ml-1m.zip").read_bytes() == ARCHIVE


def test_complete_partial_file_is_verified_not_downloaded_again(
    server, monkeypatch, tmp_path, session
):
    _serve(server, monkeypatch)
    (tmp_path / "ml-1m.zip.part").write_bytes(ARCHIVE)
    assert _fetch(tmp_path, session).read_bytes() == RATINGS
    assert server.requests == [{"path": "/ml-1m.zip", "range": f"bytes={len(ARCHIVE)}-"}]


def test_checksum_mismatch_deletes_the_download(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch, md5="0" * 32)
    with pytest.raises(DownloadError) as error:
        _fetch(tmp_path, session)
    message = str(error.value)
    assert "0" * 32 in message
    assert hashlib.md5(ARCHIVE).hexdigest() in message
    assert "run again" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_checksum_reports_the_computed_one(server, monkeypatch, tmp_path, session, capsys):
    _serve(server, monkeypatch)
    monkeypatch.setitem(DATASETS, "ml-1m", replace(DATASETS["ml-1m"], md5=None))
    assert _fetch(tmp_path, session).read_bytes() == RATINGS
    err = capsys.readouterr().err
    assert "could not be verified" in err
    assert hashlib.md5(ARCHIVE).hexdigest() in err


def test_corrupt_zip_is_deleted_with_a_clear_error(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch, body=b"<html>not a zip</html>")
    with pytest.raises(DownloadError, match="not a valid zip"):
        _fetch(tmp_path, session)
    assert not (tmp_path / "ml-1m.zip").exists()


def test_archive_escaping_its_folder_is_refused(server, monkeypatch, tmp_path, session):
    cache = tmp_path / "cache"
    _serve(server, monkeypatch, body=_zip({"../escaped.txt": b"x", "ml-1m/ratings.dat": RATINGS}))
    with pytest.raises(DownloadError, match="outside its folder"):
        _fetch(cache, session)
    assert not (tmp_path / "escaped.txt").exists()


def test_archive_without_ratings_file_is_reported(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch, body=_zip({"ml-1m/README": b"no ratings here\n"}))
    with pytest.raises(DownloadError, match=r"does not contain ml-1m/ratings\.dat"):
        _fetch(tmp_path, session)


def test_http_error_is_a_download_error(server, monkeypatch, tmp_path, session):
    _serve(server, monkeypatch)
    del server.files["/ml-1m.zip"]
    with pytest.raises(DownloadError, match="404"):
        _fetch(tmp_path, session)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_explains_the_offline_route(monkeypatch, tmp_path, session):
    url = f"http://127.0.0.1:{_unused_port()}/ml-1m.zip"
    monkeypatch.setitem(DATASETS, "ml-1m", replace(DATASETS["ml-1m"], url=url))
    with pytest.raises(DownloadError) as error:
        _fetch(tmp_path, session)
    message = str(error.value)
    assert message.startswith(f"Could not download ml-1m from {url} (")
    assert "offline" in message
    assert "--data-dir <folder containing ratings.dat>" in message


def test_unknown_release_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="ml-100k, ml-1m"):
        fetch("ml-2m", tmp_path)


def test_every_release_comes_from_grouplens():
    assert datasets.BASE_URL == "https://files.grouplens.org/datasets/movielens"
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.url == f"{datasets.BASE_URL}/{name}.zip"
        assert spec.md5 is None or re.fullmatch(r"[0-9a-f]{32}", spec.md5)
    assert DATASETS["ml-10m"].archive_dir == "ml-10M100K"


@pytest.mark.needs_ml100k
def test_locate_accepts_the_folder_or_its_parent(ml100k_dir):
    for folder in (ml100k_dir, ml100k_dir.parent):
        assert locate("ml-100k", folder) == ml100k_dir / "u.data"
    assert known_checksum_matches("ml-100k", ml100k_dir / "u.data") is True


def test_locate_finds_a_release_whose_folder_is_renamed(tmp_path):
    ratings = tmp_path / "ml-10M100K" / "ratings.dat"
    ratings.parent.mkdir()
    ratings.write_bytes(RATINGS)
    assert locate("ml-10m", tmp_path) == ratings


def test_locate_failure_lists_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        locate("ml-1m", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "ratings.dat") in message
    assert str(tmp_path / "ml-1m" / "ratings.dat") in message
    assert "ml-1m.zip" in message


def test_checksum_of_ratings_file(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_bytes(RATINGS)
    assert known_checksum_matches("ml-100k", ratings) is False
    assert known_checksum_matches("ml-1m", ratings) is None
