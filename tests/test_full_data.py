"""Checks on the full Fashion-MNIST. CI installs Debian's dataset-fashion-mnist, so these fail, not
skip, where it is missing: a green run must mean the numbers were checked on the real set."""

from __future__ import annotations

import pytest

from costhill import RunConfig, train
from costhill.data import full_data_available, load

pytestmark = pytest.mark.full_data


@pytest.fixture(scope="module")
def full():
    assert full_data_available(), (
        "the full Fashion-MNIST is missing: install Debian's dataset-fashion-mnist "
        "or run `costhill data fetch`"
    )
    return load("fashion-mnist", download=False)


def test_full_set_verifies_and_splits(full):
    assert full.verified == "SHA-256 of all 4 files matches"
    assert (len(full.train), len(full.validation), len(full.test)) == (50_000, 10_000, 10_000)


@pytest.mark.slow  # 10 full-data epochs: about 20 s
def test_adam_1e3_reaches_0875_test_accuracy_within_10_epochs(full):
    run = train(RunConfig(optimizer="adam", lr=1e-3, batch_size=64, epochs=10), data=full)
    best = max(e.test_accuracy for e in run.epochs)
    assert best >= 0.875, [round(e.test_accuracy, 4) for e in run.epochs]


def test_zeros_init_stays_at_chance_on_the_full_set(full):
    run = train(RunConfig(init="zeros", epochs=2, batch_size=64), data=full)
    assert run.epochs[-1].test_accuracy == pytest.approx(0.10, abs=0.005)


def test_data_fetch_downloads_verifies_and_is_then_found(invoke, tmp_path, monkeypatch):
    """`costhill data fetch` from a mirror on 127.0.0.1 serving the real files."""
    import http.server
    import threading
    from functools import partial

    from costhill.data import DATASETS, cache_dir, locate

    source = DATASETS["fashion-mnist"].system_dirs[0]
    assert source.is_dir(), f"{source} is missing: install Debian's dataset-fashion-mnist"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=source))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = invoke("data", "fetch", "--mirror", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "verified files in" in result.stdout
    assert sorted(p.name for p in cache_dir("fashion-mnist").iterdir()) == sorted(
        p.name for p in source.glob("*.gz")
    )
    monkeypatch.delenv("COSTHILL_DATA", raising=False)
    assert locate("fashion-mnist", download=False)[0] == "user cache"
