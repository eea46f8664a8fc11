"""A release killed outright (SIGKILL, a power cut) and the command after it, on the fakes.

A kill leaves the world as it was at that instant: the servers, the balancer's weights and
state.db, with the release's lock dropped by the kernel. :func:`killed_at` makes exactly that:
it freezes the fake world and state.db when a given call is made, lets the release end (it
rolls back in-process), then puts the frozen world back, as if nothing had run after the
kill. The next command must see the interrupted release and put it right: rolled back to the
old generation, or its promote finished once it had begun. The same through a real HAProxy
and a real `kill -9` is tests/integration/test_release_killed.py.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable

import pytest
from release_fakes import FULL, NEW, OLD, OTHERS, Cycle, interrupt

from lab.errors import Terminated, UsageError
from lab.release import ReleaseFailed, ReleaseReport, journal, put_right
from lab.release.journal import ReleaseLock
from lab.release.report import NO_TIMELINE, render


class Frozen:
    """The fake world and state.db as they were at one instant of a release."""

    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.frozen = False

    def freeze(self) -> None:
        world = self.cycle.world
        self.servers, self.pool = copy.deepcopy(world.servers), copy.deepcopy(world.pool)
        self.db = sqlite3.connect(":memory:", check_same_thread=False)  # join runs in a thread
        with sqlite3.connect(self.cycle.fleet.state.path) as live:
            live.backup(self.db)
        self.frozen = True

    def thaw(self) -> None:
        """Back to the frozen instant: what a SIGKILL then would have left."""
        assert self.frozen, "the release never reached the call it was to be killed at"
        world = self.cycle.world
        world.servers, world.pool = self.servers, self.pool
        with sqlite3.connect(self.cycle.fleet.state.path) as live:
            self.db.backup(live)
        for stale in (self.cycle.fleet.config.state_dir / "releases").glob("*.json"):
            stale.unlink()  # the release's file is written at its end, never reached


def killed_at(cycle: Cycle, call: str, setup: Callable[[], None] | None = None) -> None:
    """Run a release on ``cycle`` and leave the world as a SIGKILL at ``call`` would."""
    frozen = Frozen(cycle)

    def kill() -> None:
        frozen.freeze()
        raise KeyboardInterrupt  # ends the release here; thaw() undoes what it does after

    cycle.world.when(call, kill)
    if setup is not None:
        setup()
    with pytest.raises((KeyboardInterrupt, ReleaseFailed)):
        cycle.release()
    frozen.thaw()
    cycle.world.calls.clear()


def shares(cycle: Cycle) -> dict[str, tuple[int, str]]:
    return {n: (m.share, m.state) for n, m in cycle.world.pool.items()}


def generations_with_traffic(cycle: Cycle) -> set[int]:
    """The invariant's measure: generations holding a share of the balancer now."""
    return {cycle.world.servers[n].generation for n, m in cycle.world.pool.items()
            if m.share and m.state == "ready" and n in cycle.world.servers}


ROLLED_BACK = {"web-1": (FULL, "ready"), "web-2": (FULL, "ready")}
PROMOTED = {"web-3": (FULL, "ready"), "web-4": (FULL, "ready")}

# Where a kill can land, by the call made just then, with the step the journal names and
# what the next command must make of it.
KILLS = [
    ("target.create", "create", ROLLED_BACK),
    ("provision", "provision", ROLLED_BACK),
    ("balancer.join", "verify + join", ROLLED_BACK),
    ("balancer.shift 10", "canary 10%", ROLLED_BACK),
    ("balancer.shift 50", "canary 50%", ROLLED_BACK),
    ("balancer.shift 100", "canary 100%", ROLLED_BACK),
    ("balancer.retire web-1 web-2", "promote", PROMOTED),
    ("target.destroy web-1 web-2", "promote", PROMOTED),
]


@pytest.mark.parametrize(("call", "step", "after"), KILLS, ids=[k[1] + "@" + k[0] for k in KILLS])
def test_a_release_killed_at_any_step_is_named_then_put_right(
        cycle: Cycle, call: str, step: str, after: dict[str, tuple[int, str]]) -> None:
    killed_at(cycle, call)
    state, state_dir = cycle.fleet.state, cycle.fleet.config.state_dir

    found = journal.interrupted(state, state_dir)
    assert found is not None and journal.last_step(found) == step
    assert [r["outcome"] for r in journal.releases(state, state_dir)] == ["interrupted"]
    assert journal.describe(found).startswith(f"release {found.id} was interrupted at {step}")

    [ended] = put_right(cycle.fleet, cycle.events.append)

    assert shares(cycle) == after
    kept = sorted(after)
    assert sorted(cycle.world.servers) == OTHERS + kept, "the other generation was left"
    assert len(generations_with_traffic(cycle)) == 1
    cycle.assert_untouched(OTHERS)
    [saved] = state.releases()
    assert saved["id"] == found.id and saved["outcome"] == ended.outcome
    assert saved["outcome"] == ("promoted" if after is PROMOTED else "rolled-back")
    assert saved["reason"].startswith(f"interrupted at {step}") or (
        saved["reason"].startswith(f"promote cut short (interrupted at {step}"))
    assert journal.interrupted(state, state_dir) is None
    assert put_right(cycle.fleet) == []  # once is enough
    # `lab report` shows it: its file is written; no chart (nobody measured after the kill),
    # and the page says so.
    (path,) = (state_dir / "releases").glob("*.json")
    assert json.loads(path.read_text())["outcome"] == saved["outcome"]
    page, notices = render([ReleaseReport.from_dict(saved)])
    assert saved["reason"][:40] in page and notices == [f"release {saved['id']}: {NO_TIMELINE}"]


