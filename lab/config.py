"""lab.yml: the one file that describes a lab, validated once, here.

Every other module receives a :class:`LabConfig` and may trust it. A bad file raises
:class:`~lab.errors.ConfigError` with one line that names the file, the field and what was
expected, e.g. ``lab.yml: servers.web.count: must be >= 1, got 0``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from lab.balancers.registry import kinds
from lab.errors import ConfigError
from lab.targets import registry as targets

CONFIG_FILE = "lab.yml"
DEFAULT_IMAGE = "lab/base:bookworm"

# Lab names end up in container, network and image names, file paths and shell commands,
# so they are kept to a set of characters that is safe in all of them. \Z, not $: $ also
# matches before a trailing newline, which would let "web\n" through.
LAB_NAME = re.compile(r"\A(?:[a-z][a-z0-9-]{0,30}[a-z0-9]|[a-z])\Z")
# Roles become Ansible group names, which may not contain '-'.
ROLE_NAME = re.compile(r"\A[a-z][a-z0-9_]{0,19}\Z")

# Numbers are strict: YAML already types them, and lax mode would take `count: true` (or
# `on`) as 1 and `ports: ["80"]` as 80.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthCheck(_Strict):
    """How the balancer and the release gate decide a server is healthy: an HTTP GET."""

    path: str = "/"
    port: Port = 80

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"must be a URL path starting with '/', got {value!r}")
        return value


class Role(_Strict):
    """A group of identical servers: how many, how they are configured and tested."""

    count: int = Field(default=1, ge=1, le=20, strict=True)
    playbook: Path | None = None
    tests: list[Path] = Field(default_factory=list)
    ports: list[Port] = Field(default_factory=list)
    health: HealthCheck | None = None


class Balancer(_Strict):
    """The load balancer in front of one role: HAProxy locally, an ALB on AWS.

    ``kind`` names a registered balancer (lab.balancers.registry); which roles and ports it
    adds to the lab is the balancer's business, not this file's.
    """

    kind: str = Field(default="haproxy", strict=True)
    listen: int = Field(default=8080, ge=1024, le=65535, strict=True)
    routes_to: str

    @field_validator("kind")
    @classmethod
    def _registered(cls, value: str) -> str:
        known = kinds()
        if value not in known:
            raise ValueError(f"must be one of {', '.join(map(repr, known))}, got {value!r}")
        return value


class Pause(_Strict):
    """A pause between canary steps: traffic stays at the step's share, still watched, until
    `lab promote` (``seconds`` None) or until ``seconds`` have passed; `lab abort` rolls back."""

    seconds: float | None = None


DURATION = re.compile(r"\A(\d+(?:\.\d+)?)\s*(s|m|h)?\Z")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, None: 1}


def _step(value: Any) -> Any:
    """One item of ``release.steps``: a percentage, ``pause`` (until `lab promote`), or
    ``{pause: 30s}`` (30 s, or 2m, 1h, a number of seconds)."""
    if value == "pause":
        return Pause()
    if isinstance(value, dict) and list(value) == ["pause"]:
        wait = value["pause"]
        if wait is None:
            return Pause()
        found = DURATION.match(str(wait).strip()) if not isinstance(wait, bool) else None
        seconds = float(found[1]) * UNIT_SECONDS[found[2]] if found else 0.0
        if not 0 < seconds <= 86400:
            raise ValueError(f"a pause lasts from 1s to 24h (30s, 5m, 1h), got {wait!r}")
        return Pause(seconds=seconds)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"must be a whole number (a percent), pause or {{pause: 30s}}, "
                     f"got {value!r}")


Step = Annotated[StrictInt | Pause, BeforeValidator(_step)]


class Hook(_Strict):
    """A check or an action at one phase of a release, like Flagger's webhooks: a shell
    command run in the lab's folder (``run``) or a playbook run on the new generation
    (``playbook``), with the release's facts in its environment (LAB_RELEASE_ID,
    LAB_GENERATION, LAB_PERCENT, LAB_URL, LAB_NEW_SERVERS, LAB_OLD_SERVERS, LAB_HOOK)."""

    run: str | None = Field(default=None, min_length=1)
    playbook: Path | None = None
    timeout: float = Field(default=120.0, gt=0, le=3600, strict=True)

    @model_validator(mode="after")
    def _one_of(self) -> Hook:
        if (self.run is None) == (self.playbook is None):
            raise ValueError("give a hook either `run: COMMAND` or `playbook: FILE`")
        return self


class Hooks(_Strict):
    """The release's hooks by phase. A failing ``pre-rollout`` (before any traffic),
    ``rollout`` (after each step's gates) or ``confirm-promotion`` (before the old generation
    goes) rolls back, with the hook's last line of output as the reason; ``post-rollout``
    (after a promote) and ``rollback`` (after a rollback) only warn when they fail."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    pre_rollout: Hook | None = Field(default=None, alias="pre-rollout")
    rollout: Hook | None = None
    confirm_promotion: Hook | None = Field(default=None, alias="confirm-promotion")
    post_rollout: Hook | None = Field(default=None, alias="post-rollout")
    rollback: Hook | None = None


