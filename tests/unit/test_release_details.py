"""`lab release` in detail, on the fakes of ``release_fakes``: what it refuses to start, what it
hands its checks and its balancer, what it shows while a step runs, how it paces a step, where
its limits lie, and how it rolls back when the balancer itself misbehaves.

test_release_cycle.py walks the phases; these pin down what a user reads and relies on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from release_fakes import (
    NEW,
    OLD,
    OTHERS,
    ROLLBACK,
    START,
    Cycle,
    FakeMember,
    FakeProbe,
    MakeCycle,
    expect,
)

import lab.release.cycle
from lab.cli.output import tick_line
from lab.cli.release import print_release
from lab.config import HealthCheck
from lab.errors import TargetError, UsageError
from lab.release import ReleaseFailed, ReleaseReport


def failure(message: str) -> Any:
    """A scripted action: the balancer or target refuses with ``message``."""
    def act() -> None:
        raise TargetError(message)
    return act


# what a release refuses to start --------------------------------------------------------------


def test_a_lab_without_a_balancer_cannot_release(make_cycle: MakeCycle) -> None:
    cycle = make_cycle("name: cycle\ntarget: fake\nservers: {web: {count: 2}}\n")

    with pytest.raises(UsageError) as caught:
        cycle.release()

    assert str(caught.value) == ("lab.yml has no `balancer:`; a release needs one to move "
                                 "traffic")
    assert cycle.world.calls == [], "a release that cannot start changed something"


@pytest.mark.parametrize("lab", ["no servers", "no balancer running"])
def test_nothing_to_release_into(cycle: Cycle, lab: str) -> None:
    if lab == "no servers":
        for name in OLD:
            del cycle.world.servers[name]
    else:
        cycle.world.balancer_running = False

    with pytest.raises(UsageError) as caught:
        cycle.release()

    assert str(caught.value) == "nothing to release into: run `lab up && lab provision` first"
    assert cycle.world.calls == []


def test_old_servers_not_behind_the_balancer_are_named(cycle: Cycle) -> None:
    cycle.world.pool.clear()

    with pytest.raises(UsageError) as caught:
        cycle.release()

    assert str(caught.value) == "web-1, web-2 not behind the balancer: run `lab provision`"
    assert cycle.world.calls == []


def test_a_missing_image_is_refused_before_anything_is_made(cycle: Cycle) -> None:
    with pytest.raises(UsageError) as caught:
        cycle.release(from_image="lab/cycle-web:v9")

    assert str(caught.value) == ("no image lab/cycle-web:v9 on fake: `lab bake` makes one "
                                 "(`lab history` shows what each release ran)")
    assert cycle.world.calls == []


def test_a_release_from_an_image_starts_from_it_and_skips_provisioning(cycle: Cycle) -> None:
    cycle.world.images = {"lab/cycle-web:v2"}

    report = cycle.release(from_image="lab/cycle-web:v2")

    assert report.outcome == "promoted" and report.image == "lab/cycle-web:v2"
    assert "provision" not in report.phases
    assert "provision web-3 web-4" not in cycle.world.calls
    assert {cycle.world.servers[n].image for n in NEW} == {"lab/cycle-web:v2"}


# what the release hands on --------------------------------------------------------------------


def test_the_balancer_is_found_among_the_labs_servers_with_its_key(cycle: Cycle) -> None:
    cycle.release()

    assert cycle.world.found_among == OTHERS + OLD
    assert cycle.world.found_key is cycle.fleet.key


def test_checks_get_the_lab_the_overrides_and_the_users_listener(cycle: Cycle) -> None:
    cycle.release()

    v2 = {"version": "v2"}
    assert cycle.world.checked == [("provision", "cycle", v2), ("verify", "cycle", v2),
                                   ("verify", "cycle", v2)]
    assert cycle.messages("provision") == ["provision web-3 web-4"]
    assert cycle.messages("verify") == ["verify web-3 web-4"] * 2
    assert cycle.world.health == HealthCheck(path="/health", port=80)


def test_the_default_probe_sends_40_requests_a_second_to_the_balancer(
        cycle: Cycle, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, float]] = []

    def probe(url: str, rate: float) -> FakeProbe:
        made.append((url, rate))
        return FakeProbe(url)

    monkeypatch.setattr(lab.release.cycle, "Probe", probe)
    cycle.release(probe=None)
    cycle.release(probe=None, probe_rate=7.0)

    assert made == [("http://balancer.invalid:8080/", 40.0), ("http://balancer.invalid:8080/", 7.0)]


def test_failing_tests_stop_the_wait_for_health_checks(cycle: Cycle) -> None:
    """Health checks that would pass only after a long wait are given up on at once."""
    cycle.world.slow_health = True
    cycle.world.verify_problem = "web-3: test_page failed"

    with pytest.raises(ReleaseFailed, match="failed its tests"):
        cycle.release()

    assert "balancer.gave_up" in cycle.world.calls
    assert "balancer.waited_in_vain" not in cycle.world.calls
    cycle.assert_rolled_back("failed its tests")


# what a step shows, and how it is paced -------------------------------------------------------


def test_each_tick_shows_weights_traffic_errors_latency_versions_and_shares(
        cycle: Cycle) -> None:
    cycle.world.pool["web-0"] = FakeMember(share=100)  # a server outside both generations

    cycle.release()

    tick = next(e for e in cycle.events if e.kind == "tick")
    assert tick.message == "10% on the new generation"
    assert tick.data == {
        "percent": 10, "rps": 13.3, "errors": 0, "requests": 40,
        "canary": {"requests": 20, "failed": 0}, "p50_ms": 2.5, "p99_ms": 5.1,
        "versions": {"v2": 40},
        "weights": {"web-0": 100, "web-1": 90, "web-2": 90, "web-3": 10, "web-4": 10},
        "health": dict.fromkeys(["web-0", "web-1", "web-2", "web-3", "web-4"], "UP"),
        "share": {"web-0": 0.333, "web-1": 0.3, "web-2": 0.3, "web-3": 0.033, "web-4": 0.033},
    }
    assert tick_line(tick.data).startswith("[bold]10%[/bold] new | weights web-0=100 web-1=90")


class Clock:
    """lab.release.cycle's clock, made virtual: ``sleep`` moves it on at once and is logged, so a
    test sees how a step is paced without waiting (and without a timed assertion)."""

    def __init__(self, cycle: Cycle) -> None:
        self.now, self.cycle, self.naps, self.spins = 1024.0, cycle, 0, 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        # A step that looks again without sleeping may do so while its tests run (each spin
        # here waits a real millisecond); thousands of times, it spins for good.
        self.naps, self.spins = self.naps + (seconds > 0), self.spins + (seconds == 0)
        if self.naps > 100 or self.spins > 5000:
            raise RuntimeError("the step spins instead of sleeping")
        self.cycle.world.record("sleep", seconds)
        self.now += seconds
        time.sleep(0.001)  # let the tests under traffic run

    def time(self) -> float:
        return time.time()

    def strftime(self, format: str) -> str:
        return time.strftime(format)


def test_a_step_is_held_for_its_seconds_looking_twice_a_second(
        make_cycle: MakeCycle, monkeypatch: pytest.MonkeyPatch) -> None:
    from release_fakes import LAB_YML

    cycle = make_cycle(LAB_YML.replace("step_seconds: 0.02", "step_seconds: 1.25"))
    monkeypatch.setattr(lab.release.cycle, "time", Clock(cycle))

    report = cycle.release()

    assert report.outcome == "promoted"
    steps: list[list[str]] = []
    for call in cycle.world.calls:
        if call.startswith("balancer.shift"):
            steps.append([])
        elif call.startswith("sleep") and steps:
            steps[-1].append(call)
    held = ["sleep 0.5", "sleep 0.5", "sleep 0.25"]
    # the first step may look again (without sleeping) until its tests under traffic end
    assert steps[0][:3] == held and set(steps[0][3:]) <= {"sleep 0.0"}, steps[0]
    assert steps[1:] == [held, held]
    # each step's window counts from the step's own start; the report's from the probe's
    assert set(cycle.world.windows) == {1024.0, 1025.25, 1026.5}


def test_an_error_rate_at_the_limit_passes(make_cycle: MakeCycle) -> None:
    """max_error_rate is the highest rate allowed: users' and the new servers' own."""
    from release_fakes import LAB_YML

    cycle = make_cycle(LAB_YML.replace("max_error_rate: 0.01", "max_error_rate: 0.5"))
    cycle.world.user_errors = 20  # of 40
    cycle.world.failing = set(NEW)  # 5 of every 10

    report = cycle.release()

    assert report.outcome == "promoted"
    assert [s.canary["failed"] * 2 == s.canary["requests"] for s in report.steps] == [True] * 3


@pytest.mark.parametrize(("how", "message"), [
    ("unhealthy on join", "health check /health on port 80 failed on web-3, web-4"),
    ("sick mid-step", "at 50%: health check failing on web-3, web-4"),
    ("dead mid-step", "at 50%: web-3, web-4 stopped running"),
])
def test_every_failing_new_server_is_named(cycle: Cycle, how: str, message: str) -> None:
    world = cycle.world
    if how == "unhealthy on join":
        world.unhealthy_on_join = set(NEW)
    else:
        def sicken() -> None:
            for name in NEW:
                world.pool[name].healthy = False
                if how == "dead mid-step":
                    world.kill(name)()

        world.when("balancer.shift 50", sicken)

    with pytest.raises(ReleaseFailed) as caught:
        cycle.release()

    assert str(caught.value) == f"release rolled back: {message}"
    cycle.assert_rolled_back(message)


def test_counters_lost_mid_step_leave_the_gate_to_what_users_see(cycle: Cycle) -> None:
    """A balancer that stops counting (its stats reset, say) is not a failed canary."""
    world = cycle.world

    def lose_counters_after_the_steps_first_reading() -> None:
        world.when("balancer.failures", lambda: setattr(world, "counters", False),
                   nth=world.counts["balancer.failures"] + 2)

    world.when("balancer.shift 50", lose_counters_after_the_steps_first_reading)

    report = cycle.release()

    assert report.outcome == "promoted"
    assert [bool(s.canary) for s in report.steps] == [True, False, False]


def test_lab_history_shows_a_release_interrupted_mid_step(
        cycle: Cycle, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    cycle.world.when("balancer.members", interrupt, nth=2)  # the first tick of the first step

    with pytest.raises(KeyboardInterrupt):
        cycle.release()

    saved = cycle.saved()
    # Never judged, so never "passed": the step says it was cut short, with what it saw.
    assert [(s["percent"], s["gate"]) for s in saved["steps"]] == [(10, "cut short")]
    assert "requests" in saved["steps"][0]["window"]
    # What it saw is the step's own traffic, counted from when the step began.
    assert None not in cycle.world.windows
    print_release(ReleaseReport.from_dict(saved))
    assert "rolled-back" in capsys.readouterr().out


# promote and rollback when the balancer misbehaves --------------------------------------------


def test_old_servers_that_would_not_drain_are_reported_and_still_destroyed(
        cycle: Cycle) -> None:
    cycle.world.lingering = list(OLD)

    report = cycle.release()

    assert report.outcome == "promoted"
    assert cycle.messages("warning") == [
        "web-1, web-2 left in maintenance in the balancer (connections would not close)"]
    assert sorted(cycle.world.servers) == OTHERS + NEW


@pytest.mark.parametrize("call", ["balancer.shift 0", "balancer.retire web-3 web-4"])
def test_a_balancer_refusing_during_rollback_is_reported_and_the_rollback_goes_on(
        cycle: Cycle, call: str) -> None:
    cycle.world.provision_problem = "web-3: task 'nginx' failed"
    cycle.world.when(call, failure("runtime API closed"))

    with pytest.raises(ReleaseFailed, match="provisioning the new generation failed"):
        cycle.release()

    expect(cycle.world.calls, *START, *ROLLBACK)
    assert cycle.messages("warning") == ["rollback: runtime API closed"]
    assert sorted(cycle.world.servers) == OTHERS + OLD
    cycle.assert_untouched(OLD + OTHERS)
    assert cycle.saved()["outcome"] == "rolled-back"


def test_rollback_drains_the_new_generation_briefly(cycle: Cycle) -> None:
    """A failed canary gets 5 s for its in-flight requests, not the promote's full wait."""
    cycle.world.verify_problem = "web-4: test_page failed"

    with pytest.raises(ReleaseFailed):
        cycle.release()

    assert cycle.world.retire_timeouts == {"web-3": 5, "web-4": 5}


