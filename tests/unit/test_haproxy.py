"""The HAProxy balancer behind the interface: `show stat` read as members and tallies, shares
sent as weights, and what it adds to a lab (the lb role, its variables and listen port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.access.keys import KeyPair
from lab.balancers.base import (
    Member,
    Tally,
    get_balancer,
)
from lab.balancers.haproxy import HAProxy
from lab.config import LabConfig
from lab.errors import ConfigError, TargetError, UsageError
from lab.loaded import Lab
from lab.state import Liveness, ServerRecord, Stage

HEADER = "# pxname,svname,scur,stot,wretr,status,weight,check_status,hrsp_5xx\n"
ROWS = {
    "web-1": "app,web-1,0,100,1,UP,50,L7OK,2",
    "web-2": "app,web-2,1,90,0,UP,50,L7OK,0",
    "web-3": "app,web-3,0,10,3,DOWN,50,L7STS,4",
    "web-4": "app,web-4,0,0,0,MAINT,0,,0",
}
OTHER = ["www,FRONTEND,0,0,0,OPEN,0,,0", "app,BACKEND,1,200,4,UP,100,,6"]


def config(**balancer: object) -> LabConfig:
    return LabConfig.model_validate({
        "name": "hap", "servers": {"web": {"count": 2, "health": {"path": "/h", "port": 81}}},
        "balancer": {"routes_to": "web", "listen": 9090, **balancer}})


class Scripted(HAProxy):
    """HAProxy whose runtime API answers from a table; every command sent is kept."""

    def __init__(self, rows: dict[str, str]) -> None:
        super().__init__(config(), ServerRecord("lb-1", "lb", "docker"), KeyPair(Path("k"),
                                                                                   Path("k.pub")))
        self.rows = rows
        self.sent: list[str] = []

    def command(self, *commands: str) -> str:
        if commands == ("show stat",):
            return HEADER + "\n".join([*OTHER, *self.rows.values()]) + "\n"
        self.sent.extend(commands)
        return ""


def test_members_are_read_from_show_stat() -> None:
    members = Scripted(ROWS).members()

    assert list(members) == ["web-1", "web-2", "web-3", "web-4"]
    assert members["web-1"] == Member("web-1", "UP", True, 0.5, True, 50)
    assert members["web-3"] == Member("web-3", "DOWN", False, 0.0, True, 50)
    assert members["web-4"] == Member("web-4", "MAINT", False, 0.0, False, 0)


def test_failures_count_retries_and_5xx() -> None:
    assert Scripted(ROWS).failures(["web-1", "web-3", "gone"]) == Tally(110, 10)
    assert Tally(110, 10).since(Tally(100, 4)) == Tally(10, 6)


def test_shift_sets_weights_and_puts_the_old_generation_in_service() -> None:
    balancer = Scripted(ROWS)

    balancer.shift(["web-1", "web-2"], ["web-3", "web-4"], 10)

    assert balancer.sent == [
        "set server app/web-1 weight 90", "set server app/web-2 weight 90",
        "set server app/web-3 weight 10", "set server app/web-4 weight 10",
        "set server app/web-1 state ready", "set server app/web-2 state ready"]


def test_shift_back_to_zero_ignores_new_members_that_never_joined() -> None:
    balancer = Scripted({n: ROWS[n] for n in ("web-1", "web-2")})

    balancer.shift(["web-1", "web-2"], ["web-3", "web-4"], 0)

    assert balancer.sent == [
        "set server app/web-1 weight 100", "set server app/web-2 weight 100",
        "set server app/web-1 state ready", "set server app/web-2 state ready"]


def test_shift_restores_what_it_can_then_names_what_is_missing() -> None:
    balancer = Scripted({"web-1": ROWS["web-1"]})

    with pytest.raises(TargetError, match="web-2 not in the pool"):
        balancer.shift(["web-1", "web-2"], [], 0)

    assert balancer.sent == ["set server app/web-1 weight 100",
                             "set server app/web-1 state ready"]


def test_what_haproxy_adds_to_a_lab() -> None:
    config_ = config()
    lab = Lab.resolve(config_)

    assert HAProxy(config_, ServerRecord("lb-1", "lb", "docker"), KeyPair(Path(), Path())).url == (
        "http://127.0.0.1:9090/")
    assert list(lab.roles) == ["web", "lb"] and lab.balancer_roles == {"lb"}
    assert lab.balancer_class is HAProxy and lab.target_class.name == "docker"
    lb = lab.roles["lb"]
    assert lb.playbook is not None and lb.playbook.name == "haproxy.yml"
    assert lb.playbook.is_file() and [t.name for t in lb.tests] == ["test_haproxy.py"]
    assert lb.tests[0].is_file() and lb.count == 1 and lb.ports == []
    assert lab.fixed_ports("lb") == {80: 9090} and lab.fixed_ports("web") == {}
    assert lab.group_vars == {"lb": {"lab_backend_role": "web", "lab_health_path": "/h",
                                     "lab_health_port": 81}}


def test_a_lab_without_balancer_has_only_its_own_roles() -> None:
    lab = Lab.resolve(LabConfig.model_validate({"name": "plain", "servers": {"web": {}}}))

    assert list(lab.roles) == ["web"] and lab.group_vars == {} and lab.balancer_roles == set()
    assert lab.open_balancer([], KeyPair(Path(), Path())) is None
    assert lab.fixed_ports("web") == {}


def test_the_balancer_is_found_among_running_servers() -> None:
    lab, key = Lab.resolve(config()), KeyPair(Path(), Path())
    dead = ServerRecord("lb-1", "lb", "docker", liveness=Liveness.DEAD)
    running = ServerRecord("lb-2", "lb", "docker", liveness=Liveness.RUNNING,
                           stage=Stage.READY)

    assert lab.open_balancer([dead], key) is None
    found = lab.open_balancer([dead, running], key)
    assert isinstance(found, HAProxy) and found.server.name == "lb-2"


def test_a_role_may_not_take_the_balancers_name() -> None:
    lab = LabConfig.model_validate({"name": "x", "servers": {"web": {}, "lb": {}},
                                    "balancer": {"routes_to": "web"}})

    with pytest.raises(ConfigError, match=r"servers\.lb: the name is reserved for the balancer"):
        Lab.resolve(lab)


def test_unknown_kind_is_named() -> None:
    assert get_balancer("haproxy") is HAProxy
    with pytest.raises(UsageError, match="balancer 'nginx' is not available"):
        get_balancer("nginx")


def test_the_url_is_where_the_balancers_target_published_its_port() -> None:
    """Nothing above the target assumes 127.0.0.1: the URL is the record's ports_host."""
    lab, key = config(), KeyPair(Path(), Path())
    local = ServerRecord("lb-1", "lb", "docker", liveness=Liveness.RUNNING, ports={80: 9090})
    remote = ServerRecord("lb-1", "lb", "cloud", liveness=Liveness.RUNNING, ports={80: 8443},
                          ports_host="203.0.113.7")
    assert HAProxy(lab, local, key).url == "http://127.0.0.1:9090/"
    assert HAProxy(lab, remote, key).url == "http://203.0.113.7:8443/"