def test_the_next_release_puts_a_killed_one_right_first_then_releases(cycle: Cycle) -> None:
    """The defect this guards: a release killed at 50% left web-1/web-2 and web-3/web-4 at
    half each; the next release took web-3/web-4 for the old generation, promoted over them,
    and left generation 1 a share for good."""
    killed_at(cycle, "balancer.shift 50")
    assert generations_with_traffic(cycle) == {1, 2}
    cycle.overrides = {"version": "v3"}

    report = cycle.release()

    assert report.outcome == "promoted"
    assert report.old == OLD and report.new == ["web-5", "web-6"]
    assert shares(cycle) == {"web-5": (FULL, "ready"), "web-6": (FULL, "ready")}
    assert sorted(cycle.world.servers) == ["db-1", "web-5", "web-6"]
    outcomes = [(r["outcome"], r["reason"][:25]) for r in cycle.fleet.state.releases()]
    assert outcomes == [("rolled-back", "interrupted at canary 50%"), ("promoted", "")]
    assert "release " in cycle.messages("warning")[0]
    assert "interrupted at canary 50%" in cycle.messages("warning")[0]


def test_a_kill_during_a_rollback_is_rolled_back_again(cycle: Cycle) -> None:
    def failing() -> None:
        cycle.world.verify_problem = "nginx is not running"

    killed_at(cycle, "balancer.retire web-3 web-4", setup=failing)
    found = journal.interrupted(cycle.fleet.state, cycle.fleet.config.state_dir)
    assert found is not None and journal.last_step(found) == "rollback"

    put_right(cycle.fleet)

    assert shares(cycle) == ROLLED_BACK
    assert sorted(cycle.world.servers) == OTHERS + OLD


def test_each_step_is_written_down_before_it_acts(cycle: Cycle) -> None:
    seen: dict[str, tuple[str, str]] = {}

    def read_journal(call: str) -> Callable[[], None]:
        def read() -> None:
            [running] = cycle.fleet.state.releases()
            last = running["journal"][-1]
            seen[call] = (last["step"], last["state"])
        return read

    for call in ("target.create", "balancer.shift 10", "balancer.shift 50",
                 "balancer.retire web-1 web-2"):
        cycle.world.when(call, read_journal(call))
    cycle.release()

    assert seen == {"target.create": ("create", "begun"),
                    "balancer.shift 10": ("canary 10%", "begun"),
                    "balancer.shift 50": ("canary 50%", "begun"),
                    "balancer.retire web-1 web-2": ("promote", "begun")}
    [saved] = cycle.fleet.state.releases()
    steps = [(e["step"], e["state"]) for e in saved["journal"]]
    assert steps[:2] == [("create", "begun"), ("create", "done")]
    assert steps[-2:] == [("promote", "begun"), ("promote", "done")]
    assert saved["new"] == NEW


def test_a_second_release_while_one_runs_is_refused_and_changes_nothing(cycle: Cycle) -> None:
    with ReleaseLock(cycle.fleet.config.state_dir), pytest.raises(UsageError) as refused:
        cycle.release()
    assert "a release is running on this lab (process " in str(refused.value)
    assert cycle.world.calls == [] and cycle.fleet.state.releases() == []


def test_a_running_release_is_not_taken_for_an_interrupted_one(cycle: Cycle) -> None:
    """While the lock is held (the release's process lives), nothing says interrupted."""
    state, state_dir = cycle.fleet.state, cycle.fleet.config.state_dir
    seen: list[object] = []

    def look() -> None:
        seen.append(journal.interrupted(state, state_dir))
        seen.append(journal.releases(state, state_dir)[0]["outcome"])
        with pytest.raises(UsageError, match="a release is running"):
            journal.refuse_if_interrupted(state, state_dir, "bake")

    cycle.world.when("balancer.shift 50", look)
    cycle.release()
    assert seen == [None, "running"]


def test_bake_and_provision_refuse_while_a_release_is_left_half_done(cycle: Cycle) -> None:
    killed_at(cycle, "balancer.shift 10")
    state, state_dir = cycle.fleet.state, cycle.fleet.config.state_dir
    with pytest.raises(UsageError) as refused:
        journal.refuse_if_interrupted(state, state_dir, "bake")
    assert str(refused.value).endswith(
        ": `lab rollback` puts it right, then run `lab bake` again")
    assert "interrupted at canary 10% (new servers: web-3, web-4)" in str(refused.value)
    put_right(cycle.fleet)
    journal.refuse_if_interrupted(state, state_dir, "bake")  # nothing to refuse now


def test_a_lab_taken_down_after_a_kill_has_nothing_left_to_put_right(cycle: Cycle) -> None:
    killed_at(cycle, "balancer.shift 50")
    cycle.world.servers.clear()
    cycle.world.pool.clear()
    cycle.world.balancer_running = False

    [ended] = put_right(cycle.fleet)

    assert ended.outcome == "interrupted"
    assert ended.reason.endswith("its lab was taken down since")
    assert journal.interrupted(cycle.fleet.state, cycle.fleet.config.state_dir) is None


def test_sigterm_rolls_back_as_ctrl_c_does_and_says_which(cycle: Cycle) -> None:
    def terminate() -> None:
        raise Terminated("SIGTERM")

    cycle.world.when("balancer.shift 50", terminate)
    with pytest.raises(KeyboardInterrupt):
        cycle.release()
    cycle.assert_rolled_back("interrupted (SIGTERM)")


def test_the_lock_is_free_once_a_release_ends_however_it_ends(cycle: Cycle) -> None:
    cycle.world.when("balancer.shift 10", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cycle.release()
    assert not journal.running_now(cycle.fleet.config.state_dir)
    cycle.release()
    assert not journal.running_now(cycle.fleet.config.state_dir)