def test_rollback_removes_what_create_made_but_never_reported(cycle: Cycle) -> None:
    from lab.state import Liveness, ServerRecord

    def stray() -> None:  # a server the target made, and the release never heard of
        cycle.world.servers["web-9"] = ServerRecord("web-9", "web", "fake", generation=2,
                                                    liveness=Liveness.RUNNING)

    cycle.world.when("provision", stray)
    cycle.world.provision_problem = "web-3: task 'nginx' failed"

    with pytest.raises(ReleaseFailed):
        cycle.release()

    assert "target.destroy web-3 web-4 web-9" in cycle.world.calls
    cycle.assert_rolled_back("provisioning the new generation failed")


def test_a_failure_after_the_old_generation_left_finishes_the_promote(cycle: Cycle) -> None:
    """An error (not Ctrl-C) while the old generation is being destroyed: the new one keeps
    serving, the old one is removed again, and the release counts as promoted."""
    cycle.world.when("target.destroy web-1 web-2", failure("engine hiccup"))

    report = cycle.release()

    assert report.outcome == "promoted"
    assert report.reason == "promote cut short (engine hiccup); finished it"
    assert cycle.messages("warning") == [
        "engine hiccup after the old generation left the balancer: the new generation keeps "
        "serving; removing the old one"]
    assert sorted(cycle.world.servers) == OTHERS + NEW
    assert cycle.messages("rollback") == []


