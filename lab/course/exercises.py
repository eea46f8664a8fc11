"""The course: exercise folders, their exercise.yml validated once, here.

An exercise is ``exercises/NN-slug/`` (README.md, exercise.yml, checks.py, start/, wrong/)
with its finished files in ``solutions/NN-slug/``; ``exercises/README.md`` is the format an
instructor writes to. A bad exercise.yml raises :class:`~lab.errors.ConfigError` with one line
naming the file and the field, like lab.yml does.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lab.config import describe, read_mapping
from lab.errors import ConfigError, UsageError
from lab.targets import registry as targets

if TYPE_CHECKING:
    from lab.state import ExerciseProgress

FOLDER = re.compile(r"\A(\d\d)-([a-z0-9]+(?:-[a-z0-9]+)*)\Z")
SERVER = re.compile(r"\A[a-z][a-z0-9_]{0,19}-\d+\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(_Strict):
    """One step of making a state: a word (``up``, ``provision``, ``drift``, ``destroy``,
    ``verify``, ``bake``, ``release``, ``sweep``) or ``{ssh: web-1, run: COMMAND}``, a shell
    command run as root on one server (how a hand-made change is made). The release forms
    ``{release: {VAR: VALUE}}`` (``lab release --set``), ``{release: baked}`` (``lab release
    --from-image`` the image the last ``bake`` made), ``untested: true`` beside either
    (``--untested``), and ``{call: FUNCTION}``, a function of
    checks.py for what only this run knows (the figures ``lab history`` shows)."""

    do: Literal["up", "provision", "drift", "destroy", "ssh", "verify", "bake", "release",
                "call", "sweep"] = "ssh"
    ssh: str | None = None
    run: str | None = None
    release: dict[str, Any] | Literal["baked"] | None = None
    untested: bool = False  # with ``release``: `lab release --untested`
    call: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]*$")

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"do": value}
        if isinstance(value, dict) and "do" not in value:
            if "release" in value:  # `release:` with nothing under it: no vars
                return {"do": "release"} | value | {"release": value["release"] or {}}
            if "call" in value:
                return {"do": "call"} | value
        return value

    @property
    def from_image(self) -> bool:
        return self.release == "baked"

    @field_validator("release", mode="before")
    @classmethod
    def _release_vars(cls, value: Any) -> Any:
        if value is None or value == "baked" or isinstance(value, dict):
            return value
        kind = "a list" if isinstance(value, list) else repr(value)
        raise ValueError(f"must be a mapping of vars ({{VAR: VALUE}}) or `baked`, got {kind}")

    @field_validator("ssh")
    @classmethod
    def _server_name(cls, value: str | None) -> str | None:
        if value is not None and not SERVER.match(value):
            raise ValueError(f"must name a server like web-1, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ssh_has_both(self) -> Action:
        if self.do == "ssh" and not (self.ssh and self.run):
            raise ValueError("an ssh action is `{ssh: SERVER, run: COMMAND}`")
        if self.do == "call" and not self.call:
            raise ValueError("a call action is `{call: FUNCTION}`, a function of checks.py")
        if self.do == "release" and (self.ssh or self.run):
            raise ValueError("a release action is `release` or `{release: {VAR: VALUE}}`")
        return self


class Goal(_Strict):
    check: str  # a function in checks.py
    goal: str = Field(min_length=1)  # what the attendee reads beside pass / FAIL
    # `lab exercise hint` while this goal is the first the last check failed: gentle first,
    # the literal fix last (the feedback's `next:` only says where to look).
    hints: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


class WrongAnswer(_Strict):
    """A mistake newcomers make: files over the solution's, actions, and what check says."""

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    why: str = Field(min_length=1)
    then: list[Action] = Field(default_factory=list)
    feedback: str = Field(min_length=1)


