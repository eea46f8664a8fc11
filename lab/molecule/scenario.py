"""A role's Molecule scenario: ``molecule/<name>/molecule.yml`` read and checked once, here.

Only what lab acts on is read (driver, platforms, provisioner, verifier, scenario); every other
key (lint, dependency, a platform's ``command`` or ``volumes``...) is left as its authors wrote it
for Molecule. A bad file raises :class:`~lab.errors.ConfigError` in one line naming the file
and the field, as lab.yml's do: ``molecule/default/molecule.yml: platforms[1].name: is
required``. Like Molecule, the file's ``$VAR`` and ``${VAR:-default}`` are read from the
environment first, with Molecule's own variables (MOLECULE_SCENARIO_NAME...) among them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
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

MOLECULE_DIR = "molecule"
MOLECULE_FILE = "molecule.yml"
DEFAULT_SCENARIO = "default"
# Every action Molecule knows, and the ones lab runs; the others are skipped with a note.
ACTIONS = ("dependency", "lint", "cleanup", "destroy", "syntax", "create", "prepare",
           "converge", "idempotence", "side_effect", "verify", "check")
SUPPORTED = ("create", "prepare", "converge", "idempotence", "side_effect", "verify", "destroy")
# Molecule's own default test_sequence.
TEST_SEQUENCE = ["dependency", "cleanup", "destroy", "syntax", "create", "prepare", "converge",
                 "idempotence", "side_effect", "verify", "cleanup", "destroy"]
PLAYBOOKS = ("prepare", "converge", "side_effect", "verify")
DRIVERS = ("docker", "podman")  # whose platforms are containers: lab makes them its own way
SCENARIO_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")

Name = Annotated[str, Field(min_length=1, strict=True)]
Scalar = str | int | float | bool


class _Loose(BaseModel):
    """Unknown keys are Molecule's business (or a driver's), not errors."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Driver(_Loose):
    # Molecule's default driver (delegated: the scenario's create.yml makes the instances)
    # is refused as any other that is not docker or podman.
    name: str = Field(default="default", strict=True, validate_default=True)

    @field_validator("name")
    @classmethod
    def _containers(cls, value: str) -> str:
        if value not in DRIVERS:
            raise ValueError(f"lab makes a scenario's instances as its own containers, from "
                             f"driver docker or podman platforms; got {value!r}")
        return value


class Platform(_Loose):
    name: Name
    image: str | None = Field(default=None, strict=True)
    groups: list[Name] = Field(default_factory=list)
    children: list[Name] = Field(default_factory=list)


class Playbooks(_Loose):
    """Where a scenario's playbooks are, relative to its folder (Molecule's names by default)."""

    prepare: str | None = Field(default="prepare.yml", strict=True)
    converge: str | None = Field(default="converge.yml", strict=True)
    side_effect: str | None = Field(default="side_effect.yml", strict=True)
    verify: str | None = Field(default="verify.yml", strict=True)


class InventoryVars(_Loose):
    host_vars: dict[str, dict[str, Any]] = Field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Provisioner(_Loose):
    name: Literal["ansible"] = "ansible"
    playbooks: Playbooks = Field(default_factory=Playbooks)
    env: dict[str, Scalar] = Field(default_factory=dict)
    inventory: InventoryVars = Field(default_factory=InventoryVars)
    config_options: dict[str, dict[str, Scalar]] = Field(default_factory=dict)


class AnsibleSection(_Loose):
    """Newer Molecule's ``ansible:`` section, where playbooks, env and cfg moved to."""

    playbooks: Playbooks | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    cfg: dict[str, dict[str, Scalar]] = Field(default_factory=dict)


class Verifier(_Loose):
    name: Literal["ansible", "testinfra"] = "ansible"
    enabled: bool = Field(default=True, strict=True)
    directory: str = Field(default="tests", strict=True)
    options: dict[str, Scalar | None] = Field(default_factory=dict)
    env: dict[str, Scalar] = Field(default_factory=dict)


