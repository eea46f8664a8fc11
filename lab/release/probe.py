"""A steady stream of HTTP requests to the balancer, measuring what users would see.

The probe runs in background threads during a release: every answer is recorded with its
status, latency and the version that served it (the last word of the page), and the server that
answered where the balancer names it, so each canary step can be judged on error rate and on
the new generation's latency beside the old one's, and the split of traffic between versions
is visible. It talks to the URL the balancer gives (HAProxy's is on 127.0.0.1, an ALB's is not),
and stops by itself after ``max_seconds``.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Sample:
    at: float
    ok: bool
    latency: float
    version: str
    server: str = ""  # who answered, when the balancer says (HAProxy's X-Lab-Server header)


@dataclass
class Window:
    """What the probe saw over a stretch of time."""

    seconds: float
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 2), "requests": self.requests,
                "errors": self.errors, "error_rate": round(self.error_rate, 4),
                "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 1),
                "p99_ms": round(self.p99_ms, 1), "versions": self.versions}


def summary(samples: list[Sample], seconds: float) -> Window:
    """What ``samples`` taken over ``seconds`` add up to."""
    window = Window(seconds=max(seconds, 1e-9), requests=len(samples),
                    errors=sum(not s.ok for s in samples))
    latencies = sorted(s.latency for s in samples)
    if latencies:
        window.p50_ms = 1000 * latencies[len(latencies) // 2]
        window.p99_ms = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    window.versions = dict(Counter(s.version for s in samples if s.ok))
    return window


def generations(samples: list[Sample], seconds: float, new: Collection[str],
                old_versions: Collection[str]) -> tuple[Window, Window] | None:
    """The answers of the new generation and of the old one, apart: (new, old); None when
    nothing tells them apart.

    An answer names its server where the balancer adds it (HAProxy does: ``X-Lab-Server``);
    elsewhere (an ALB) it is told by its version: one the old generation served before the
    release is the old one's, any other the new one's. An answer that says neither (an
    error without a server's name) counts for no one. Without server names, and with no
    answer in a version the old generation did not serve (a page that names no version), the
    two cannot be told apart.
    """
    ours: list[Sample] = []
    theirs: list[Sample] = []
    named = False
    for sample in samples:
        if sample.server and not sample.server.startswith("<"):  # <NOSRV>: no server took it
            named = True
            (ours if sample.server in new else theirs).append(sample)
        elif sample.ok and old_versions:
            (theirs if sample.version in old_versions else ours).append(sample)
    if not named and not ours:
        return None
    return summary(ours, seconds), summary(theirs, seconds)


class Probe:
    """``rate`` requests per second to ``url`` (http or https), from ``workers`` threads."""

    def __init__(self, url: str, rate: float = 40.0, workers: int = 4,
                 max_seconds: float = 900.0, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the probe needs an http(s) URL, got {url!r}")
        self.url, self.timeout = url, timeout
        self.host, self.port = parts.hostname, parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection = (http.client.HTTPSConnection if parts.scheme == "https"
                            else http.client.HTTPConnection)
        self.interval = workers / rate
        self.workers = workers
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}  # worker -> when its request began
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Probe:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        deadline = time.monotonic() + self.max_seconds
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, args=(deadline, i), daemon=True,
                                      name=f"lab-probe-{i}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._threads.clear()

    def settle(self, until: float) -> None:
        """Wait until every request begun before ``until`` has its answer (at most the
        request timeout): a step judged at once would leave out its slowest answers, the very
        ones a latency gate is for."""
        deadline = time.monotonic() + self.timeout + 1
        while time.monotonic() < deadline:
            with self._lock:
                if not any(began < until for began in self._in_flight.values()):
                    return
            time.sleep(0.02)

    def window(self, since: float, until: float | None = None) -> Window:
        """Statistics of the samples taken between two ``time.monotonic()`` instants."""
        until = until or time.monotonic()
        with self._lock:
            chosen = [s for s in self.samples if since <= s.at < until]
        return summary(chosen, until - since)

    def generations(self, since: float, new: Collection[str], old_versions: Collection[str],
                    until: float | None = None) -> tuple[Window, Window] | None:
        """The new generation's answers and the old one's since ``since``: see
        :func:`generations`."""
        until = until or time.monotonic()
        with self._lock:
            chosen = [s for s in self.samples if since <= s.at < until]
        return generations(chosen, until - since, new, old_versions)

    def series(self, since: float, until: float | None = None) -> list[Window]:
        """One window per second from ``since`` (the last may be shorter): together they hold
        exactly the samples :meth:`window` counts over the same stretch."""
        until = until or time.monotonic()
        with self._lock:
            chosen = [s for s in self.samples if since <= s.at < until]
        buckets: list[list[Sample]] = [[] for _ in range(math.ceil(until - since))]
        for sample in chosen:
            buckets[int(sample.at - since)].append(sample)
        return [summary(bucket, min(1.0, until - since - second))
                for second, bucket in enumerate(buckets)]

    def _loop(self, deadline: float, offset: int) -> None:
        next_at = time.monotonic() + offset * self.interval / self.workers
        while not self._stop.is_set() and time.monotonic() < deadline:
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at += self.interval
            with self._lock:
                self._in_flight[offset] = time.monotonic()
            sample = self._request()
            with self._lock:
                self.samples.append(sample)
                del self._in_flight[offset]

    def _request(self) -> Sample:
        started = time.monotonic()
        connection = self._connection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", self.path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read().decode("utf-8", "replace").split()
            ok = response.status == 200
            version = body[-1] if ok and body else ""
            server = response.getheader("X-Lab-Server", "")
        except (OSError, http.client.HTTPException):
            ok, version, server = False, "", ""
        finally:
            connection.close()
        return Sample(started, ok, time.monotonic() - started, version, server)
