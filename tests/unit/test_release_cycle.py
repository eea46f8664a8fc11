"""`lab release` through every path, on a fake target and a fake balancer: no Docker.

The fakes are registered by name in the targets' and balancers' registries, as a real target
and balancer are, and the release finds them from lab.yml; the probe and the new generation's
checks are passed in. Each test says in which order the release changed things, and each
rollback must leave the old generation at its full share, in service, and the new servers
destroyed.
"""

from __future__ import annotations

import re

import pytest
from release_fakes import (
    CANARY,
    JOIN,
    NEW,
    OLD,
    OTHERS,
    ROLLBACK,
    START,
    Cycle,
    expect,
    interrupt,
)

from lab.release import ReleaseFailed, ReleaseReport

# the good path ---------------------------------------------------------------------------


def test_good_release_moves_traffic_step_by_step_and_retires_the_old(cycle: Cycle) -> None:
    report = cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY,
           "balancer.retire web-1 web-2", "target.destroy web-1 web-2", "probe.stop")
    assert report.outcome == "promoted" and cycle.saved()["outcome"] == "promoted"
    assert (report.old, report.new) == (OLD, NEW)
    assert [s.percent for s in report.steps] == [10, 50, 100]
    assert all(s.gate == "passed" and s.canary["failed"] == 0 for s in report.steps)
    # what users saw at each step, as `lab history` shows it
    assert [s.window for s in report.steps] == [{
        "seconds": 3.0, "requests": 40, "errors": 0, "error_rate": 0.0, "rps": 13.3,
        "p50_ms": 2.5, "p99_ms": 5.1, "versions": {"v2": 40}}] * 3
    assert {n: m.share for n, m in cycle.world.pool.items()} == {"web-3": 100, "web-4": 100}
    assert sorted(cycle.world.servers) == OTHERS + NEW
    assert list(report.phases) == ["create", "provision", "verify + join", "canary 10%",
                                   "canary 50%", "canary 100%", "promote"]


def test_the_loop_asks_the_target_cheaply_not_by_listing_the_lab(cycle: Cycle) -> None:
    """Twice a second is one `alive` question; the lab is listed only to start and to create."""
    cycle.release()

    assert cycle.world.counts["target.alive"] >= 3
    assert cycle.world.counts["target.list"] == 2


def test_report_keeps_its_shape(cycle: Cycle) -> None:
    data = cycle.release().to_dict()

    assert list(data) == ["id", "role", "started", "vars", "image", "previous", "old", "new",
                          "steps", "phases", "outcome", "reason", "finished", "traffic",
                          "timeline", "journal", "rollback_of", "untested"]
    assert list(data["steps"][0]) == ["percent", "window", "gate", "canary", "verdicts",
                                      "paused", "resumed_by"]
    assert list(data["steps"][0]["verdicts"][0]) == ["rule", "value", "limit", "requests",
                                                     "outcome", "unit", "note"]
    assert data["steps"][0]["canary"]["failed"] == 0 < data["steps"][0]["canary"]["requests"]
    assert data["vars"] == {"version": "v2"} and data["traffic"]["requests"] == 40
    # The traffic's totals and the timeline's seconds end at the same instant: the probe's stop.
    assert cycle.world.ends[-2] == cycle.world.ends[-1] is not None


def moments(report: ReleaseReport) -> list[tuple[str, str, object]]:
    """The timeline's moments as (kind, label, ok), in the order they happened."""
    return [(m["kind"], m["label"], m.get("ok")) for m in report.timeline["events"]]


