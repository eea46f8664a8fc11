"""The release's gates on lab's real provisioning and verification, on the fake target: a lab
whose role has no playbook and no tests, so nothing needs a real server, yet the gates go
through harness.provision and harness.verify as a release does (the playbooks and testinfra
themselves run in tests/integration/test_release.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import release_fakes
from release_fakes import FakeMember, World

import lab.balancers.registry
import lab.harness
import lab.targets.registry
from lab.config import load_config
from lab.events import Event, Listener
from lab.fleet import Fleet
from lab.release import Checks, provision_gate, verify_gate
from lab.release.cycle import untested_gate
from lab.state import ServerRecord, Stage
from lab.verify import TestOutcome, VerifyResult


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setattr(release_fakes, "world", World())
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    (tmp_path / "lab.yml").write_text(
        "name: gates\ntarget: fake\nservers: {web: {count: 2, health: {path: /ok}}}\n"
        "balancer: {kind: fake, routes_to: web}\nvars: {version: v1}\n")
    monkeypatch.setitem(lab.balancers.registry.BUILT_IN, "fake", "release_fakes:FakeBalancer")
    with Fleet(load_config(tmp_path / "lab.yml")) as fleet:
        fleet.up(["web"])
        yield fleet


def test_a_release_checks_with_ansible_and_testinfra_by_default() -> None:
    assert Checks() == Checks(provision_gate, verify_gate)


def test_the_provision_gate_provisions_the_named_servers_with_the_overrides(
        fleet: Fleet) -> None:
    events: list[Event] = []

    assert provision_gate(fleet, ["web-1"], {"version": "v2"}, events.append) == ""

    stages = {s.name: s.stage for s in fleet.state.servers()}
    assert stages == {"web-1": Stage.PROVISIONED, "web-2": Stage.READY}
    (detail,) = [e.detail for e in fleet.state.events("web-1") if e.kind == "provisioned"]
    assert json.loads(detail)["vars"] == {"version": "v2"}


def test_the_verify_gate_verifies_the_named_servers(fleet: Fleet) -> None:
    # This lab has no tests: --untested's gate lets it through, the usual one does not.
    assert untested_gate(fleet, ["web-2"], None, lambda event: None) == ""
    assert verify_gate(fleet, ["web-2"], None, lambda event: None).startswith(
        "no tests ran on web-2: add tests")

    stages = {s.name: s.stage for s in fleet.state.servers()}
    assert stages == {"web-1": Stage.READY, "web-2": Stage.VERIFIED}


def test_the_provision_gate_says_no_when_the_balancer_finds_a_server_unhealthy(
        fleet: Fleet) -> None:
    pool = release_fakes.world.pool
    pool["web-1"] = FakeMember(share=100, healthy=False)
    pool["web-2"] = FakeMember(share=100)
    events: list[Event] = []

    problem = provision_gate(fleet, ["web-1", "web-2"], None, events.append)

    assert problem == ("provisioned, but the balancer's health check (GET /ok on port 80) fails "
                       "on web-1: see `lab status` and `lab verify`")
    assert [e.message for e in events] == [
        "waiting for the balancer's health checks on web-1, web-2"]


def test_the_verify_gate_says_which_test_failed_where(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """testinfra's own run is replaced here (it runs for real in the integration tests);
    what the gate makes of its result, and where its progress goes, are not."""
    def verify_lab(config: object, servers: list[ServerRecord], key: object,
                   on_event: Listener, overrides: dict[str, str],
                   everyone: object) -> VerifyResult:
        on_event(Event("verify", f"testinfra on {servers[0].name}, {overrides['version']}"))
        return VerifyResult([TestOutcome("web-2", "test_page", "failed", "no v2 in page")])

    monkeypatch.setattr(lab.harness, "verify_lab", verify_lab)
    events: list[Event] = []

    problem = verify_gate(fleet, ["web-2"], {"version": "v2"}, events.append)

    assert problem == "verify failed: web-2: test_page: no v2 in page"
    assert [e.message for e in events] == ["testinfra on web-2, v2"]
