"""class.yml: one file an instructor writes (or ``lab class init`` writes) for a whole class.

    name: autumn-workshop          # shown on the progress page
    code: k7f3-q9x2                # the join code attendees type; reports must carry it
    students: [alice, bob, carol]  # or a count: `students: 3` -> student-01 .. student-03
    exercises: [1, 2, 3, 4]        # exercise numbers, in the order the class does them
    target: docker                 # where `lab class up` workspaces run their servers
    serve: {host: 127.0.0.1, port: 8760}

The class's directory is the one holding class.yml: each student's workspace is
``<class dir>/<student>/``, the class's progress is ``<class dir>/class.db``. A bad file is a
:class:`~lab.errors.ConfigError` naming the file and the field, like lab.yml.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lab.config import describe, read_mapping
from lab.errors import ConfigError, UsageError

CLASS_FILE = "class.yml"
DATABASE = "class.db"
DEFAULT_PORT = 8760
# A student's name is a directory and part of a lab's name: lower case, short, no spaces.
STUDENT = r"^[a-z][a-z0-9-]{0,23}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Serve(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=1024, le=65535)


class ClassSpec(_Strict):
    """class.yml, validated."""

    name: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=6, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    students: list[str] = Field(min_length=1, max_length=200)
    exercises: list[int] = Field(min_length=1)
    target: str = "docker"
    serve: Serve = Serve()

    @field_validator("students", mode="before")
    @classmethod
    def _count_or_names(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= 200:
                raise ValueError(f"a count of students is 1 to 200, got {value}")
            return [f"student-{i:02d}" for i in range(1, value + 1)]
        return value

    @field_validator("students")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(STUDENT, name):
                raise ValueError(f"a student's name is lower case letters, digits and '-', "
                                 f"at most 24, starting with a letter (it names a folder), "
                                 f"got {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("two students have the same name")
        return value


@dataclass(frozen=True)
class Classroom:
    """A class: its spec and the directory it lives in."""

    directory: Path
    spec: ClassSpec

    @property
    def database(self) -> Path:
        return self.directory / DATABASE

    def workspace(self, student: str) -> Path:
        return self.directory / student


def new_code() -> str:
    """A join code that is easy to read out in a room: two groups of four."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
    pick = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{pick[:4]}-{pick[4:]}"


def load_class(path: Path) -> Classroom:
    """Read class.yml (``path`` is the file or the directory holding it)."""
    file = path / CLASS_FILE if path.is_dir() else path
    data = read_mapping(file, str(file), "write one with `lab class init`")
    try:
        spec = ClassSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {describe(exc)}") from None
    return Classroom(file.parent.resolve(), spec)


def write_class(directory: Path, name: str, students: list[str] | int, exercises: list[int],
                target: str = "docker") -> Classroom:
    """Write a new class.yml in ``directory`` (``lab class init``), with a fresh join code;
    an existing class.yml is never overwritten (its code is what attendees joined with)."""
    file = directory / CLASS_FILE
    if target != "docker":
        raise UsageError(f"--target: workspaces of a class run on 'docker' so far, got {target!r}")
    if file.exists():
        raise UsageError(f"{file}: already exists (a class keeps its join code; edit it, or "
                         "choose another directory)")
    data = {"name": name, "code": new_code(), "students": students, "exercises": exercises,
            "target": target}
    try:
        spec = ClassSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {describe(exc)}") from None
    directory.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(spec.model_dump(), sort_keys=False)
    file.write_text(f"# A class (lab class init): `lab class up` makes a workspace per "
                    f"student.\n{text}", encoding="utf-8")
    return Classroom(directory.resolve(), spec)


def exercise_numbers(text: str | None) -> list[int]:
    """``1-8`` (the course's exercises in that range), ``1,3,4`` (each must exist), or None
    (the whole course): the exercises a new class does, in order."""
    from lab.course.exercises import course, find_exercise

    numbers = [exercise.number for exercise in course()]
    if text is None:
        return numbers
    chosen: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise UsageError(f"--exercises: a list of numbers and ranges like 1-4,8, "
                             f"got {text!r}")
        if dash:
            found = [n for n in numbers if int(low) <= n <= int(high)]
            if not found:
                raise UsageError(f"--exercises: no exercise in {part} (there are: "
                                 f"{', '.join(map(str, numbers))})")
            chosen += found
        else:
            chosen.append(find_exercise(int(low)).number)
    if not chosen:
        raise UsageError("--exercises: give at least one exercise, like 1-4")
    return list(dict.fromkeys(chosen))