class ExerciseSpec(_Strict):
    """exercise.yml."""

    title: str = Field(min_length=1)
    minutes: int = Field(ge=1, le=60, strict=True)
    summary: str = ""
    goals: list[Goal] = Field(min_length=1)
    hints: list[str] = Field(default_factory=list)
    start: list[Action] = Field(default_factory=list)
    start_feedback: str = Field(min_length=1)
    solution: list[Action] = Field(default_factory=list)
    wrong: list[WrongAnswer] = Field(default_factory=list)
    # Targets the exercise runs on beyond the start's (09: aws): `start` checks what they
    # need (credentials, region) before laying anything down.
    targets: list[str] = Field(default_factory=list)

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, names: list[str]) -> list[str]:
        known = targets.known()
        for name in names:
            if name not in known:
                raise ValueError(f"must be targets lab knows ({', '.join(known)}), got {name!r}")
        return names


@dataclass(frozen=True)
class Exercise:
    """One exercise of the course: its spec, its folders and its checks."""

    number: int
    slug: str
    folder: Path
    spec: ExerciseSpec
    checks: dict[str, Callable[..., Any]]
    calls: dict[str, Callable[..., Any]] = field(default_factory=dict)  # `call:` actions

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def start_dir(self) -> Path:
        return self.folder / "start"

    @property
    def solution_dir(self) -> Path:
        return self.folder.parent.parent / "solutions" / self.folder.name

    def wrong_dir(self, name: str) -> Path:
        return self.folder / "wrong" / name

    @property
    def readme(self) -> Path:
        """What the attendee reads; copied into the workspace as its README.md."""
        return self.folder / "README.md"

    def goal(self, check: str | None) -> Goal | None:
        """The goal whose check is named ``check`` (None for None, or a goal the exercise
        no longer has)."""
        return next((g for g in self.spec.goals if g.check == check), None)

    def hints_for(self, progress: ExerciseProgress) -> tuple[Goal | None, list[str], int]:
        """The hints `lab exercise hint` gives now, and how many of them were read: the own
        hints of the first goal the last check failed, else (no check yet, a goal without
        hints) the exercise's, with goal None."""
        goal = self.goal(progress.failing)
        if goal is not None and goal.hints:
            return goal, goal.hints, progress.goal_hints.get(goal.check, 0)
        return None, self.spec.hints, progress.general_hints

    def first_step(self) -> str:
        """The first thing to do, from README.md: see :func:`first_step`."""
        return first_step(self.readme.read_text(encoding="utf-8")) if self.readme.is_file() \
            else ""

    def wrong_answer(self, name: str) -> WrongAnswer:
        for answer in self.spec.wrong:
            if answer.name == name:
                return answer
        raise UsageError(f"exercise {self.number:02d} has no wrong answer {name!r}")


@dataclass(frozen=True)
class Hint:
    """A hint as `lab exercise hint` gives it: its number from 1, of how many, and the goal
    it helps with (None: one of the exercise's own). Number 0 when none is left; the text
    then says where to go from there."""

    number: int
    of: int
    text: str
    goal: Goal | None = None


_STEP = re.compile(r"^\d+\. +(\S.*)$")
_FENCE = "```"
_SHELL = ("", "sh", "bash", "console", "shell")


def first_step(readme: str) -> str:
    """The first thing an exercise asks, as `lab exercise start` prints it, from its README:
    the first numbered step (a line ``N. ...``) that is not starting the exercise (one naming
    `lab exercise start` is skipped: that is done), its first paragraph on one line. When
    that paragraph ends with ``:`` before a code block, a shell block (sh, bash, console)
    gives its first command (not a comment, not a ``cd``: the attendee is in the workspace),
    other code (yaml, python) is pointed at: ``: see README.md``. "" without a numbered step."""
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        match = _STEP.match(line)
        if match is None or "lab exercise start" in line:
            continue
        words = [match.group(1).strip()]
        rest = lines[i + 1:]
        while rest and rest[0].strip() and not rest[0].strip().startswith(_FENCE):
            words.append(rest.pop(0).strip())
        step = " ".join(words)
        while rest and not rest[0].strip():
            rest.pop(0)
        if not step.endswith(":") or not rest or not rest[0].strip().startswith(_FENCE):
            return step
        language = rest[0].strip()[len(_FENCE):].strip().lower()
        command = _first_command(rest[1:]) if language in _SHELL else ""
        return f"{step} `{command}`" if command else f"{step} see README.md"
    return ""


