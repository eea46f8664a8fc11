"""SSH to a lab server with the lab's key: the one way lab, Ansible and users reach servers.

Host keys are pinned: every command line here checks the server's against
``.lab/known_hosts`` (see :mod:`lab.access.knownhosts`), and a refusal becomes a lab error that
names the server instead of ssh's banner.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable

from lab.access.keys import KeyPair
from lab.access.knownhosts import raise_if_refused, trust_options
from lab.errors import TargetError
from lab.state import ServerRecord

SSH_OPTIONS = [
    "-o", "IdentitiesOnly=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
]  # fmt: skip


def common_args(key: KeyPair) -> str:
    """Every option lab's connections use, as one shell-quoted line (Ansible's
    ``ansible_ssh_common_args``)."""
    return " ".join(shlex.quote(arg) for arg in [*SSH_OPTIONS, *trust_options(key)])


# One connection per server, shared by every ssh lab, testinfra and users start (through
# .lab/ssh_config): the handshake is paid once, when lab first sees the server ready, and a
# test or a weight change after it costs milliseconds. Servers come and go, so a master whose
# server vanished is noticed within seconds (ServerAlive*) and a new one is made.
SHARED_CONNECTION = {
    "ControlMaster": "auto",
    "ControlPath": "/tmp/lab-ssh-%C",
    "ControlPersist": "120",
    "ServerAliveInterval": "2",
    "ServerAliveCountMax": "3",
}
MULTIPLEX = [arg for key, value in SHARED_CONNECTION.items() for arg in ("-o", f"{key}={value}")]


def ssh_argv(server: ServerRecord, key: KeyPair, command: list[str] | None = None,
             batch: bool = True, reuse: bool = False) -> list[str]:
    """The ``ssh`` command line that reaches ``server``; runs ``command`` when given.

    ``reuse`` shares the server's one multiplexed connection (see :data:`MULTIPLEX`).
    """
    identity = key.for_server(server.ssh_key)
    argv = ["ssh", *SSH_OPTIONS, *trust_options(key), *(MULTIPLEX if reuse else []),
            "-i", str(identity),
            "-p", str(server.ssh_port)]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    if command is None:
        argv.append("-t")
    argv.append(f"{server.ssh_user}@{server.ssh_host}")
    return argv + remote_command(command or [])


def session_argv(server: ServerRecord, key: KeyPair,
                 command: list[str] | None = None) -> list[str]:
    """The ``ssh`` command line of ``lab ssh``, once the server has shown the host key lab
    knows: a refusal raises :class:`HostKeyRefused` naming the server, rather than leaving
    the user with ssh's banner.

    The check opens (or reuses) the server's shared connection, which the session then
    uses, so it costs no second handshake. Any other failure is left for ssh to report.
    """
    try:
        probe = subprocess.run(ssh_argv(server, key, ["true"], reuse=True), capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        probe = None
    if probe is not None:
        raise_if_refused(server, key, probe.stderr)
    return ssh_argv(server, key, command, batch=bool(command), reuse=True)


def remote_command(command: list[str]) -> list[str]:
    """ssh joins its arguments with spaces for the remote shell, losing their boundaries.

    One argument is a shell command line, as typed (``"systemctl status nginx"``); several
    are an argv, quoted so that each stays one word (``sh -c "echo hi > f"``).
    """
    if len(command) <= 1:
        return command
    return [" ".join(shlex.quote(part) for part in command)]


def as_root(server: ServerRecord, command: list[str]) -> list[str]:
    """``command`` as root: through sudo when lab logs in as another user (Vagrant's
    ``vagrant``), for what only root may do (HAProxy's API socket, scrubbing before a bake)."""
    return command if server.ssh_user == "root" else ["sudo", "-n", *command]


def _sshd_greets(host: str, port: int) -> bool:
    """True once sshd sends its banner: cheaper than launching ssh into a port forwarder
    that accepts connections before anything listens behind it."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_until_ready(server: ServerRecord, key: KeyPair, timeout: float = 90.0,
                     gave_up: Callable[[], str | None] | None = None) -> str:
    """Block until sshd accepts the lab key and systemd has finished booting.

    The server must show the host key in ``.lab/known_hosts``; another one raises
    :class:`HostKeyRefused` at once.

    Returns systemd's state (``running``, or ``degraded`` when some unit failed). Raises
    :class:`TargetError` naming the server when it does not get there within ``timeout``, or
    as soon as ``gave_up`` (asked about once a second) says why it never will: a container
    that stopped is reported at once, not after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    command = ["systemctl", "is-system-running", "--wait"]
    last = "no answer"
    next_look = time.monotonic()
    while time.monotonic() < deadline:
        if gave_up is not None and time.monotonic() >= next_look:
            next_look = time.monotonic() + 1.0
            reason = gave_up()
            if reason:
                raise TargetError(f"{server.name}: did not boot: {reason}")
        if not _sshd_greets(server.ssh_host, server.ssh_port):
            last = "sshd not answering yet"
            time.sleep(0.1)
            continue
        result = subprocess.run(
            # The connection that answers stays open for the tests and commands that follow.
            ssh_argv(server, key, command, reuse=True), capture_output=True, text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL, check=False,
        )
        raise_if_refused(server, key, result.stderr)  # waiting longer will not change its key
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return state
        last = state or result.stderr.strip() or f"ssh exit {result.returncode}"
        time.sleep(0.2)
    raise TargetError(
        f"{server.name}: not ready after {timeout:.0f} s ({last}); "
        f"see `lab ssh {server.name}` or the target's logs"
    )


def close_shared_connections(servers: list[ServerRecord], wait: float = 2.0) -> None:
    """Close the shared connection of each server about to go away, and wait until its socket
    (``/tmp/lab-ssh-*``) is gone: left alone, a master outlives its server until its keepalives
    or ``ControlPersist`` give up. A server without one costs a few milliseconds."""
    for server in servers:
        if not server.ssh_port:
            continue
        where = ["-p", str(server.ssh_port), f"{server.ssh_user}@{server.ssh_host}"]
        shown = subprocess.run(["ssh", "-G", *MULTIPLEX, *where], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=10, check=False).stdout
        socket_path = next((line.split(" ", 1)[1] for line in shown.splitlines()
                            if line.startswith("controlpath ")), "")
        subprocess.run(["ssh", *MULTIPLEX, "-O", "exit", *where], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=10, check=False)
        deadline = time.monotonic() + wait
        while socket_path and os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.02)


def run_as_root(server: ServerRecord, key: KeyPair, command: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one shell command line as root on ``server`` (through the shared connection);
    the exercises' hand-made changes and planted faults are made this way."""
    argv = ssh_argv(server, key, as_root(server, ["sh", "-c", command]), reuse=True)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise TargetError(f"{server.name}: `{command}` did not finish within {timeout:.0f} s") \
            from None
