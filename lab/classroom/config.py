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

from lab.config import describe
from lab.errors import ConfigError

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
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: not found (write one with `lab class init`)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{file}{where}: invalid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: must be a mapping of fields")
    try:
        spec = ClassSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {describe(exc)}") from None
    return Classroom(file.parent.resolve(), spec)
