"""How long a balancer waits, and how often it looks, on a virtual clock: the shared wait for
health (lab/balancers/base.py) and HAProxy's waits for health, for requests in flight and
for a deleted server to go.

The module's ``time`` is a :class:`Clock` (awslab's idea, kept in exact fractions so that a
deadline is met on the very instant): ``sleep`` moves it on at once and is logged, so a test
reads the whole wait and each pause from the clock and counts the looks, with no real sleep
and no timed assertion.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import lab.balancers.base
import lab.balancers.haproxy
from lab.access.keys import KeyPair
from lab.balancers.base import Balancer, Member, Tally
from lab.balancers.haproxy import HAProxy
from lab.config import HealthCheck, LabConfig
from lab.state import ServerRecord


class Clock:
    """A module's ``time``: ``monotonic`` and ``sleep``, virtual and exact."""

    def __init__(self) -> None:
        self.now, self.naps = Fraction(1000), list[float]()

    def monotonic(self) -> float:
        return float(self.now)

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        if len(self.naps) > 1000:
            raise RuntimeError("the balancer is asked again and again: a wait without an end")
        self.now += Fraction(str(seconds))

    @property
    def waited(self) -> float:
        """Seconds slept in all."""
        return float(sum(map(Fraction, map(str, self.naps))))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(lab.balancers.base, "time", clock)
    monkeypatch.setattr(lab.balancers.haproxy, "time", clock)
    return clock


# the shared wait for health --------------------------------------------------------------


class Polled(Balancer):
    """A balancer whose members become healthy at the look ``healthy_at`` (never: None)."""

    kind = "polled"

    def __init__(self, healthy_at: int | None = None) -> None:
        self.healthy_at, self.looks = healthy_at, 0

    @classmethod
    def find(cls, config: LabConfig, servers: list[ServerRecord],
             key: KeyPair) -> Polled | None:
        return None

    @property
    def url(self) -> str:
        return "http://polled.invalid/"

    def members(self) -> dict[str, Member]:
        self.looks += 1
        healthy = self.healthy_at is not None and self.looks >= self.healthy_at
        return {"web-3": Member("web-3", "UP" if healthy else "DOWN", healthy, 0.0, False)}

    def join(self, servers: list[ServerRecord], health: HealthCheck) -> None:
        raise NotImplementedError

    def shift(self, old: list[str], new: list[str], percent: int) -> None:
        raise NotImplementedError

    def failures(self, names: list[str]) -> Tally | None:
        return None

    def retire(self, names: list[str], timeout: float = 10.0) -> list[str]:
        raise NotImplementedError


def test_the_shared_wait_for_health_looks_every_tenth_of_a_second_for_15_s(
        clock: Clock) -> None:
    balancer = Polled()

    assert balancer.wait_healthy(["web-3"]) == ["web-3"]

    assert clock.waited == 15.0
    assert clock.naps == [0.1] * 150
    assert balancer.looks == 150, "a look at the deadline: the wait outlasts its timeout"


def test_the_shared_wait_for_health_ends_at_the_look_that_finds_them_healthy(
        clock: Clock) -> None:
    balancer = Polled(healthy_at=4)

    assert balancer.wait_healthy(["web-3"], timeout=60) == []

    assert (balancer.looks, clock.naps) == (4, [0.1] * 3)


def test_the_shared_wait_for_health_keeps_to_the_timeout_it_is_given(clock: Clock) -> None:
    balancer = Polled()

    assert balancer.wait_healthy(["web-3"], timeout=2) == ["web-3"]

    assert (clock.waited, balancer.looks) == (2.0, 20)


# HAProxy's waits ---------------------------------------------------------------------------

HEADER = "# pxname,svname,scur,stot,wretr,status,weight,check_status,hrsp_5xx\n"
KEY = KeyPair(Path("k"), Path("k.pub"))


class Stuck(HAProxy):
    """An HAProxy whose web-3 never passes a check, always has a request in flight and
    stays when deleted; every look at ``show stat`` and every other command is counted."""

    def __init__(self) -> None:
        config = LabConfig.model_validate({"name": "hap", "servers": {"web": {"count": 1}},
                                           "balancer": {"routes_to": "web"}})
        super().__init__(config, ServerRecord("lb-1", "lb", "docker"), KEY)
        self.looks, self.sent = 0, list[str]()

    def command(self, *commands: str) -> str:
        if commands == ("show stat",):
            self.looks += 1
            return HEADER + "app,web-3,1,10,0,DOWN,50,L7STS,0\n"
        self.sent.extend(commands)
        return ""

    def deletes(self) -> int:
        return sum(command.startswith("del server") for command in self.sent)


def test_haproxy_waits_15_s_for_a_passed_check_looking_every_tenth(clock: Clock) -> None:
    balancer = Stuck()

    assert balancer.wait_healthy(["web-3"]) == ["web-3"]

    assert clock.waited == 15.0
    assert clock.naps == [0.1] * 150
    assert balancer.looks == 150, "a look at the deadline: the wait outlasts its timeout"


def test_haproxy_waits_10_s_for_requests_in_flight_looking_every_fifth(clock: Clock) -> None:
    balancer = Stuck()

    balancer.wait_idle(["web-3"])

    assert clock.waited == 10.0
    assert clock.naps == [0.2] * 50
    assert balancer.looks == 50, "a look at the deadline: the wait outlasts its timeout"


@pytest.mark.parametrize("verb", ["remove", "retire"])
def test_haproxy_gives_a_server_that_stays_10_s_to_drain_then_10_s_to_go(
        clock: Clock, verb: str) -> None:
    balancer = Stuck()

    assert getattr(balancer, verb)(["web-3"]) == ["web-3"]

    # 10 s for its requests in flight (50 looks), then 10 s of deletes, 0.2 s apart.
    assert clock.waited == 20.0
    assert clock.naps == [0.2] * 100
    assert balancer.deletes() == 50, "a delete at the deadline: the wait outlasts its timeout"
    assert balancer.sent[:2] == ["set server app/web-3 state drain",
                                 "set server app/web-3 state maint"]


def test_haproxy_keeps_to_the_timeout_a_release_gives_it(clock: Clock) -> None:
    balancer = Stuck()

    assert balancer.retire(["web-3"], timeout=3) == ["web-3"]

    assert (clock.waited, balancer.deletes()) == (6.0, 15)
