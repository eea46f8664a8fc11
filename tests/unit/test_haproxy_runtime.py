"""HAProxy's verbs against a stand-in for its runtime API that keeps state as HAProxy does
(servers added, weighted, drained, put in maintenance, deleted), so a test sees what lab asked
for, in which order, and what it made of the answers. Over SSH to a real HAProxy, the same
verbs run in tests/integration/test_release.py."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.access.keys import KeyPair
from lab.balancers.haproxy import (
    CHECK_TIMING,
    SOCKET,
    BackendServer,
    HAProxy,
    share_of_traffic,
)
from lab.config import HealthCheck, LabConfig
from lab.errors import HostKeyRefused, TargetError
from lab.state import Liveness, ServerRecord

HEADER = "# pxname,svname,scur,stot,wretr,status,weight,check_status,hrsp_5xx\n"


@dataclass
class Row:
    status: str = "UP"
    weight: int = 100
    check: str = "L7OK"
    in_flight: list[int] | None = None  # requests in flight at each `show stat`, then 0
    deletable: bool = True


class Runtime(HAProxy):
    """HAProxy whose runtime API is a table in memory; ``sent`` is every command but reads."""

    def __init__(self, rows: dict[str, Row]) -> None:
        config = LabConfig.model_validate({"name": "rt", "servers": {"web": {"count": 2}},
                                           "balancer": {"routes_to": "web"}})
        super().__init__(config, ServerRecord("lb-1", "lb", "docker"),
                         KeyPair(Path("k"), Path("k.pub")))
        self.rows = rows
        self.sent: list[str] = []
        self.answer_add = "New server registered."

    def command(self, *commands: str) -> str:
        if commands == ("show stat",):
            self.sent.append("show stat")
            return HEADER + "".join(self._line(n, r) for n, r in self.rows.items())
        answers = [self._do(c) for c in commands]
        return "".join(answers)

    def _line(self, name: str, row: Row) -> str:
        scur = row.in_flight.pop(0) if row.in_flight else 0
        return f"app,{name},{scur},0,0,{row.status},{row.weight},{row.check},0\n"

    def _do(self, command: str) -> str:
        self.sent.append(command)
        words = command.split()
        if words[:2] == ["add", "server"]:
            name = words[2].split("/")[1]
            self.rows[name] = Row(status="MAINT", weight=int(words[words.index("weight") + 1]),
                                  check="")
            return self.answer_add
        if words[:2] == ["enable", "server"]:
            self.rows[words[2].split("/")[1]].status = "UP"
        if words[:2] == ["set", "server"]:
            row = self.rows[words[2].split("/")[1]]
            if words[3] == "weight":
                row.weight = int(words[4])
            else:
                row.status = {"ready": "UP", "drain": "DRAIN", "maint": "MAINT"}[words[4]]
        if words[:2] == ["del", "server"]:
            name = words[2].split("/")[1]
            if self.rows[name].status != "MAINT":
                return "Only servers in maintenance mode can be deleted.\n"
            if self.rows[name].deletable:
                del self.rows[name]
        return ""


def web(name: str) -> ServerRecord:
    return ServerRecord(name, "web", "docker", address=f"172.30.0.{name[-1]}")


def test_join_adds_each_server_at_zero_weight_with_health_checks_on() -> None:
    api = Runtime({})

    api.join([web("web-3"), web("web-4")], HealthCheck(path="/h", port=81))

    assert [c for c in api.sent if c.startswith("add")] == [
        f"add server app/web-3 172.30.0.3:81 weight 0 check {CHECK_TIMING}",
        f"add server app/web-4 172.30.0.4:81 weight 0 check {CHECK_TIMING}"]
    assert api.sent[2:4] == ["enable health app/web-3", "enable server app/web-3"]
    members = api.members()
    assert {n: (m.weight, m.share, m.serving) for n, m in members.items()} == {
        "web-3": (0, 0.0, False), "web-4": (0, 0.0, False)}


def test_join_refused_is_named() -> None:
    api = Runtime({})
    api.answer_add = "No such backend."

    with pytest.raises(TargetError) as caught:
        api.join([web("web-3")], HealthCheck())

    assert str(caught.value) == "balancer: could not add web-3: No such backend."


def test_retire_drains_waits_for_requests_in_flight_then_deletes() -> None:
    """The promise of promote: a request in flight on an old server finishes first."""
    api = Runtime({"web-1": Row(in_flight=[0, 1, 1]), "web-2": Row(), "web-3": Row()})

    assert api.retire(["web-1", "web-2", "web-9"]) == []

    writes = [c for c in api.sent if c != "show stat"]
    assert writes == ["set server app/web-1 state drain", "set server app/web-2 state drain",
                      "set server app/web-1 state maint", "set server app/web-2 state maint",
                      "experimental-mode on", "del server app/web-1", "del server app/web-2"]
    # between the drain and the maintenance, HAProxy was asked until web-1 was idle: one
    # request in flight, still one, none
    drained, maint = api.sent.index(writes[1]), api.sent.index(writes[2])
    assert api.sent[drained + 1:maint] == ["show stat"] * 3
    assert list(api.rows) == ["web-3"]


def test_retire_of_servers_not_in_the_pool_sends_nothing() -> None:
    api = Runtime({"web-3": Row()})

    assert api.retire(["web-1", "web-2"]) == []
    assert api.sent == ["show stat"]


def test_retire_names_servers_that_would_not_go() -> None:
    api = Runtime({"web-1": Row(deletable=False), "web-2": Row()})

    assert api.retire(["web-1", "web-2"], timeout=0.3) == ["web-1"]
    assert list(api.rows) == ["web-1"]


def test_weights_the_api_refuses_are_an_error() -> None:
    class Refusing(Runtime):
        def _do(self, command: str) -> str:
            refused = command.startswith("set server app/web-3 weight")
            return "No such server.\n" if refused else super()._do(command)

    with pytest.raises(TargetError) as caught:
        Refusing({"web-1": Row(), "web-3": Row()}).shift(["web-1"], ["web-3"], 50)

    assert str(caught.value) == "balancer: setting weights answered: No such server."


def test_shift_names_every_server_missing_from_the_pool() -> None:
    api = Runtime({"web-1": Row()})

    with pytest.raises(TargetError) as caught:
        api.shift(["web-1", "web-2"], ["web-3", "web-4"], 50)

    assert str(caught.value) == ("balancer: web-2, web-3, web-4 not in the pool, cannot move "
                                 "50% of traffic")
    assert api.rows["web-1"].weight == 50


def test_healthy_means_a_completed_check_passed() -> None:
    api = Runtime({"web-3": Row(check="L7OK"), "web-4": Row(check="INI")})

    assert api.wait_healthy(["web-3"]) == []
    assert api.wait_healthy(["web-3", "web-4", "web-5"], timeout=0.3) == ["web-4", "web-5"]


def test_waiting_for_health_ends_when_given_up() -> None:
    api = Runtime({"web-4": Row(check="INI")})
    give_up = threading.Event()
    give_up.set()

    assert api.wait_healthy(["web-4"], timeout=60, give_up=give_up) == ["web-4"]
    assert api.sent == []  # not asked once: the release is over


def test_members_shares_and_what_provision_waits_on() -> None:
    api = Runtime({"web-1": Row(weight=90), "web-2": Row(weight=90, status="DRAIN"),
                   "web-3": Row(weight=10), "web-4": Row(weight=10, status="DOWN"),
                   "web-5": Row(weight=0, status="MAINT"), "web-6": Row(weight=5, status="MAINT"),
                   "web-7": Row(weight=20, status="no check")})

    members = api.members()

    assert {n: round(m.share, 3) for n, m in members.items()} == {
        "web-1": 0.75, "web-2": 0.0, "web-3": 0.083, "web-4": 0.0, "web-5": 0.0, "web-6": 0.0,
        "web-7": 0.167}
    assert {n for n, m in members.items() if m.serving} == {
        "web-1", "web-2", "web-3", "web-4", "web-7"}
    assert {n for n, m in members.items() if m.healthy} == {"web-1", "web-3", "web-7"}
    assert share_of_traffic({}) == {}


def test_add_puts_a_server_in_the_pool_without_traffic_unless_told() -> None:
    api = Runtime({})

    api.add(web("web-3"), HealthCheck())

    assert api.sent[:2] == ["experimental-mode on",  # `add server` is experimental in HAProxy
                            f"add server app/web-3 172.30.0.3:80 weight 0 check {CHECK_TIMING}"]
    assert api.rows["web-3"].weight == 0


def test_a_server_already_in_the_pool_is_joined_again_without_error() -> None:
    api = Runtime({})
    api.answer_add = "Already exists a server with the same name in backend."

    api.join([web("web-3")], HealthCheck())

    assert api.sent[-2:] == ["enable health app/web-3", "enable server app/web-3"]


def test_retire_with_no_time_left_drains_and_stops_without_waiting() -> None:
    """The caller's timeout holds through retire, wait_idle and the deletes: none polls."""
    api = Runtime({"web-1": Row(in_flight=[1] * 50)})

    assert api.retire(["web-1"], timeout=0) == ["web-1"]

    assert api.sent == ["show stat", "set server app/web-1 state drain",
                        "set server app/web-1 state maint"]


