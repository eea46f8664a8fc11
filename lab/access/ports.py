"""Ports on 127.0.0.1, where lab publishes what it runs: servers' ports, balancers' listens."""

from __future__ import annotations

import socket


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 now: for a balancer that must not collide with another."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
