"""`lab test --destroy always|passing|never` on the fake target of ``release_fakes``: which
servers the harness cycle leaves behind, by its policy and its outcome.

The lab has no playbook and no tests, so the cycle's provision and verify have nothing to run
(the real ones run in tests/integration/test_provision_verify.py); a failure is the target
refusing mid-cycle.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from release_fakes import World
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import TargetError

runner = CliRunner(env={"LAB_FILE": None})


@pytest.fixture
def world(world: World, tmp_path: Path) -> World:
    """conftest's fake world, with a lab of two web servers on it."""
    (tmp_path / "lab.yml").write_text("name: t\ntarget: fake\nservers: {web: {count: 2}}\n")
    return world


def fail_after_create(world: World) -> None:
    def refuse() -> None:
        raise TargetError("the engine went away")

    world.when("target.create web-1 web-2",
               lambda: world.when("target.list", refuse, nth=world.counts["target.list"] + 1))


@pytest.mark.parametrize(("policy", "passes", "kept"), [
    ("always", True, False),
    ("always", False, False),
    ("passing", True, False),
    ("passing", False, True),
    ("never", True, True),
])
def test_destroy_policy(world: World, policy: str, passes: bool, kept: bool) -> None:
    if not passes:
        fail_after_create(world)

    result = runner.invoke(app, ["test", "--destroy", policy])

    assert result.exit_code == (0 if passes else 1), result.output
    assert sorted(world.servers) == (["web-1", "web-2"] if kept else [])
    if kept:
        assert f"kept servers of t-test (--destroy {policy})" in result.output