class ScenarioSection(_Loose):
    test_sequence: list[str] = Field(default_factory=lambda: list(TEST_SEQUENCE))

    @field_validator("test_sequence")
    @classmethod
    def _known(cls, sequence: list[str]) -> list[str]:
        for action in sequence:
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r} (Molecule's: {', '.join(ACTIONS)})")
        return sequence


class MoleculeFile(_Loose):
    driver: Driver
    platforms: list[Platform] = Field(min_length=1)
    provisioner: Provisioner = Field(default_factory=Provisioner)
    ansible: AnsibleSection = Field(default_factory=AnsibleSection)
    verifier: Verifier = Field(default_factory=Verifier)
    scenario: ScenarioSection = Field(default_factory=ScenarioSection)

    @model_validator(mode="before")
    @classmethod
    def _default_driver(cls, data: Any) -> Any:
        """No ``driver:`` is Molecule's default driver, checked as if it were written."""
        if isinstance(data, dict) and data.get("driver") is None:
            return {**data, "driver": {}}
        return data

    @field_validator("platforms")
    @classmethod
    def _unique(cls, platforms: list[Platform]) -> list[Platform]:
        seen: set[str] = set()
        for platform in platforms:
            if platform.name in seen:
                raise ValueError(f"two platforms are named {platform.name!r}: each is one "
                                 "instance, named once")
            seen.add(platform.name)
        return platforms


@dataclass(frozen=True)
class RoleUnderTest:
    """The role in the project folder, named as Molecule names it: ``namespace.role_name``
    from meta/main.yml's galaxy_info (the folder's name without ``ansible-`` otherwise)."""

    folder: Path
    name: str  # how a playbook names it: `roles: [ns.name]`

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Scenario:
    """What lab runs of one Molecule scenario; paths are absolute."""

    name: str
    project: Path  # the role's folder
    file: Path  # molecule/<name>/molecule.yml
    label: str  # the file as messages name it
    role: RoleUnderTest
    config: MoleculeFile
    playbooks: dict[str, Path | None] = field(default_factory=dict)  # found or None

    @property
    def directory(self) -> Path:
        return self.file.parent

    @property
    def platforms(self) -> list[Platform]:
        return self.config.platforms

    @property
    def sequence(self) -> list[str]:
        return self.config.scenario.test_sequence

    @property
    def verifier(self) -> Verifier:
        return self.config.verifier

    @property
    def env(self) -> dict[str, str]:
        """The provisioner's environment (``ansible.env`` over ``provisioner.env``)."""
        merged = self.config.provisioner.env | self.config.ansible.env
        return {key: _text(value) for key, value in merged.items()}

    @property
    def cfg(self) -> dict[str, dict[str, Scalar]]:
        """ansible.cfg options (``ansible.cfg`` over ``provisioner.config_options``)."""
        merged = {section: dict(values) for section, values in
                  self.config.provisioner.config_options.items()}
        for section, values in self.config.ansible.cfg.items():
            merged.setdefault(section, {}).update(values)
        return merged


def scenario_file(project: Path, name: str) -> Path:
    return project / MOLECULE_DIR / name / MOLECULE_FILE


def scenarios_in(project: Path) -> list[str]:
    """The scenarios a role has: each folder of molecule/ with a molecule.yml."""
    return sorted(path.parent.name for path in project.glob(f"{MOLECULE_DIR}/*/{MOLECULE_FILE}"))


def load_scenario(project: Path, name: str = DEFAULT_SCENARIO,
                  environ: dict[str, str] | None = None) -> Scenario:
    """Read and check ``molecule/<name>/molecule.yml`` of the role in ``project``."""
    if not SCENARIO_NAME.match(name):
        raise UsageError(f"--scenario {name!r}: a scenario is a folder of molecule/ "
                         "(letters, digits, '.', '_', '-')")
    project = project.resolve()
    path = scenario_file(project, name)
    label = _label(path)
    if not path.is_file():
        found = scenarios_in(project)
        here = (f"scenarios here: {', '.join(found)}; choose one with --scenario" if found
                else "no lab.yml and no Molecule scenario here: `lab init` writes a lab")
        raise ConfigError(f"{label}: not found ({here})")
    environ = dict(os.environ if environ is None else environ) | molecule_names(project, name)
    data = _interpolated(path, label, environ)
    try:
        config = MoleculeFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe(exc)}") from None
    playbooks = (config.ansible.playbooks or config.provisioner.playbooks).model_dump()
    found_playbooks = {}
    for step in PLAYBOOKS:
        relative = playbooks[step]
        found_playbooks[step] = (path.parent / relative if relative and
                                 (path.parent / relative).is_file() else None)
    return Scenario(name, project, path, label, role_under_test(project), config,
                    found_playbooks)


