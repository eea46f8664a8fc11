"""class.yml: one file an instructor writes (or ``lab class init`` writes) for a whole class.

    name: autumn-workshop          # shown on the progress page
    code: k7f3-q9x2                # the join code attendees type; reports must carry it
    students: [alice, bob, carol]  # or a count: `students: 3` -> student-01 .. student-03
    exercises: [1, 2, 3, 4]        # exercise numbers, in the order the class does them
    target: docker                 # where the workspaces' servers run: docker or aws
    serve: {host: 127.0.0.1, port: 8760}

A class on AWS (``target: aws``) gives each seat its own lab in one AWS account, and needs an
``aws:`` mapping: lab.yml's own ``aws:`` section (region, ssh_cidr, lifetime, instance_type,
...), validated by the aws target's model and written into every seat's lab.yml, plus one
rule of its own: ``region`` is required (one of AWS's), so that every seat,
``lab class status`` and ``lab class destroy`` look in the same region::

    target: aws
    aws: {region: eu-west-1, ssh_cidr: 203.0.113.0/24, lifetime: 4h}

The class's directory is the one holding class.yml: each student's workspace is
``<class dir>/<student>/``, the class's progress is ``<class dir>/class.db``. A bad file is a
:class:`~lab.errors.ConfigError` naming the file and the field, like lab.yml.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from lab.config import TargetSettings, describe, details_of, read_mapping
from lab.course.exercises import course, find_exercise
from lab.errors import ConfigError, UsageError
from lab.targets import registry as targets

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
    target: Literal["docker", "aws"] = "docker"
    # lab.yml's `aws:` as the aws target's model (AwsSettings) holds it: every seat's lab.yml
    # gets it (see _aws_section). Typed by the base so that docker classes never import boto3.
    aws: SerializeAsAny[TargetSettings] | None = None
    serve: Serve = Serve()

    @model_validator(mode="wrap")
    @classmethod
    def _aws_section(cls, data: Any, handler: ModelWrapValidatorHandler[ClassSpec]) -> ClassSpec:
        """``aws:`` is checked by the aws target's own model, so a class accepts exactly what
        a seat's lab.yml will (one set of rules, errors named ``aws.ssh_cidr`` like lab.yml's);
        a class also needs its region, and the section makes sense only with ``target: aws``."""
        if not isinstance(data, dict) or (data.get("target") != "aws" and "aws" not in data):
            return handler(data)
        section, errors = _aws_settings(data)
        spec = None
        try:
            spec = handler(data | {"aws": section})
        except ValidationError as exc:
            errors += details_of(exc)
        if errors or spec is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return spec

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


def _aws_settings(data: dict[str, Any]) -> tuple[TargetSettings | None, list[InitErrorDetails]]:
    """class.yml's ``aws:`` as the aws target's model holds it, or what is wrong with it."""
    target = data.get("target", "docker")
    if target != "aws":
        return None, [_problem(("aws",), data["aws"], f"is for `target: aws` only (this "
                               f"class's target is {target}): remove it, or set target: aws")]
    try:
        section = targets.load("aws").settings_model.model_validate(data.get("aws") or {})
    except ValidationError as exc:
        return None, details_of(exc, ("aws",))
    if section.region is None:
        return None, [_problem(("aws", "region"), None, "is required for a class: every "
                               "seat's lab, `lab class status` and `destroy` look in it, "
                               "e.g. eu-west-1")]
    if section.region not in _regions():
        return None, [_problem(("aws", "region"), section.region, "is not an AWS region, "
                               f"got {section.region!r} (e.g. eu-west-1, us-east-1)")]
    return section, []


def _regions() -> frozenset[str]:
    """AWS's regions, from botocore's own data (imported only for a class on aws)."""
    from lab.aws.api import regions

    return regions()


def _problem(loc: tuple[str, ...], value: Any, message: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": value,
            "ctx": {"error": ValueError(message)}}


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
    return Classroom(file.parent.resolve(), _validated(file, data))


def _validated(file: Path, data: dict[str, Any]) -> ClassSpec:
    try:
        return ClassSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {describe(exc)}") from None


def write_class(directory: Path, name: str, students: list[str] | int, exercises: list[int],
                target: str = "docker", ssh_cidr: str | None = None,
                region: str | None = None) -> Classroom:
    """Write a new class.yml in ``directory`` (``lab class init``), with a fresh join code;
    an existing class.yml is never overwritten (its code is what attendees joined with).
    On aws, ``region`` defaults to boto3's (AWS_REGION, the profile's), written down so
    that every seat and every later command use that one."""
    file = directory / CLASS_FILE
    if target != "aws" and (ssh_cidr or region):
        raise UsageError("--ssh-cidr and --region are for a class on aws (--target aws)")
    if file.exists():
        raise UsageError(f"{file}: already exists (a class keeps its join code; edit it, or "
                         "choose another directory)")
    data: dict[str, Any] = {"name": name, "code": new_code(), "students": students,
                            "exercises": exercises, "target": target}
    if target == "aws":
        from lab.aws.api import default_region

        data["aws"] = {key: value for key, value in
                       {"region": region or default_region(), "ssh_cidr": ssh_cidr}.items()
                       if value is not None}
    spec = _validated(file, data)
    directory.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_as_written(spec), sort_keys=False)
    file.write_text(f"# A class (lab class init): `lab class up` makes a workspace per "
                    f"student.\n{text}", encoding="utf-8")
    return Classroom(directory.resolve(), spec)


def _as_written(spec: ClassSpec) -> dict[str, Any]:
    """class.yml's fields: ``aws:`` only on aws, and holding only what was given (the
    target's defaults stay the target's, as in a lab.yml)."""
    fields = spec.model_dump()
    if spec.aws is None:
        del fields["aws"]
    else:
        fields["aws"] = seat_settings(spec)
    return fields


def seat_settings(spec: ClassSpec) -> dict[str, Any]:
    """The ``aws:`` section every seat's lab.yml gets: class.yml's, as written there."""
    assert spec.aws is not None  # a class on aws has one (validated)
    return spec.aws.model_dump(mode="json", exclude_unset=True)


def region_of(spec: ClassSpec) -> str:
    """The region of a class on aws, where every seat's lab runs (required there)."""
    return str(seat_settings(spec)["region"])


