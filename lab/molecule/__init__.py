"""Molecule's users move in: `lab test` in a role's folder runs its Molecule scenario as it is.

- :mod:`~lab.molecule.scenario`: molecule.yml read and checked once (one-line errors, exit 2).
- :mod:`~lab.molecule.platforms`: each platform one of lab's servers, from an image lab has.
- :mod:`~lab.molecule.inventory`: Molecule's inventory, variables and roles path, for lab's
  servers.
- :mod:`~lab.molecule.verifier`: the testinfra verifier, as Molecule runs it.
- :mod:`~lab.molecule.cycle`: the scenario's test sequence as lab's steps.
"""

from __future__ import annotations

from pathlib import Path

from lab.errors import UsageError
from lab.molecule.scenario import DEFAULT_SCENARIO, MOLECULE_DIR, Scenario, load_scenario

__all__ = ["Scenario", "find_scenario"]


def find_scenario(lab_file: Path, name: str | None = None) -> Scenario | None:
    """The Molecule scenario `lab test` runs instead of a lab, or None for the lab at
    ``lab_file``: when there is no lab.yml, a role's ``molecule/<name>/molecule.yml``
    (``default`` unless ``name`` is given). Neither lab.yml nor molecule/ here: None, and
    the lab's own error says what to do."""
    if lab_file.is_file():
        if name is not None:
            raise UsageError(f"--scenario runs a role's Molecule scenario, and here is a lab "
                             f"({lab_file}): run `lab test` without it")
        return None
    folder = lab_file.parent
    if name is None and not (folder / MOLECULE_DIR).is_dir():
        return None
    return load_scenario(folder, name or DEFAULT_SCENARIO)