def molecule_names(project: Path, name: str) -> dict[str, str]:
    """The variables Molecule sets before it reads molecule.yml, so ``$MOLECULE_...`` in it
    reads as under Molecule (the ephemeral directory is lab's: see lab.molecule.inventory)."""
    return {"MOLECULE_PROJECT_DIRECTORY": str(project),
            "MOLECULE_SCENARIO_NAME": name,
            "MOLECULE_SCENARIO_DIRECTORY": str(project / MOLECULE_DIR / name),
            "MOLECULE_FILE": str(scenario_file(project, name)),
            "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral_directory(project, name))}


def state_directory(project: Path, name: str) -> Path:
    """Where lab keeps the scenario's servers, keys, runs and Molecule's files."""
    return project / ".lab" / f"molecule-{name}"


def ephemeral_directory(project: Path, name: str) -> Path:
    """MOLECULE_EPHEMERAL_DIRECTORY: the inventory, ansible.cfg and roles path lab writes."""
    return state_directory(project, name) / "ephemeral"


def role_under_test(project: Path) -> RoleUnderTest:
    """The role's name as Molecule (through ansible-compat) resolves it from meta/main.yml."""
    meta = project / "meta" / "main.yml"
    info: dict[str, Any] = {}
    if meta.is_file():
        label = _label(meta)
        galaxy = read_mapping(meta, label, "").get("galaxy_info") or {}
        if not isinstance(galaxy, dict):
            raise ConfigError(f"{label}: galaxy_info: must be a mapping")
        for key in ("namespace", "role_name", "author"):
            value = galaxy.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{label}: galaxy_info.{key}: must be a string, got "
                                  f"{type(value).__name__}")
        info = galaxy
    namespace = info.get("namespace") or info.get("author") or ""
    if re.match(r"^\w+ \w+", namespace):  # an author's full name, not a Galaxy namespace
        namespace = ""
    name = info.get("role_name") or project.name.replace("ansible-", "").split(".")[-1]
    return RoleUnderTest(project, f"{namespace}.{name}" if namespace else name)


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<sep>:?-)"
                       r"(?P<default>[^}]*))?\}|(?P<named>[A-Za-z_]\w*))")


def interpolate(text: str, environ: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR-default}``, ``${VAR:-default}`` and ``$$``, as Molecule
    reads them in molecule.yml (an unset variable without a default is empty)."""

    def value(found: re.Match[str]) -> str:
        if found["escaped"]:
            return "$"
        name = found["braced"] or found["named"]
        current = environ.get(name)
        if found["sep"] == ":-" and not current:
            return found["default"]
        if found["sep"] == "-" and current is None:
            return found["default"]
        return current or ""

    return _VARIABLE.sub(value, text)


def _interpolated(path: Path, label: str, environ: dict[str, str]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(interpolate(text, environ))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{label}{where}: invalid YAML: "
                          f"{getattr(exc, 'problem', None) or 'not valid YAML'}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of fields, got "
                          f"{'nothing' if data is None else type(data).__name__}")
    return data


def _label(path: Path) -> str:
    """``path`` as a message names it: relative to where lab runs, when it is below it."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
