"""Fixtures shared by the unit tests of `lab release` (tests/unit/release_fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import release_fakes
from release_fakes import LAB_YML, Cycle, MakeCycle, World, populate

import lab.balancers.registry
import lab.targets.registry
from lab.config import load_config
from lab.fleet import Fleet


@pytest.fixture
def make_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeCycle]:
    """Makes a lab on the fake target and balancer from a lab.yml (default: ``LAB_YML``),
    with two old servers (web-1, web-2) at full share and a db server."""
    monkeypatch.setitem(lab.balancers.registry.BUILT_IN, "fake", "release_fakes:FakeBalancer")
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    with ExitStack() as stack:

        def make(lab_yml: str = LAB_YML) -> Cycle:
            world = World()
            monkeypatch.setattr(release_fakes, "world", world)
            (tmp_path / "lab.yml").write_text(lab_yml)
            # The fake target and balancer are validated against their registries, like
            # real ones.
            config = load_config(tmp_path / "lab.yml", target="fake")
            populate(world)
            fleet = stack.enter_context(Fleet(config.located(tmp_path)))
            return Cycle(world, fleet, [])

        yield make


@pytest.fixture
def cycle(make_cycle: MakeCycle) -> Cycle:
    """The lab of ``LAB_YML``: web-1 and web-2 at full share behind the fake balancer."""
    return make_cycle()
