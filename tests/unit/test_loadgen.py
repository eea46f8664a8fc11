"""The independent load client (tests/loadgen.py) against a tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loadgen import Load, get

from lab.access.ports import free_local_port


class Handler(BaseHTTPRequestHandler):
    """``/`` answers 200 after ``delay`` s; every ``fail_every``-th request gets a 503."""

    delay = 0.0
    fail_every = 0
    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with Handler.lock:
            Handler.served += 1
            failing = Handler.fail_every and Handler.served % Handler.fail_every == 0
        time.sleep(Handler.delay)
        body = b"hello v1\n"
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    Handler.delay, Handler.fail_every, Handler.served = 0.0, 0, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_get_returns_status_and_page(server: int) -> None:
    assert get(server) == (200, "hello v1")


def test_get_without_a_server_is_status_zero() -> None:
    status, page = get(free_local_port(), timeout=1)
    assert status == 0 and "Connection" in page


def sent(load: Load, count: int, timeout: float = 30) -> None:
    """Until ``load`` has sent ``count`` requests; fails at the deadline, also on silence."""
    deadline = time.monotonic() + timeout
    while load.requests < count:
        assert time.monotonic() < deadline, f"{load.requests} requests in {timeout} s"
        time.sleep(0.01)


def test_load_counts_every_request_it_sent_and_never_goes_faster_than_asked(
        server: int) -> None:
    started = time.monotonic()
    with Load(server, rate=100, threads=4) as load:
        sent(load, 40)
    took = time.monotonic() - started
    assert load.requests == Handler.served >= 40
    # Each thread waits its share of the rate between requests: at most 100/s and the first
    # request of each. A busy machine only sends fewer, so this cannot fail by luck.
    assert load.requests <= 100 * took + 4
    assert load.failed == 0
    assert load.rate > 0


def test_load_counts_failures(server: int) -> None:
    Handler.fail_every = 4
    with Load(server, rate=80, threads=4) as load:
        sent(load, 12)
    assert load.failed == Handler.served // 4
    assert load.failed >= 3
    assert load.figures()["failed"] == load.failed


def test_load_measures_latency(server: int) -> None:
    Handler.delay = 0.05
    with Load(server, rate=40, threads=4) as load:
        sent(load, 8)
    figures = load.figures()
    assert figures["requests"] == load.requests >= 8
    assert figures["p99_ms"] >= 50  # every answer took the server's 50 ms at least
    assert load.percentile_ms(0.5) >= 50


def test_load_without_a_server_counts_every_request_as_failed() -> None:
    with Load(free_local_port(), rate=50, threads=2) as load:
        sent(load, 4)
    assert load.failed == load.requests >= 4


def test_no_requests_no_figures() -> None:
    load = Load(1, rate=10)
    assert (load.rate, load.figures()) == (0.0, {"requests": 0, "failed": 0, "p99_ms": 0.0})