def test_old_servers_the_balancer_lost_before_promote_are_never_destroyed(
        cycle: Cycle) -> None:
    """Only promote takes the old generation out: if the balancer forgets it mid-canary (a
    restart, say), the release rolls back and the old servers stay for `lab provision`."""
    world = cycle.world

    def balancer_restarts() -> None:
        for name in OLD:
            del world.pool[name]
        raise TargetError("the balancer restarted")

    world.when("balancer.shift 50", balancer_restarts)

    with pytest.raises(ReleaseFailed, match="the balancer restarted"):
        cycle.release()

    cycle.assert_untouched(OLD + OTHERS)
    assert sorted(world.servers) == OTHERS + OLD
    assert cycle.saved()["outcome"] == "rolled-back"


def test_a_balancer_that_cannot_be_asked_during_promote_is_assumed_to_hold_the_old(
        cycle: Cycle) -> None:
    world = cycle.world

    def balancer_goes_quiet_then_ctrl_c() -> None:
        world.balancer_down = True
        raise KeyboardInterrupt

    world.when("balancer.retire web-1 web-2", balancer_goes_quiet_then_ctrl_c)

    with pytest.raises(KeyboardInterrupt):
        cycle.release()

    cycle.assert_rolled_back("interrupted (Ctrl-C)")


