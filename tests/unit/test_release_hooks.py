"""Hooks per phase (issue "Canary analysis"), like Flagger's webhooks: real shell commands run
by a release on the fakes. A failing pre-rollout, rollout or confirm-promotion hook rolls back
with the hook's last line of output; post-rollout and rollback hooks only warn."""

from __future__ import annotations

from pathlib import Path

import pytest
from release_fakes import LAB_YML, MakeCycle

from lab.config import load_config
from lab.errors import ConfigError
from lab.release import ReleaseFailed
from lab.release.report import chart

# Each hook writes what it was told to hooks.log, one line per run.
TELL = 'echo "$LAB_HOOK $LAB_PERCENT $LAB_GENERATION $LAB_NEW_SERVERS|$LAB_OLD_SERVERS|$LAB_URL|$LAB_REASON" >> hooks.log'  # noqa: E501


def with_hooks(**commands: str) -> str:
    hooks = ", ".join(f"{phase}: {{run: '{command}'}}" for phase, command in commands.items())
    return LAB_YML.replace("max_error_rate: 0.01}", f"max_error_rate: 0.01, hooks: {{{hooks}}}}}")


def every_phase(**failing: str) -> str:
    phases = ("pre-rollout", "rollout", "confirm-promotion", "post-rollout", "rollback")
    return with_hooks(**{p: failing.get(p, TELL) for p in phases})


def told(directory: Path) -> list[str]:
    log = directory / "hooks.log"
    return log.read_text().splitlines() if log.exists() else []


URL = "http://balancer.invalid:8080/"


def test_each_hook_runs_at_its_phase_with_the_releases_facts(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(every_phase())

    report = cycle.release()

    assert report.outcome == "promoted"
    assert told(cycle.fleet.config.directory) == [
        f"pre-rollout 0 2 web-3 web-4|web-1 web-2|{URL}|",
        f"rollout 10 2 web-3 web-4|web-1 web-2|{URL}|",
        f"rollout 50 2 web-3 web-4|web-1 web-2|{URL}|",
        f"rollout 100 2 web-3 web-4|web-1 web-2|{URL}|",
        f"confirm-promotion 100 2 web-3 web-4|web-1 web-2|{URL}|",
        f"post-rollout 100 2 web-3 web-4|web-1 web-2|{URL}|",
    ]
    assert "pre-rollout hook" in report.phases and "confirm-promotion hook" in report.phases


def test_a_failing_pre_rollout_hook_rolls_back_before_any_traffic(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle(every_phase(**{"pre-rollout": "echo checking; echo smoke test failed "
                                                     ">&2; exit 3"}))

    with pytest.raises(ReleaseFailed, match=r"the pre-rollout hook failed: `echo checking; "
                                            r"echo smoke test failed >&2; exit 3` exited 3: "
                                            r"smoke test failed$"):
        cycle.release()

    cycle.assert_rolled_back("smoke test failed")
    assert "balancer.shift 10" not in cycle.world.calls
    assert [line.split("|")[0] for line in told(cycle.fleet.config.directory)] == [
        "rollback 0 2 web-3 web-4"]
    assert told(cycle.fleet.config.directory)[0].endswith(
        "|the pre-rollout hook failed: `echo checking; echo smoke test failed >&2; exit 3` "
        "exited 3: smoke test failed")


def test_a_failing_rollout_hook_refuses_its_step(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(every_phase(rollout='test "$LAB_PERCENT" != 50 || '
                                           '{ echo too slow at 50; exit 1; }'))

    with pytest.raises(ReleaseFailed, match=r"^release rolled back: at 50%: the rollout hook "
                                            r"failed: .* exited 1: too slow at 50$"):
        cycle.release()

    cycle.assert_rolled_back("too slow at 50")
    assert [s["gate"] for s in cycle.saved()["steps"]] == ["passed", "rollout hook"]


def test_a_failing_confirm_promotion_hook_keeps_the_old_generation(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle(every_phase(**{"confirm-promotion": "echo not today; false"}))

    with pytest.raises(ReleaseFailed, match=r"the confirm-promotion hook failed: .*: not today"):
        cycle.release()

    cycle.assert_rolled_back("not today")


def test_failing_hooks_after_the_end_only_warn(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(every_phase(**{"post-rollout": "echo chat is down; exit 7"}))

    report = cycle.release()

    assert report.outcome == "promoted"
    assert cycle.messages("warning") == [
        "the post-rollout hook failed: `echo chat is down; exit 7` exited 7: chat is down"]
    drawn = chart(report)
    assert drawn is not None and drawn.rollback is None  # promoted: no rollback drawn


def test_a_hook_that_hangs_is_stopped_at_its_timeout(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(LAB_YML.replace(
        "max_error_rate: 0.01}",
        "max_error_rate: 0.01, hooks: {pre-rollout: {run: 'sleep 30', timeout: 0.5}}}"))

    with pytest.raises(ReleaseFailed, match=r"`sleep 30` did not end within 0.5 s"):
        cycle.release()


@pytest.mark.parametrize(("hooks", "said"), [
    ("{pre-rollout: {run: 'true', playbook: x.yml}}",
     "release.hooks.pre-rollout: give a hook either `run: COMMAND` or `playbook: FILE`"),
    ("{pre-rollout: {}}",
     "release.hooks.pre-rollout: give a hook either `run: COMMAND` or `playbook: FILE`"),
    ("{pre-rollout: {playbook: playbooks/nope.yml}}",
     "release.hooks.pre-rollout.playbook: file not found: playbooks/nope.yml"),
    ("{on-promote: {run: 'true'}}", "release.hooks.on-promote: unknown field"),
])
def test_a_bad_hook_is_refused_naming_it(tmp_path: Path, hooks: str, said: str) -> None:
    (tmp_path / "lab.yml").write_text(f"name: x\nservers: {{web: {{}}}}\n"
                                      f"release: {{hooks: {hooks}}}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "lab.yml")
    assert said in str(caught.value)
