"""An independent HTTP load client, shared by the release integration test and the benchmarks.

Deliberately not lab/release/probe.py: the tests and the benchmarks judge lab's releases, so they
measure with a client that is not lab's own. Plain standard library, so that the bench scripts
(run with the lab venv's python, tests/ added to sys.path) and pytest (``pythonpath``) import it
the same way.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass


def get(port: int, host: str = "127.0.0.1", path: str = "/",
        timeout: float = 5.0) -> tuple[int, str]:
    """One request, as a user's client makes it (a new connection each time): (status, page);
    status 0 when the connection itself failed."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    except OSError as exc:
        return 0, repr(exc)
    finally:
        connection.close()


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic() when the request was sent
    status: int  # 0: no answer
    seconds: float


class Load:
    """About ``rate`` requests per second to ``host:port`` from ``threads`` threads while the
    ``with`` block runs; records each request's status and latency. Each thread stops after
    ``max_seconds`` whatever happens, so a test that hangs cannot load a machine for ever."""

    def __init__(self, port: int, rate: float = 100, threads: int = 8,
                 host: str = "127.0.0.1", max_seconds: float = 900) -> None:
        self.port, self.host, self.max_seconds = port, host, max_seconds
        self.interval = threads / rate
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            status, _ = get(self.port, self.host)
            took = time.monotonic() - started
            with self._lock:
                self.samples.append(Sample(started, status, took))
            self._stop.wait(max(0.0, self.interval - took))

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def failed(self) -> int:
        """Requests that did not get a 200."""
        return sum(s.status != 200 for s in self.samples)

    @property
    def rate(self) -> float:
        """Requests per second reached, from the first request sent to the last."""
        starts = sorted(s.started for s in self.samples)
        if len(starts) < 2 or starts[-1] == starts[0]:
            return 0.0
        return len(starts) / (starts[-1] - starts[0])

    def percentile_ms(self, fraction: float) -> float:
        """Latency below which ``fraction`` of the requests were answered, in ms."""
        latencies = sorted(s.seconds for s in self.samples)
        if not latencies:
            return 0.0
        return 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * fraction))]

    def figures(self) -> dict[str, float]:
        """What the benchmarks print: requests, failed, p99 latency."""
        return {"requests": self.requests, "failed": self.failed,
                "p99_ms": self.percentile_ms(0.99)}