def test_the_timeline_tells_the_release_in_order_on_one_clock(cycle: Cycle) -> None:
    report = cycle.release()

    phase = [("phase", name, None) for name in report.phases]  # each begins, in order
    assert [m for m in moments(report) if m[0] == "phase"] == [
        (kind, name, True) for kind, name, _ in phase]  # ... and ended well
    told = [m for m in moments(report) if m[0] != "phase"]
    # The tests and the join run side by side: their order among themselves is not fixed.
    assert set(told[2:4]) == {("gate", "tests", True), ("gate", "health checks", True)}
    assert told[:2] + told[4:] == [
        ("created", "new generation", None), ("gate", "provision", True),
        ("step", "10%", None), ("gate", "tests", True), ("gate", "10%", True),
        ("step", "50%", None), ("gate", "50%", True), ("step", "100%", None),
        ("gate", "100%", True), ("promote", "promote", None),
        ("destroyed", "old generation", None)]
    times = [m["t"] for m in report.timeline["events"]]
    assert times == sorted(times) and times[0] >= 0
    assert report.timeline["format"] == 1 and report.timeline["seconds"]
    events = report.timeline["events"]
    assert [m["percent"] for m in events if m["kind"] in ("step", "gate") and "%" in m["label"]
            ] == [10, 10, 50, 50, 100, 100]
    assert next(m for m in events if m["kind"] == "destroyed")["detail"] == ", ".join(OLD)
    assert next(m for m in events if m["kind"] == "created")["detail"] == ", ".join(NEW)
    gates = [m for m in events if m["kind"] == "gate"]
    assert all(m["ok"] for m in gates)
    # A step's gate names each rule it judged, with its figures.
    judged = [m["detail"] for m in gates if "%" in m["label"]]
    assert len(judged) == 3 and all(re.fullmatch(
        r"error rate 0\.0% <= 1\.0% \(40 requests\); new servers' errors 0\.0% <= 1\.0% "
        r"\((\d+) requests\); requests \1 >= 1 needed", line) for line in judged), judged
    # The canary's own counts, per second, from the balancer's readings at each step.
    assert sum(second["canary_requests"] for second in report.timeline["seconds"]) > 0


def test_a_balancer_that_cannot_count_failures_gates_on_users_alone(cycle: Cycle) -> None:
    cycle.world.counters = False
    cycle.world.failing = set(NEW)  # it could not tell

    report = cycle.release()

    assert report.outcome == "promoted"
    assert all(s.canary == {} for s in report.steps)


# gates that say no ---------------------------------------------------------------------------


def test_failed_provisioning_rolls_back_before_joining(cycle: Cycle) -> None:
    cycle.world.provision_problem = "web-3: task 'nginx' failed"

    with pytest.raises(ReleaseFailed, match="provisioning the new generation failed: web-3"):
        cycle.release()

    expect(cycle.world.calls, *START, *ROLLBACK)
    cycle.assert_rolled_back("provisioning the new generation failed")


def test_failing_tests_roll_back(cycle: Cycle) -> None:
    cycle.world.verify_problem = "web-4: test_page failed"

    with pytest.raises(ReleaseFailed, match="failed its tests: web-4: test_page failed"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *ROLLBACK)
    cycle.assert_rolled_back("the new generation failed its tests")


def test_failing_tests_under_traffic_at_the_first_step_roll_back(cycle: Cycle) -> None:
    cycle.world.when("verify", lambda: setattr(cycle.world, "verify_problem", "broke"), nth=2)

    with pytest.raises(ReleaseFailed, match="failed its tests: broke"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, "balancer.shift 10", "verify web-3 web-4",
           *ROLLBACK)
    cycle.assert_rolled_back("failed its tests")


def test_failing_health_check_on_join_rolls_back(cycle: Cycle) -> None:
    cycle.world.unhealthy_on_join = {"web-4"}

    with pytest.raises(ReleaseFailed, match="health check /health on port 80 failed on web-4"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *ROLLBACK)
    cycle.assert_rolled_back("health check /health on port 80 failed on web-4")


def test_failing_health_check_during_a_step_rolls_back(cycle: Cycle) -> None:
    def sicken() -> None:
        cycle.world.pool["web-3"].healthy = False

    cycle.world.when("balancer.shift 50", sicken)

    with pytest.raises(ReleaseFailed, match="at 50%: health check failing on web-3"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY[:3], *ROLLBACK)
    cycle.assert_rolled_back("health check failing on web-3")
    assert cycle.saved()["steps"][-1]["gate"] == "health check failed"  # type: ignore[index]


def test_new_members_own_failures_at_a_step_roll_back(cycle: Cycle) -> None:
    """Users saw nothing (the balancer retried elsewhere); the canary's counters did."""
    cycle.world.when("balancer.shift 50", lambda: cycle.world.failing.update(NEW))

    with pytest.raises(ReleaseFailed, match=r"at 50%: the new generation failed 10 of 20"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY[:3], *ROLLBACK)
    cycle.assert_rolled_back("above 1.0%")
    step = cycle.saved()["steps"][-1]  # type: ignore[index]
    assert (step["gate"], step["canary"]) == ("canary errors", {"requests": 20, "failed": 10})
    # On the timeline: the gate says no at 50%, with the reason, then the rollback begins.
    timeline = cycle.saved()["timeline"]["events"]  # type: ignore[index]
    refused = next(m for m in timeline if m["kind"] == "gate" and not m["ok"])
    rollback = next(m for m in timeline if m["kind"] == "rollback")
    assert refused["label"] == "50%" and refused["detail"].startswith("at 50%: the new gen")
    assert refused["percent"] == 50
    assert refused["t"] <= rollback["t"] and rollback["detail"] == refused["detail"]


