"""The suite's own shape, and the package's.

pytest imports test modules by their file's name (rootdir-relative packages are not used
here), so two test modules with one name in tests/unit and tests/integration stop the whole run
at collection. This fails first, with both paths.

The package keeps a short top level: related modules live together in a sub-package (a wing:
the course, Docker, releases, how lab reaches servers), and every wing is a real package, which
is what setuptools ships (``packages.find`` leaves a folder without ``__init__.py`` out).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import lab

TESTS = Path(__file__).resolve().parent.parent
PACKAGE = Path(lab.__file__).resolve().parent
TOP_LEVEL_MOST = 18  # issue "The floor plan"


def test_no_two_test_modules_share_a_name() -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for module in TESTS.rglob("*.py"):
        if module.name != "conftest.py" and "__pycache__" not in module.parts:
            found[module.name].append(str(module.relative_to(TESTS)))
    shared = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert shared == {}, f"rename one of each: {shared}"


def test_the_package_top_level_has_at_most_18_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert "release.py" not in top and "engine.py" not in top  # the wings are read
    assert len(top) <= TOP_LEVEL_MOST, f"{len(top)} modules at the top of lab/: {top}"


def test_every_folder_of_python_modules_is_a_package() -> None:
    folders = {path.parent for path in PACKAGE.rglob("*.py")
               if "data" not in path.relative_to(PACKAGE).parts}
    assert {"access", "course", "docker", "release"} <= {f.name for f in folders}
    missing = sorted(str(f.relative_to(PACKAGE)) for f in folders
                     if not (f / "__init__.py").is_file())
    assert missing == [], f"no __init__.py (setuptools would not ship them): {missing}"


def test_a_lab_is_resolved_in_one_place() -> None:
    """The balancer class, and so the lab's roles and inventory variables, are worked out by
    ``Lab.resolve`` only, and the inventory is written with them there; everything else takes
    the resolved ``Lab`` (issue "The floor plan")."""
    resolving, writing = [], []
    for module in PACKAGE.rglob("*.py"):
        text = module.read_text(encoding="utf-8").replace("def balancer_class(", "")
        if "balancer_class(" in text:
            resolving.append(str(module.relative_to(PACKAGE)))
        if re.search(r"from lab\.access\.inventory import [^\n]*\bwrite_inventory\b", text):
            writing.append(str(module.relative_to(PACKAGE)))
    assert resolving == writing == ["loaded.py"]