# what a release keeps -------------------------------------------------------------------------


def release_as(cycle: Cycle, version: str, *, fail: bool = False) -> dict[str, Any]:
    """One more release of ``version`` on the same lab; its report as saved."""
    cycle.overrides = {"version": version}
    cycle.world.provision_problem = "broken" if fail else ""
    try:
        cycle.release()
    except ReleaseFailed:
        assert fail
    return cycle.fleet.state.releases()[-1]


def test_each_release_records_what_ran_before_it_and_lab_rollback_goes_back_to_it(
        cycle: Cycle) -> None:
    from lab.release import rollback_target

    with pytest.raises(UsageError) as caught:
        rollback_target(cycle.fleet.state)
    assert str(caught.value) == "no promoted release to roll back (see `lab history`)"

    first = release_as(cycle, "v2")
    release_as(cycle, "v3", fail=True)
    third = release_as(cycle, "v4")
    fourth = release_as(cycle, "v5")

    # before any promoted release: lab.yml's vars, on lab.yml's image
    assert first["previous"] == {"vars": {"version": "v1"}, "image": None}
    # then what the last promoted release ran (a rolled-back one never ran)
    assert third["previous"] == {"vars": {"version": "v2"}, "image": None}
    assert fourth["previous"] == {"vars": {"version": "v4"}, "image": None}
    target = rollback_target(cycle.fleet.state)
    assert (target.vars, target.image, target.release_id) == ({"version": "v4"}, None,
                                                              third["id"])
    assert [r["outcome"] for r in cycle.fleet.state.releases()] == [
        "promoted", "rolled-back", "promoted", "promoted"]


def test_the_first_release_of_servers_started_from_a_baked_image_remembers_it(
        cycle: Cycle) -> None:
    for name in OLD:
        cycle.world.servers[name].image = "lab/cycle-web:v1"

    report = cycle.release()

    assert report.previous == {"vars": {"version": "v1"}, "image": "lab/cycle-web:v1"}


def test_the_report_is_saved_where_lab_history_and_a_person_read_it(cycle: Cycle) -> None:
    import json
    import re

    report = cycle.release()

    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", report.id), report.id
    assert report.finished is not None and report.started <= report.finished
    assert all(isinstance(s, float) and s == round(s, 2) for s in report.phases.values())
    path = cycle.fleet.config.state_dir / "releases" / f"{report.id}.json"
    assert path.read_text().startswith('{\n  "id": ')  # indented for a person
    assert json.loads(path.read_text()) == report.to_dict() == cycle.saved()
    logged = [e for e in cycle.fleet.state.events() if e.kind.startswith("release-")]
    assert [(e.kind, e.server, e.detail) for e in logged] == [
        ("release-promoted", None, report.id)]


def test_a_gate_still_running_in_the_background_never_keeps_lab_from_exiting() -> None:
    """The tests under traffic run beside a step: after Ctrl-C, lab exits (130) without
    waiting for them (a test run can take minutes)."""
    quick = lab.release.cycle._Background(lambda: None)  # here, a gate that ends is waited for
    quick.wait()
    assert quick.done
    never = ("import threading\nfrom lab.release.cycle import _Background\n"
             "_Background(threading.Event().wait)\n")
    # Run where this test's lab is (under mutmut, its mutated copy).
    done = subprocess.run([sys.executable, "-c", never], timeout=60, check=False,
                          cwd=Path(lab.release.cycle.__file__).parents[2])
    assert done.returncode == 0