def exercise_numbers(text: str | None, target: str = "docker") -> list[int]:
    """``1-8`` (the course's exercises in that range), ``1,3,4`` (each must exist), or None
    (the whole course): the exercises a new class does, in order. On aws, only those that
    start without servers (lab.classroom.cloud): the whole course's, or each one given."""
    numbers = [exercise.number for exercise in course()]
    if target == "aws":
        return exercises_for_aws(numbers if text is None else exercise_numbers(text),
                                 chosen=text is not None)
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


# which exercises ------------------------------------------------------------------------------


def servers_at_start(number: int) -> list[str]:
    """The actions exercise ``number``'s start runs on servers it makes ([] for 09)."""
    return [action.do for action in find_exercise(number).spec.start]


def without_servers() -> list[int]:
    """The course's exercises that start without servers: what a class on aws can start."""
    return [exercise.number for exercise in course() if not exercise.spec.start]


def require_no_servers(number: int) -> None:
    """UsageError when exercise ``number`` starts with servers, which a class on aws never
    makes for its attendees (see lab.classroom.cloud)."""
    actions = servers_at_start(number)
    if actions:
        raise UsageError(f"exercise {number:02d} starts with servers made for it "
                         f"({', '.join(actions)}), which a class on aws never makes: choose "
                         "exercises that start without servers ("
                         f"{', '.join(f'{n:02d}' for n in without_servers())}), or a class on "
                         "docker")


def exercises_for_aws(numbers: list[int], chosen: bool) -> list[int]:
    """A new aws class's exercises: of the course's (``chosen`` False), those that start
    without servers; of the instructor's (``--exercises``), each must."""
    if chosen:
        for number in numbers:
            require_no_servers(number)
        return numbers
    return [number for number in numbers if number in without_servers()]