class ReleasePolicy(_Strict):
    """How a new generation is dipped into traffic, and when it is pulled back."""

    # Percentages of traffic on the new generation, rising to 100; a pause may follow any of
    # them (held at that share until `lab promote`, or for a while: {pause: 30s}).
    steps: list[Step] = Field(default_factory=lambda: [10, 50, 100], min_length=1)
    step_seconds: float = Field(default=5.0, gt=0, le=3600, strict=True)
    max_error_rate: float = Field(default=0.01, ge=0, le=1, strict=True)
    # Latency gates, judged at the end of each step on the new generation's answers only:
    # its p99 at most this many ms, and/or at most this many times the old generation's p99
    # measured in the same step (before the release, at the last step, where the old one
    # takes no traffic).
    max_p99_ms: float | None = Field(default=None, gt=0, le=600_000, strict=True)
    max_p99_ratio: float | None = Field(default=None, ge=1, le=1000, strict=True)
    # Fewer requests than this on the new generation in a step: the step is inconclusive,
    # not passed; ``inconclusive: fail`` rolls back, ``pause`` waits for a person (`lab
    # promote` goes on, `lab abort` rolls back). lab's own probe sends traffic, so the
    # example lab never starves.
    min_requests: int = Field(default=1, ge=0, le=1_000_000, strict=True)
    inconclusive: Literal["fail", "pause"] = "fail"
    hooks: Hooks = Field(default_factory=Hooks)

    @field_validator("steps")
    @classmethod
    def _rising_to_full(cls, steps: list[int | Pause]) -> list[int | Pause]:
        percents = [s for s in steps if isinstance(s, int)]
        if any(not 1 <= s <= 100 for s in percents):
            raise ValueError(f"each step must be a percentage from 1 to 100, got {percents}")
        if percents != sorted(set(percents)) or not percents or percents[-1] != 100:
            raise ValueError(f"must rise strictly and end at 100, got {percents}")
        if isinstance(steps[0], Pause):
            raise ValueError("a pause holds the share of the step before it: put a "
                             "percentage first")
        return steps

    @property
    def percents(self) -> list[int]:
        """The steps' shares of traffic, pauses left out."""
        return [s for s in self.steps if isinstance(s, int)]


class TargetSettings(_Strict):
    """The base of a target's own section of lab.yml (``vagrant:``, ``aws:``): each target
    declares its model (``Target.settings_model``); lab.yml is validated against it here,
    with the same one-line errors as every other field."""


