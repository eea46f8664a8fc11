"""What a machine must have for lab: one :class:`Check` per prerequisite.

Targets say what they need (``Target.prerequisites``) and `lab doctor` shows it all; both use
this record, which imports nothing of lab, so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One prerequisite: whether it is there, what was found, and how to fix it if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True