def test_errors_users_see_roll_back(cycle: Cycle) -> None:
    cycle.world.user_errors = 4

    with pytest.raises(ReleaseFailed, match=r"at 10%: error rate 10.0% is above 1.0% \(4/40\)"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY[:2], *ROLLBACK)
    cycle.assert_rolled_back("error rate")
    step = cycle.saved()["steps"][-1]
    assert (step["gate"], step["window"]["errors"]) == ("error rate too high", 4)


def test_a_new_member_that_dies_mid_canary_rolls_back(cycle: Cycle) -> None:
    cycle.world.when("balancer.shift 50", cycle.world.kill("web-4"))

    with pytest.raises(ReleaseFailed, match="at 50%: web-4 stopped running"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY[:3], *ROLLBACK)
    cycle.assert_rolled_back("web-4 stopped running")
    assert cycle.saved()["steps"][-1]["gate"] == "server died"  # type: ignore[index]


# Ctrl-C -----------------------------------------------------------------------------------

# (the call Ctrl-C comes in, its nth time; the calls made before the rollback)
INTERRUPTS = {
    "create": ("target.create", 1, [START[0], "target.create web-3 web-4",
                                    "target.destroy web-3 web-4"]),
    "provision": ("provision", 1, START),
    "verify + join": ("verify", 1, [*START, JOIN]),
    "joined": ("balancer.join", 1, [*START, JOIN - {"balancer.wait_healthy web-3 web-4"}]),
    "canary 10%": ("balancer.shift 10", 1, [*START, JOIN, CANARY[0]]),
    "canary 10%, tests": ("verify", 2, [*START, JOIN, *CANARY[:2]]),
    "canary 10%, a tick": ("balancer.members", 2, [*START, JOIN, *CANARY[:2]]),
    "canary 50%": ("balancer.shift 50", 1, [*START, JOIN, *CANARY[:3]]),
    "canary 100%": ("balancer.shift 100", 1, [*START, JOIN, *CANARY]),
    "promote": ("balancer.retire web-1 web-2", 1, [*START, JOIN, *CANARY,
                                                   "balancer.retire web-1 web-2"]),
}


@pytest.mark.parametrize("phase", list(INTERRUPTS))
def test_ctrl_c_rolls_back_in_every_phase(cycle: Cycle, phase: str) -> None:
    call, nth, before = INTERRUPTS[phase]
    cycle.world.when(call, interrupt, nth=nth)

    with pytest.raises(KeyboardInterrupt):
        cycle.release()

    if phase == "create":  # what was being made is gone already: nothing new to take out
        expect(cycle.world.calls, *before, "balancer.shift 0", "balancer.retire",
               "target.destroy", "probe.stop")
    else:
        expect(cycle.world.calls, *before, *ROLLBACK)
    cycle.assert_rolled_back("interrupted (Ctrl-C)")


def test_ctrl_c_after_the_old_generation_left_the_balancer_finishes_the_promote(
        cycle: Cycle) -> None:
    """Rolling back then would take out the only generation still serving: the new one,
    which passed every gate, stays; the old one is thrown away as promote would have."""
    cycle.world.when("target.destroy web-1 web-2", interrupt)

    with pytest.raises(KeyboardInterrupt):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY, "balancer.retire web-1 web-2",
           "target.destroy web-1 web-2", "target.destroy web-1 web-2", "probe.stop")
    assert {n: m.share for n, m in cycle.world.pool.items()} == {"web-3": 100, "web-4": 100}
    assert sorted(cycle.world.servers) == OTHERS + NEW
    saved = cycle.saved()
    assert saved["outcome"] == "promoted"
    assert "promote cut short (interrupted (Ctrl-C))" in str(saved["reason"])


def test_an_unexpected_error_rolls_back_then_surfaces(cycle: Cycle) -> None:
    """A bug in lab (not a LabError) mid-canary still rolls back before it is reported."""
    def bug() -> None:
        raise RuntimeError("a bug")

    cycle.world.when("balancer.shift 50", bug)

    with pytest.raises(RuntimeError, match="a bug"):
        cycle.release()

    expect(cycle.world.calls, *START, JOIN, *CANARY[:3], *ROLLBACK)
    cycle.assert_rolled_back("internal error: RuntimeError('a bug')")