def _first_command(block: list[str]) -> str:
    for line in block:
        text = line.strip()
        if text.startswith(_FENCE):
            return ""
        text = re.split(r"\s+#", text, maxsplit=1)[0].strip()
        if text and not text.startswith("#") and not text.startswith("cd "):
            return text
    return ""


# The course as data of the package: in a checkout a link to its top-level exercises/ (the
# path shown is the real one), in an installed wheel the files themselves.
PACKAGED = Path(__file__).parent / "data" / "exercises"


def course_dir() -> Path:
    """Where the exercises are: ``LAB_COURSE`` (a course folder of one's own, laid out as
    exercises/ is), else the course lab ships with (solutions beside it, in ../solutions)."""
    configured = os.environ.get("LAB_COURSE")
    return Path(configured) if configured else PACKAGED.resolve()


def course(root: Path | None = None) -> list[Exercise]:
    """Every exercise of the course, in order; a malformed one is a ConfigError."""
    root = root or course_dir()
    if not root.is_dir():
        raise ConfigError(f"{root}: no exercises here (set LAB_COURSE to the course's folder)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and FOLDER.match(p.name))
    return [load_exercise(folder) for folder in folders]


def find_exercise(number: int, root: Path | None = None) -> Exercise:
    for exercise in course(root):
        if exercise.number == number:
            return exercise
    known = ", ".join(str(e.number) for e in course(root))
    raise UsageError(f"no exercise {number} (there are: {known})")


def load_exercise(folder: Path) -> Exercise:
    """Read and validate one exercise folder: exercise.yml, checks.py, start/, wrong/."""
    match = FOLDER.match(folder.name)
    if not match:
        raise ConfigError(f"{folder}: an exercise folder is named NN-slug, like 02-servers-as-code")
    label = f"{folder.parent.name}/{folder.name}/exercise.yml"
    path = folder / "exercise.yml"
    data = read_mapping(path, label, "every exercise has one: title, goals, hints")
    try:
        spec = ExerciseSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe(exc)}") from None
    module = _import_checks(folder)
    exercise = Exercise(int(match.group(1)), match.group(2), folder, spec,
                        _checks(module, spec, label), _calls(module, spec, label))
    _check_folders(exercise, label)
    return exercise


def _checks(module: ModuleType, spec: ExerciseSpec,
            label: str) -> dict[str, Callable[..., Any]]:
    """The goal functions of checks.py, each checked to exist."""
    found = {}
    for i, goal in enumerate(spec.goals):
        function = getattr(module, goal.check, None)
        if not callable(function):
            raise ConfigError(f"{label}: goals[{i}].check: no function {goal.check!r} in "
                              "checks.py")
        found[goal.check] = function
    return found


def _calls(module: ModuleType, spec: ExerciseSpec,
           label: str) -> dict[str, Callable[..., Any]]:
    """The functions of checks.py that ``call:`` actions name, each checked to exist."""
    found = {}
    lists = {"start": spec.start, "solution": spec.solution,
             **{f"wrong[{i}].then": w.then for i, w in enumerate(spec.wrong)}}
    for where, actions in lists.items():
        for i, action in enumerate(actions):
            if action.do != "call":
                continue
            function = getattr(module, action.call or "", None)
            if not callable(function):
                raise ConfigError(f"{label}: {where}[{i}].call: no function {action.call!r} "
                                  "in checks.py")
            found[action.call or ""] = function
    return found


def _import_checks(folder: Path) -> ModuleType:
    path = folder / "checks.py"
    if not path.is_file():
        raise ConfigError(f"{folder.name}/checks.py: not found (one function per goal)")
    name = f"lab_exercise_checks_{folder.name.replace('-', '_')}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ConfigError(f"{folder.name}/checks.py:{exc.lineno}: syntax error: {exc.msg}") \
            from None
    return module


def _check_folders(exercise: Exercise, label: str) -> None:
    if not (exercise.start_dir / "lab.yml").is_file():
        raise ConfigError(f"{exercise.id}/start/lab.yml: not found (every exercise starts from "
                          "a lab)")
    for i, answer in enumerate(exercise.spec.wrong):
        if not exercise.wrong_dir(answer.name).is_dir() and not answer.then:
            raise ConfigError(f"{label}: wrong[{i}]: neither files in wrong/{answer.name}/ nor "
                              "actions in `then:`")
