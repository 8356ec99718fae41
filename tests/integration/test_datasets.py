"""The downloader against a real HTTP server on 127.0.0.1 (the lookup of unzipped copies is in
unit/test_datasets.py)."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from preprocessing.datasets import DATASETS, DownloadError, fetch
from tests.helpers import RATINGS


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


def test_unreachable_server_explains_the_offline_route(monkeypatch, tmp_path, session, free_port):
    url = f"http://127.0.0.1:{free_port()}/ml-1m.zip"
    monkeypatch.setitem(DATASETS, "ml-1m", replace(DATASETS["ml-1m"], url=url))
    with pytest.raises(DownloadError) as error:
        _fetch(tmp_path, session)
    message = str(error.value)
    assert message.startswith(f"Could not download ml-1m from {url} (")
    assert "offline" in message
    assert "--data-dir <folder containing ratings.dat>" in message
