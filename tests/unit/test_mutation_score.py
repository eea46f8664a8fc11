"""`make mutation`'s scoring (scripts/mutation.py): what counts as killed, what is left out,
and when the run fails. The mutmut run itself is slow and stays out of `make test`; these read
made-up results, so a scoring mistake shows here at once."""

from __future__ import annotations

import importlib.util
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
assert _spec is not None and _spec.loader is not None
mutation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation)

RELEASE = "lab.release.xǁ_Runǁstep__mutmut_"
FLEET = "lab.fleet.x_up__mutmut_"


def test_equivalent_mutants_are_left_out_and_survivors_listed() -> None:
    found = {f"{RELEASE}1": "killed", f"{RELEASE}2": "timeout", f"{RELEASE}3": "survived",
             f"{RELEASE}4": "survived", f"{RELEASE}5": "not checked", f"{FLEET}1": "no tests"}
    counts, survivors = mutation.tally(found, {f"{RELEASE}4": "why"})
    assert counts["lab.release"] == Counter(killed=2, survived=1, equivalent=1,
                                            **{"not checked": 1})
    assert counts["lab.fleet"] == Counter({"no tests": 1})
    assert survivors == [f"{FLEET}1: no tests", f"{RELEASE}3: survived"]


def test_release_is_held_to_85_percent_and_the_rest_to_75() -> None:
    line, ok = mutation.row("lab.release", Counter(killed=84, survived=16))
    assert not ok and "below goal" in line and "84.0%" in line
    assert mutation.row("lab.release", Counter(killed=85, survived=15))[1]
    assert mutation.row("lab.fleet", Counter(killed=75, survived=25))[1]
    assert not mutation.row("lab.fleet", Counter(killed=74, survived=26))[1]


def test_a_partial_run_never_passes_and_says_so() -> None:
    line, ok = mutation.row("lab.fleet", Counter(killed=10, **{"not checked": 3}))
    assert not ok and "partial: 3 not run" in line and "100.0%" in line


def test_a_score_is_rounded_down() -> None:
    assert mutation.shown(855 / 858) == "99.6%"
    assert mutation.shown(1.0) == "100.0%"


def test_every_equivalent_mutant_has_a_reason_and_a_mutated_module() -> None:
    mutated = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    prefixes = tuple(path.removesuffix(".py").removesuffix("*").replace("/", ".")
                     for path in mutated)
    listed = mutation.equivalent()
    assert len(listed) > 50
    for name, why in listed.items():
        assert "__mutmut_" in name and why, name
        assert mutation.module_of(name).startswith(prefixes), name
