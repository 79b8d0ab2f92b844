"""Downloads against a server on 127.0.0.1 that misbehaves on purpose: a transfer cut off half-way
(continued with a Range request, or started again where ranges are ignored), a stall (a timeout),
a 500, a 404 and wrong content. Each is retried with a doubling wait or ends in one clear error;
the cache never holds a file that failed its checks."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest

from costhill import data
from costhill.download import Retry
from costhill.errors import DataError

SAMPLE_DIR = Path(__file__).parents[1] / "src" / "costhill" / "samples" / "fashion-mnist-sample"
FIRST = "train-images-idx3-ubyte.gz"  # the file data.fetch asks for first
STALL_SECONDS = 1.5


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves the sample's files; each request of ``FIRST`` takes the next fault in the list."""

    server: _FlakyServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        wanted = self.headers.get("Range")
        self.server.requests.append((name, wanted))
        fault = self.server.faults.pop(0) if name == FIRST and self.server.faults else "ok"
        if fault in ("404", "500"):
            self.send_error(int(fault))
            return
        if fault == "stall":
            time.sleep(STALL_SECONDS)
            return
        body = (SAMPLE_DIR / name).read_bytes()
        if fault == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        ranged = bool(wanted) and fault != "no-range"
        part = body[start:] if ranged else body
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if fault == "cut":  # promise it all, send half, hang up
            self.wfile.write(part[: len(part) // 2])
            self.close_connection = True
            return
        self.wfile.write(part)


class _FlakyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Flaky)
        self.faults: list[str] = []
        self.requests: list[tuple[str, str | None]] = []


@pytest.fixture
def flaky(monkeypatch, tmp_path):
    """The server, its URL, and the waits a download slept (recorded, not slept)."""
    server = _FlakyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sample = data.DATASETS["fashion-mnist-sample"]
    info = data.DatasetInfo(
        name="served",
        class_names=sample.class_names,
        sha256=sample.sha256,
        default_validation=100,
        mirror="unused",
    )
    monkeypatch.setitem(data.DATASETS, "served", info)
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _fetch(url: str, waits: list[float], **retry) -> Path:
    settings = {"attempts": 4, "backoff": 0.25, "timeout": 0.5, **retry}
    return data.fetch("served", mirror=url, retry=Retry(**settings), sleep=waits.append)


def _first_requests(server: _FlakyServer) -> list[str | None]:
    return [wanted for name, wanted in server.requests if name == FIRST]


def _cache_holds_nothing_bad() -> None:
    folder = data.cache_dir("served")
    assert not list(folder.glob("*.part")) and not (folder / FIRST).exists()


def test_a_cut_transfer_goes_on_with_a_range_request(flaky):
    server, url = flaky
    server.faults = ["cut"]
    waits: list[float] = []
    target = _fetch(url, waits)
    size = (SAMPLE_DIR / FIRST).stat().st_size
    assert _first_requests(server) == [None, f"bytes={size // 2}-"]
    assert (target / FIRST).read_bytes() == (SAMPLE_DIR / FIRST).read_bytes()
    assert waits == [0.25]
    assert data.load("served").verified == "SHA-256 of all 4 files matches"


def test_a_server_that_ignores_ranges_is_read_again_from_the_start(flaky):
    server, url = flaky
    server.faults = ["cut", "no-range"]
    target = _fetch(url, [])
    assert len(_first_requests(server)) == 2
    assert (target / FIRST).read_bytes() == (SAMPLE_DIR / FIRST).read_bytes()


def test_a_stalled_server_times_out_and_is_asked_again(flaky):
    server, url = flaky
    server.faults = ["stall", "500"]
    waits: list[float] = []
    target = _fetch(url, waits)
    assert len(_first_requests(server)) == 3 and waits == [0.25, 0.5]
    assert (target / FIRST).is_file()


def test_a_server_that_keeps_failing_ends_in_one_clear_error(flaky):
    server, url = flaky
    server.faults = ["500"] * 10
    waits: list[float] = []
    with pytest.raises(DataError, match=rf"{FIRST}: download failed after 3 attempts .*500"):
        _fetch(url, waits, attempts=3)
    assert waits == [0.25, 0.5] and len(_first_requests(server)) == 3
    _cache_holds_nothing_bad()


def test_a_missing_file_is_not_asked_for_again(flaky):
    server, url = flaky
    server.faults = ["404"]
    waits: list[float] = []
    with pytest.raises(DataError, match=r"HTTP 404 .*not retried"):
        _fetch(url, waits)
    assert waits == [] and len(_first_requests(server)) == 1
    _cache_holds_nothing_bad()


def test_wrong_content_is_downloaded_again_and_never_kept(flaky):
    server, url = flaky
    server.faults = ["corrupt"]
    target = _fetch(url, [])
    assert (target / FIRST).read_bytes() == (SAMPLE_DIR / FIRST).read_bytes()
    server.faults = ["corrupt"] * 10
    (target / FIRST).unlink()
    with pytest.raises(DataError, match=r"after download \(2 attempts\); nothing was kept"):
        _fetch(url, [], attempts=2)
    _cache_holds_nothing_bad()
