"""Where each student of a class sits on the machine: a lab name and a balancer port of their
own, so that many workspaces run side by side without touching each other or other labs.

A class's lab names share one prefix (the class's name, cut short, and a hash of its join
code), which is how ``lab class destroy`` finds every server of the class by label, also a
workspace's whose folder was deleted. Ports are picked below Linux's ephemeral range
(32768-60999), where Docker picks the ports it publishes on its own: a port given to a
student cannot be taken later by some server's randomly published port.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Callable, Iterable

from lab.classroom.config import ClassSpec
from lab.config import LAB_NAME
from lab.errors import ConfigError, TargetError

NAME_LENGTH = 32  # lab.config.LAB_NAME's limit
PORTS = range(20000, 32000)  # balancer ports for students: below the ephemeral range


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def class_prefix(spec: ClassSpec) -> str:
    """What every lab name of the class starts with: ``autumn-3f9a1`` (at most 13 chars)."""
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower())
    slug = re.sub(r"^[^a-z]+", "", slug)[:7].rstrip("-") or "class"
    return f"{slug}-{_digest(spec.code, 5)}"


def lab_name(spec: ClassSpec, student: str) -> str:
    """The student's lab name: the class's prefix and the student's name, cut (with a hash
    of the whole name, to stay unique) when it would not fit or not end in a letter/digit."""
    prefix = class_prefix(spec)
    room = NAME_LENGTH - len(prefix) - 1
    part = student
    if len(part) > room or not part[-1].isalnum():
        part = f"{student[:room - 6].rstrip('-')}-{_digest(student, 5)}"
    name = f"{prefix}-{part}"
    assert LAB_NAME.match(name), name  # the prefix and the cut keep it valid
    return name


def lab_names(spec: ClassSpec) -> dict[str, str]:
    """Every student's lab name; two students may not end up with the same one."""
    names = {student: lab_name(spec, student) for student in spec.students}
    if len(set(names.values())) != len(names):
        raise ConfigError("class.yml: students: two names give the same lab name; "
                          "make them differ within their first 12 characters")
    return names


def in_class(spec: ClassSpec, lab: str) -> bool:
    """Whether a lab (by its name, as its servers' labels carry it) is one of the class's."""
    return lab.startswith(class_prefix(spec) + "-")


def pick_ports(spec: ClassSpec, students: Iterable[str], taken: Iterable[int],
               free: Callable[[int], bool]) -> dict[str, int]:
    """A balancer port for each of ``students``: none in ``taken`` (other students', ports
    published on the engine), each ``free`` now, no two the same. Each class starts its
    search at its own place in :data:`PORTS`, so two classes rarely look at the same ports."""
    used = set(taken)
    start = int(_digest(spec.code, 8), 16) % len(PORTS)
    candidates = (PORTS[(start + i) % len(PORTS)] for i in range(len(PORTS)))
    chosen: dict[str, int] = {}
    for student in students:
        for port in candidates:
            if port not in used and free(port):
                chosen[student] = port
                used.add(port)
                break
        else:
            raise TargetError(f"no free port left in {PORTS.start}-{PORTS.stop - 1} on "
                              "127.0.0.1 for a student's balancer")
    return chosen


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (nor on every address) now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
