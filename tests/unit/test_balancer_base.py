"""What every balancer shares (lab/balancers/base.py), on the fake balancer of
``release_fakes``, and how HAProxy's runtime API is spoken to, with a local process standing
in for the SSH session (a real one runs in tests/integration/test_release.py)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
import release_fakes
from release_fakes import FakeBalancer, FakeMember, World

import lab.balancers.haproxy
import lab.balancers.registry
from lab.access.keys import KeyPair
from lab.balancers.base import Balancer, Tally, get_balancer
from lab.balancers.haproxy import HAProxy
from lab.config import LabConfig
from lab.errors import TargetError
from lab.loaded import Lab
from lab.state import ServerRecord

KEY = KeyPair(Path("k"), Path("k.pub"))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World()
    monkeypatch.setattr(release_fakes, "world", world)
    monkeypatch.setitem(lab.balancers.registry.BUILT_IN, "fake", "release_fakes:FakeBalancer")
    world.pool = {"web-1": FakeMember(share=90), "web-3": FakeMember(share=10, healthy=False)}
    return world


def lab_yml(balancer: bool = True) -> LabConfig:
    return LabConfig.model_validate({
        "name": "bb", "target": "docker", "servers": {"web": {"count": 2}},
        **({"balancer": {"kind": "fake", "routes_to": "web"}} if balancer else {})})


def test_rotation_is_what_lab_status_shows_of_each_member(world: World) -> None:
    world.pool["web-2"] = FakeMember(share=100)

    assert Lab.resolve(lab_yml()).rotation([], KEY) == {
        "web-1": {"weight": 90, "health": "UP", "share": 0.474},
        "web-2": {"weight": 100, "health": "UP", "share": 0.526},
        "web-3": {"weight": 10, "health": "DOWN", "share": 0.0},
    }
    assert world.found_key is KEY  # what a balancer on a server needs to reach it
    assert world.found_for == "bb"


def test_a_balancer_installed_by_another_package_is_known(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `lab.balancers` entry point group: a package's own balancer, not lab's."""
    dist = tmp_path / "labplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lab.balancers]\nplugged = release_fakes:FakeBalancer\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert get_balancer("plugged") is FakeBalancer
    assert "plugged" in lab.balancers.registry.kinds()


def test_rotation_is_empty_when_there_is_no_balancer_to_ask(world: World) -> None:
    assert Lab.resolve(lab_yml(balancer=False)).rotation([], KEY) == {}
    assert Lab.resolve(lab_yml(balancer=False)).balancer_roles == set()
    world.balancer_running = False
    assert Lab.resolve(lab_yml()).rotation([], KEY) == {}
    world.balancer_running, world.balancer_down = True, True
    assert Lab.resolve(lab_yml()).rotation([], KEY) == {}


def test_the_shared_wait_for_health(world: World) -> None:
    balancer = FakeBalancer()
    wait = Balancer.wait_healthy  # what a balancer that does not override it gets

    assert wait(balancer, ["web-1"]) == []
    assert wait(balancer, ["web-1", "web-3", "web-9"], timeout=0.3) == ["web-3", "web-9"]
    asked = world.counts["balancer.members"]
    give_up = threading.Event()
    give_up.set()
    assert wait(balancer, ["web-3"], timeout=60, give_up=give_up) == ["web-3"]
    assert world.counts["balancer.members"] == asked, "asked after the release gave up"


def test_a_tally_since_a_reading_is_never_negative() -> None:
    assert Tally(110, 10).since(Tally(100, 4)) == Tally(10, 6)
    assert Tally(5, 1).since(Tally(100, 4)) == Tally(0, 0)  # the member left and came back
    assert Tally(10, 1).error_rate == 0.1 and Tally().error_rate == 0.0
    assert Tally(10, 1).to_dict() == {"requests": 10, "failed": 1}


# HAProxy's runtime API, one round trip ---------------------------------------------------


def haproxy(monkeypatch: pytest.MonkeyPatch, script: str, user: str = "root") -> HAProxy:
    """HAProxy whose SSH session is ``sh -c script`` here; the script sees the API line on
    stdin and the remote command as its arguments."""
    def ssh_argv(server: ServerRecord, key: KeyPair, command: list[str],
                 reuse: bool = False) -> list[str]:
        assert reuse, "every API call must share the one connection"
        return ["sh", "-c", script, "ssh", *command]

    monkeypatch.setattr(lab.balancers.haproxy, "ssh_argv", ssh_argv)
    config = LabConfig.model_validate({"name": "rt", "servers": {"web": {}},
                                       "balancer": {"routes_to": "web"}})
    return HAProxy(config, ServerRecord("lb-1", "lb", "docker", ssh_user=user), KEY)


def test_commands_go_in_one_line_to_the_admin_socket_as_root(
        monkeypatch: pytest.MonkeyPatch) -> None:
    echo = 'printf "%s|" "$@"; cat'
    assert haproxy(monkeypatch, echo).command("show stat", "show info") == (
        "socat|stdio|/run/haproxy/admin.sock|show stat; show info\n")
    assert haproxy(monkeypatch, echo, user="vagrant").command("show info") == (
        "sudo|-n|socat|stdio|/run/haproxy/admin.sock|show info\n")


def test_an_api_that_cannot_be_reached_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TargetError) as caught:
        haproxy(monkeypatch, "echo 'Connection refused' >&2; exit 255").command("show stat")
    assert str(caught.value) == "balancer lb-1: runtime API unreachable: Connection refused"

    with pytest.raises(TargetError) as caught:
        haproxy(monkeypatch, "exit 7").command("show stat")
    assert str(caught.value) == "balancer lb-1: runtime API unreachable: 7"


def test_an_unknown_balancer_lists_every_known_one() -> None:
    from lab.balancers.base import get_balancer
    from lab.balancers.registry import known
    from lab.errors import UsageError

    assert len(known()) >= 2
    with pytest.raises(UsageError) as caught:
        get_balancer("nginx")
    assert str(caught.value) == ("balancer 'nginx' is not available (known: "
                                 f"{', '.join(sorted(known()))})")


def test_ensure_balancer_hands_the_balancer_everything_it_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[object, ...]] = []

    class Recording:
        @classmethod
        def ensure(cls, *args: object) -> None:
            asked.append(args)

    config = lab_yml(balancer=False)
    lab = replace(Lab.resolve(config), balancer_class=Recording)  # type: ignore[arg-type]
    servers, key, listener = [object()], object(), print
    lab.ensure_balancer(servers, key, listener)  # type: ignore[arg-type]
    assert asked == [(config, servers, key, listener)]
