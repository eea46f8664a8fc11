"""Where a class's students sit: lab names valid and unique, balancer ports never colliding,
and a workspace's pinned port reaching every lab.yml it lays down."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
import yaml

from lab.classroom.config import ClassSpec
from lab.classroom.seats import (
    PORTS,
    class_prefix,
    in_class,
    lab_name,
    lab_names,
    pick_ports,
    port_is_free,
)
from lab.config import LAB_NAME, load_config
from lab.course.workspace import place_balancer
from lab.errors import TargetError


def spec(name: str = "autumn-workshop", code: str = "k7f3-q9x2",
         students: list[str] | int = 3) -> ClassSpec:
    return ClassSpec(name=name, code=code, students=students, exercises=[1])


@pytest.mark.parametrize("name", ["autumn-workshop", "Autumn Workshop 2026!", "2026 class",
                                  "---", "ÉTÉ", "a", "x" * 64])
def test_lab_names_are_valid_unique_and_share_the_class_prefix(name: str) -> None:
    students = ["alice", "bob", "a", "b-", "carol-has-a-long-name-x", "carol-has-a-long-name-y",
                "z" * 24, "student-with-dash-"]
    names = lab_names(spec(name=name, students=students))
    assert len(set(names.values())) == len(students)
    for student, lab in names.items():
        assert LAB_NAME.match(lab), lab
        assert in_class(spec(name=name), lab)
        assert lab.startswith(class_prefix(spec(name=name)) + "-")
        if len(student) <= 18 and student[-1].isalnum():
            assert lab.endswith(f"-{student}")  # a short name is kept whole, readable


def test_classes_do_not_share_labs() -> None:
    first, second = spec(code="aaaa-bbbb"), spec(code="cccc-dddd")
    assert class_prefix(first) != class_prefix(second)
    assert not in_class(second, lab_name(first, "alice"))
    assert not in_class(first, "autumn")  # another lab on the machine
    assert lab_name(first, "alice") == lab_name(spec(code="aaaa-bbbb"), "alice")  # stable


def test_two_hundred_students_get_distinct_lab_names() -> None:
    names = lab_names(spec(students=200))
    assert len(set(names.values())) == 200


def test_ports_never_collide_with_each_other_or_what_is_taken() -> None:
    rng = random.Random(7)
    the_class = spec(students=200)
    taken = set(rng.sample(list(PORTS), 3000))
    busy = set(rng.sample(list(PORTS), 3000))
    ports = pick_ports(the_class, the_class.students, taken, lambda p: p not in busy)
    assert len(set(ports.values())) == 200
    assert not set(ports.values()) & (taken | busy)
    assert all(port in PORTS for port in ports.values())
    assert max(PORTS) < 32768  # below Linux's ephemeral range, where Docker picks its ports


def test_ports_are_found_past_the_end_of_the_range() -> None:
    the_class = spec()
    everything_but = set(PORTS) - {PORTS.start}
    assert pick_ports(the_class, ["alice"], everything_but, lambda p: True) == {
        "alice": PORTS.start}
    with pytest.raises(TargetError, match="no free port"):
        pick_ports(the_class, ["alice", "bob"], everything_but, lambda p: True)


def test_a_port_in_use_is_not_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


BALANCED = """# a lab with a balancer
name: shop
servers:
  web: {count: 2, ports: [80]}
balancer: {routes_to: web}
"""


def test_the_pinned_port_moves_the_balancer_of_a_laid_down_lab(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text(BALANCED)
    place_balancer(path, 21234)
    assert load_config(path).balancer.listen == 21234
    place_balancer(path, None)
    assert load_config(path).balancer.listen == 21234


def test_a_lab_without_a_balancer_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    text = "# comment kept\nname: shop\nservers:\n  web: {ports: [80]}\n"
    path.write_text(text)
    place_balancer(path, 21234)
    assert path.read_text() == text
    assert "balancer" not in yaml.safe_load(path.read_text())
