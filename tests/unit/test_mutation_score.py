"""`make mutation`'s scoring (scripts/mutation.py): what counts as killed, what is left out,
and when the run fails. The mutmut run itself is slow and stays out of `make test`; these read
made-up results, so a scoring mistake shows here at once."""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
assert _spec is not None and _spec.loader is not None
mutation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation)

RELEASE = "lab.release.cycle.xǁ_Runǁstep__mutmut_"
FLEET = "lab.fleet.x_up__mutmut_"


def test_equivalent_mutants_are_left_out_and_survivors_listed() -> None:
    found = {f"{RELEASE}1": "killed", f"{RELEASE}2": "timeout", f"{RELEASE}3": "survived",
             f"{RELEASE}4": "survived", f"{RELEASE}5": "not checked", f"{FLEET}1": "no tests"}
    counts, survivors = mutation.tally(found, {f"{RELEASE}4"})
    assert counts["lab.release.cycle"] == Counter(killed=2, survived=1, equivalent=1,
                                                  **{"not checked": 1})
    assert counts["lab.fleet"] == Counter({"no tests": 1})
    assert survivors == [f"{FLEET}1: no tests", f"{RELEASE}3: survived"]


SHOWN = """# lab.release.cycle.xǁ_Runǁstep__mutmut_21: survived
--- lab/release/cycle.py
+++ lab/release/cycle.py
@@ -1,3 +1,3 @@
 def step(self, percent):
-    step = StepReport(percent, {})
+    step = StepReport(percent, None)
     return step
"""


def test_an_equivalent_mutant_is_known_by_its_change_whatever_its_number() -> None:
    change = mutation.change_in(SHOWN)
    assert change == ("- step = StepReport(percent, {})", "+ step = StepReport(percent, None)")
    known = {(mutation.function_of(f"{RELEASE}21"), change): (f"{RELEASE}21", "why")}
    # Code added above it: the same change is mutant 23 now, and 21 is another one.
    found = {f"{RELEASE}21": "survived", f"{RELEASE}23": "survived"}
    other = ("- x = 1", "+ x = 2")
    equal, stale = mutation.matched(found, known, {f"{RELEASE}21": other,
                                                    f"{RELEASE}23": change})
    assert (equal, stale) == ({f"{RELEASE}23"}, [])
    # Killed now (or its change gone from the code): the entry is stale, to be removed.
    equal, stale = mutation.matched({f"{RELEASE}21": "survived"}, known,
                                    {f"{RELEASE}21": other})
    assert (equal, stale) == (set(), [f"{RELEASE}21"])
    # A run that did not mutate that module says nothing of its entries.
    assert mutation.matched({f"{FLEET}1": "survived"}, known, {}) == (set(), [])


def test_release_is_held_to_85_percent_and_the_rest_to_75() -> None:
    line, ok = mutation.row("lab.release.cycle", Counter(killed=84, survived=16))
    assert not ok and "below goal" in line and "84.0%" in line
    assert mutation.row("lab.release.cycle", Counter(killed=85, survived=15))[1]
    assert mutation.row("lab.fleet", Counter(killed=75, survived=25))[1]
    assert not mutation.row("lab.fleet", Counter(killed=74, survived=26))[1]


def test_a_partial_run_never_passes_and_says_so() -> None:
    line, ok = mutation.row("lab.fleet", Counter(killed=10, **{"not checked": 3}))
    assert not ok and "partial: 3 not run" in line and "100.0%" in line


def test_a_score_is_rounded_down() -> None:
    assert mutation.shown(855 / 858) == "99.6%"
    assert mutation.shown(1.0) == "100.0%"


def test_every_equivalent_mutant_has_a_reason_a_change_and_is_scored() -> None:
    listed = mutation.equivalent()
    assert len(listed) > 50
    patterns = mutation.scope()
    for (function, change), (name, why) in listed.items():
        assert mutation.function_of(name) == function and why, name
        assert change and all(line[:2] in ("- ", "+ ") for line in change), name
        assert mutation.in_scope(name, patterns), name


def test_the_scope_is_every_safety_module_and_the_targets_list_and_destroy() -> None:
    patterns = mutation.scope()
    assert mutation.in_scope(f"{RELEASE}1", patterns)
    assert mutation.in_scope("lab.balancers.alb.xǁALBǁretire__mutmut_2", patterns)
    assert mutation.in_scope("lab.targets.aws.xǁAwsTargetǁdestroy__mutmut_1", patterns)
    assert mutation.in_scope("lab.targets.vagrant.x__pattern__mutmut_3", patterns)
    assert mutation.in_scope("lab.aws.resources.x__unlink_groups__mutmut_4", patterns)
    assert not mutation.in_scope("lab.targets.vagrant.x_vagrant_checks__mutmut_1", patterns)
    assert not mutation.in_scope("lab.targets.aws.xǁAwsTargetǁbake__mutmut_1", patterns)
    assert not mutation.in_scope("lab.docker.runmode.x_choose__mutmut_1", patterns)


def test_every_function_scored_in_part_exists() -> None:
    """A function renamed would leave the score without a word: each one named is there."""
    for module, functions in mutation.IN_PART.items():
        found = importlib.import_module(module)
        for function in functions:
            owner, _, name = function.rpartition(".")
            assert callable(getattr(getattr(found, owner) if owner else found, name, None)), \
                f"{module}: no {function}"