def test_one_percent_needs_every_new_server_in_the_pool() -> None:
    api = Runtime({"web-1": Row()})

    with pytest.raises(TargetError, match="web-3 not in the pool, cannot move 1%"):
        api.shift(["web-1"], ["web-3"], 1)


def test_a_server_at_weight_one_is_serving() -> None:
    assert Runtime({"web-1": Row(weight=1)}).members()["web-1"].serving


class Shown(HAProxy):
    """HAProxy whose `show stat` answers with given text."""

    def __init__(self, text: str) -> None:
        super().__init__(LabConfig.model_validate({"name": "rt", "servers": {"web": {}}}),
                         ServerRecord("lb-1", "lb", "docker"), KeyPair(Path("k"), Path("k.pub")))
        self.text = text

    def command(self, *commands: str) -> str:
        return self.text


def test_columns_show_stat_leaves_out_read_as_nothing() -> None:
    shown = Shown("# pxname,svname\napp,web-1\napp,FRONTEND\napp,BACKEND\nwww,web-2\n")

    assert shown.servers() == {"web-1": BackendServer("web-1", "", 0, 0, 0, "", 0)}


class Ran:
    """What `subprocess.run` was asked, and what it answers."""

    def __init__(self, stderr: str = "", returncode: int = 0, timeout: bool = False) -> None:
        self.stderr, self.returncode, self.timeout = stderr, returncode, timeout
        self.argv: list[str] = []
        self.options: dict[str, object] = {}

    def __call__(self, argv: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        self.argv, self.options = argv, options
        if self.timeout:
            raise subprocess.TimeoutExpired(argv, 30)
        return subprocess.CompletedProcess(argv, self.returncode, "answer\n", self.stderr)


def over_ssh(monkeypatch: pytest.MonkeyPatch, ran: Ran, tmp_path: Path) -> HAProxy:
    """HAProxy whose runtime API is reached through a stand-in for ssh (the real ssh to a
    real HAProxy runs in tests/integration/test_release.py)."""
    monkeypatch.setattr("lab.balancers.haproxy.subprocess.run", ran)
    keys = tmp_path / "keys"
    keys.mkdir()
    server = ServerRecord("lb-1", "lb", "docker", ssh_host="127.0.0.1", ssh_port=2201,
                          ssh_user="root", liveness=Liveness.RUNNING)
    config = LabConfig.model_validate({"name": "rt", "servers": {"web": {}},
                                       "balancer": {"routes_to": "web"}})
    return HAProxy.find(config, [server], KeyPair(keys / "id", keys / "id.pub"))  # type: ignore[return-value]


def test_commands_go_to_the_balancers_socket_over_ssh_with_the_labs_key(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ran = Ran()
    api = over_ssh(monkeypatch, ran, tmp_path)

    assert api.command("show info", "show stat") == "answer\n"

    assert ran.argv[-1].endswith(f"socat stdio {SOCKET}")
    assert "root@127.0.0.1" in ran.argv and ran.argv[ran.argv.index("-p") + 1] == "2201"
    assert ran.argv[ran.argv.index("-i") + 1] == str(tmp_path / "keys" / "id")
    assert ran.options["input"] == "show info; show stat\n"
    assert ran.options["timeout"] == 30 and ran.options.get("check") is False
    assert api.url == "http://127.0.0.1:8080/"  # lab.yml's listen: the config it was found for


def test_a_runtime_api_that_does_not_answer_is_named(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    api = over_ssh(monkeypatch, Ran(timeout=True), tmp_path)

    with pytest.raises(TargetError) as caught:
        api.command("show stat")

    assert str(caught.value) == "balancer lb-1: runtime API did not answer within 30 s"


def test_a_refused_host_key_names_the_balancer(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    api = over_ssh(monkeypatch, Ran(stderr="Host key verification failed.\n", returncode=255),
                   tmp_path)

    with pytest.raises(HostKeyRefused) as caught:
        api.command("show stat")

    assert str(caught.value).startswith(
        "lb-1: lab refused to connect: lab has no host key for 127.0.0.1:2201 in "
        f"{tmp_path / 'known_hosts'}")