class LabConfig(_Strict):
    """The whole of lab.yml. ``directory`` is where the file lives; paths are relative to it."""

    name: str
    target: str = "docker"  # a registered target (lab.targets.registry)
    image: str = DEFAULT_IMAGE
    servers: dict[str, Role] = Field(min_length=1)
    balancer: Balancer | None = None
    release: ReleasePolicy = Field(default_factory=ReleasePolicy)
    vars: dict[str, Any] = Field(default_factory=dict)
    # Where lab.yml lives (paths are relative to it) and where lab keeps state; set by
    # load_config, not by the file.
    _directory: Path = PrivateAttr(default=Path("."))
    _state_dir: Path | None = PrivateAttr(default=None)
    # Each target's section of the file (`vagrant:`), validated by the target's own model.
    _settings: dict[str, TargetSettings] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _target_sections(cls, data: Any,
                         handler: ModelWrapValidatorHandler[LabConfig]) -> LabConfig:
        """A top-level key named like a registered target with settings (``vagrant:``) is
        that target's section: the target's model validates it, and its errors read like
        any other field's (``vagrant.provider: ...``). Other keys are this model's."""
        if not isinstance(data, dict):
            return handler(data)
        models = _settings_models([key for key in data if isinstance(key, str)])
        rest = {key: value for key, value in data.items() if key not in models}
        errors: list[InitErrorDetails] = []
        config = None
        try:
            config = handler(rest)
        except ValidationError as exc:
            if not models:
                raise
            errors += details_of(exc)
        sections: dict[str, TargetSettings] = {}
        for key, model in models.items():
            try:
                sections[key] = model.model_validate(data[key])
            except ValidationError as exc:
                errors += details_of(exc, (key,))
        if errors or config is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        config._settings.update(sections)
        return config

    @field_validator("target", mode="before")
    @classmethod
    def _registered_target(cls, value: Any) -> Any:
        known = targets.names()
        if value not in known:
            raise ValueError(f"must be one of {_one_of(known)}, got {_short(value)}")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not LAB_NAME.match(value):
            raise ValueError(
                "must be 1-32 lowercase letters, digits or '-', starting with a letter, "
                f"got {value!r}"
            )
        return value

    @field_validator("servers")
    @classmethod
    def _safe_roles(cls, servers: dict[str, Role]) -> dict[str, Role]:
        for role in servers:
            if not ROLE_NAME.match(role):
                raise ValueError(
                    "role names must be 1-20 lowercase letters, digits or '_', starting with a "
                    f"letter (they become Ansible groups), got {role!r}"
                )
        return servers

    @model_validator(mode="after")
    def _balancer_routes_to_a_role(self) -> LabConfig:
        if self.balancer and self.balancer.routes_to not in self.servers:
            raise ValueError(
                f"balancer.routes_to: must name a role in servers ({', '.join(self.servers)}), "
                f"got {self.balancer.routes_to!r}"
            )
        return self

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def state_dir(self) -> Path:
        """Where lab keeps what it knows about this lab: state, keys, inventory, runs."""
        return self._state_dir or self._directory / ".lab"

    def located(self, directory: Path, state_dir: Path | None = None) -> LabConfig:
        """This config, placed in ``directory`` (and keeping state in ``state_dir``)."""
        self._directory = directory
        self._state_dir = state_dir
        return self

    def beside(self, name: str, state_dir: Path, listen: int | None = None) -> LabConfig:
        """A copy under another name and state directory, its balancer (if any) on port
        ``listen``: a lab that runs beside this one without touching it."""
        update: dict[str, Any] = {"name": name}
        if self.balancer is not None and listen is not None:
            update["balancer"] = self.balancer.model_copy(update={"listen": listen})
        return self.model_copy(update=update).located(self.directory, state_dir)

    def settings(self, target: str) -> TargetSettings | None:
        """``target``'s section of lab.yml as its model holds it (the model's defaults when
        the file has none); None for a target that takes no settings."""
        if target not in self._settings:
            model = targets.load(target).settings_model
            if model is None:
                return None
            try:
                self._settings[target] = model()
            except ValidationError as exc:
                raise ConfigError(f"lab.yml: {target}.{describe(exc)}") from None
        return self._settings[target]

    def __getattr__(self, name: str) -> Any:
        """``config.vagrant``: a registered target's settings, named as in lab.yml."""
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            if name.startswith("_") or name not in targets.known():
                raise
            return self.settings(name)

    def health_of(self, role: str) -> HealthCheck:
        """The role's health check; without one, GET / on its first port (or 80)."""
        spec = self.servers[role]
        return spec.health or HealthCheck(port=spec.ports[0] if spec.ports else 80)


