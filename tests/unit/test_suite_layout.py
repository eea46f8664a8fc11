"""The suite's own shape: pytest imports test modules by their file's name (rootdir-relative
packages are not used here), so two test modules with one name in tests/unit and
tests/integration stop the whole run at collection. This fails first, with both paths."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_name() -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for module in TESTS.rglob("*.py"):
        if module.name != "conftest.py" and "__pycache__" not in module.parts:
            found[module.name].append(str(module.relative_to(TESTS)))
    shared = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert shared == {}, f"rename one of each: {shared}"