def load_config(path: Path | str = CONFIG_FILE, target: str | None = None) -> LabConfig:
    """Read, parse and validate lab.yml; ``target`` overrides the file's target."""
    path = Path(path)
    label = path.name if path.parent == Path(".") else str(path)
    data = read_mapping(path, label, "run `lab init` to create an example lab")
    if target is not None:
        data["target"] = target
    directory = path.resolve().parent
    try:
        config = LabConfig.model_validate(data).located(directory)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe(exc)}") from None
    _check_files(config, label)
    return config


def read_mapping(path: Path, label: str, when_missing: str) -> dict[str, Any]:
    """A YAML file of fields (lab.yml, exercise.yml, class.yml), or a ConfigError in one line
    naming ``label`` (and the line and column of a YAML error); ``when_missing`` says what to
    do when the file is not there."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{label}: not found ({when_missing})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{label}{where}: invalid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of fields, got {_kind(data)}")
    return data


def describe(exc: ValidationError) -> str:
    """Turn pydantic's first error into ``field.path: what was expected, got what``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _location(first["loc"])
    text = _explain(first)
    extra = len(errors) - 1
    more = f" (and {extra} more problem{'s' if extra > 1 else ''})" if extra else ""
    return f"{where}: {text}{more}" if where else f"{text}{more}"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # A key from the file may hold a newline or an escape sequence: show it quoted.
            text = part if part.isprintable() else repr(part)
            out += f".{text}" if out else text
    return out


def _explain(error: Any) -> str:
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    got = f", got {_short(value)}"
    match kind:
        case "missing":
            return "is required"
        case "extra_forbidden":
            return "unknown field (check its spelling; `lab init` writes a complete example)"
        case "greater_than_equal":
            return f"must be >= {ctx['ge']}{got}"
        case "greater_than":
            return f"must be > {ctx['gt']}{got}"
        case "less_than_equal":
            return f"must be <= {ctx['le']}{got}"
        case "too_short":
            return f"must have at least {ctx.get('min_length', 1)} item(s){got}"
        case "int_parsing" | "int_type" | "int_from_float":
            return f"must be a whole number{got}"
        case "float_parsing" | "float_type":
            return f"must be a number{got}"
        case "string_type":
            return f"must be a string{got}"
        case "dict_type" | "model_type" | "model_attributes_type":
            return f"must be a mapping{got}"
        case "list_type":
            return f"must be a list{got}"
        case "literal_error":
            return f"must be one of {ctx['expected']}{got}"
        case "value_error":
            return str(ctx.get("error", error["msg"]))
        case _:
            return f"{error['msg'][0].lower()}{error['msg'][1:]}{got}"


def _settings_models(keys: list[str]) -> dict[str, type[TargetSettings]]:
    """Of lab.yml's top-level keys, those that are a registered target's settings section,
    with the target's model; the target's module is imported only when its key is there."""
    available = targets.known()
    models = {}
    for key in keys:
        if key in available:
            model = targets.load(key).settings_model
            if model is not None:
                models[key] = model
    return models


def details_of(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[InitErrorDetails]:
    """A ValidationError's errors, placed under ``prefix``, to raise again as one error."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        detail: InitErrorDetails = {"type": error["type"], "loc": (*prefix, *error["loc"]),
                                    "input": error["input"]}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return details


def _one_of(names: list[str]) -> str:
    """'a', 'b' or 'c': the choices, as pydantic words a Literal's."""
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _kind(value) if value is None or isinstance(
        value, dict | list
    ) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), repr(value))


def _check_files(config: LabConfig, label: str) -> None:
    """Every playbook and test file lab.yml names must exist, inside or beside the lab."""
    named = [(f"servers.{name}.playbook", role.playbook)
             for name, role in config.servers.items() if role.playbook]
    named += [(f"servers.{name}.tests[{i}]", test) for name, role in config.servers.items()
              for i, test in enumerate(role.tests)]
    hooks = config.release.hooks
    named += [(f"release.hooks.{phase.replace('_', '-')}.playbook", hook.playbook)
              for phase in Hooks.model_fields if (hook := getattr(hooks, phase)) is not None
              and hook.playbook is not None]
    for field, relative in named:
        if not (config.directory / relative).is_file():
            raise ConfigError(f"{label}: {field}: file not found: {relative}")
