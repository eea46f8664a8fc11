"""``lab init``: write a complete, working example lab into a directory; and variants of a
lab.yml, made through the same validation as any lab.yml."""

from __future__ import annotations

import re
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from lab.config import CONFIG_FILE, LAB_NAME, LabConfig, load_config
from lab.errors import ConfigError, UsageError


def example_dir() -> Path:
    return Path(str(files("lab") / "data" / "example"))


def lab_name_for(directory: Path) -> str:
    """A valid lab name from a directory name: ``My Lab!`` becomes ``my-lab``."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:32].rstrip("-")
    return name or "demo"


def init_lab(directory: Path, name: str | None = None, force: bool = False) -> list[Path]:
    """Copy the example lab into ``directory``; returns the files written."""
    # The name is pasted into lab.yml as it is: anything but a valid lab name could break
    # (or add to) the YAML.
    if name is not None and not LAB_NAME.match(name):
        raise UsageError(
            "lab name must be 1-32 lowercase letters, digits or '-', starting with a letter, "
            f"got {name!r}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CONFIG_FILE).exists() and not force:
        raise UsageError(f"{directory / CONFIG_FILE} already exists (use --force to overwrite)")
    name = name or lab_name_for(directory)
    written = []
    for source in sorted(example_dir().rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        target = directory / source.relative_to(example_dir())
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name == CONFIG_FILE:
            target.write_text(source.read_text().replace("__NAME__", name))
        else:
            shutil.copyfile(source, target)
        written.append(target)
    return written


def edit_lab_yml(path: Path, *, to: Path | None = None, name: str | None = None,
                 target: str | None = None, count: int | None = None, role: str | None = None,
                 listen: int | None = None, step_seconds: float | None = None,
                 balancer: bool = True, release: dict[str, Any] | None = None) -> LabConfig:
    """Write a variant of the lab.yml at ``path`` (to ``to``, else in place) and return it
    validated: the one way `lab demo`, the benchmarks and the tests change a lab, so that a
    variant is checked by ``load_config`` like any lab.yml instead of made by text edits.

    ``count`` is for ``role`` (needed only when there are several); ``listen`` moves the
    balancer's port; ``balancer=False`` takes the balancer out; ``release`` sets fields of
    ``release:`` (steps, gates). Comments are not kept. A bad
    change raises the usual one-line :class:`ConfigError` and leaves the file as it was.
    """
    to = to or path
    label = to.name if to.parent == Path(".") else str(to)  # as load_config names it
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of fields")
    servers = data["servers"] if isinstance(data.get("servers"), dict) else {}
    if name is not None:
        data["name"] = name
    if target is not None:
        data["target"] = target
    if count is not None:
        if role is None and len(servers) != 1:
            raise ConfigError(f"{label}: servers: {len(servers)} roles "
                              f"({', '.join(servers) or 'none'}): say which role gets the count")
        role = role if role is not None else next(iter(servers))
        if not isinstance(servers.get(role), dict):
            raise ConfigError(f"{label}: servers.{role}: no such role "
                              f"(roles: {', '.join(servers) or 'none'})")
        servers[role]["count"] = count
    if not balancer:
        data.pop("balancer", None)
    elif listen is not None:
        if not isinstance(data.get("balancer"), dict):
            raise ConfigError(f"{label}: balancer: there is none to listen on port {listen}")
        data["balancer"]["listen"] = listen
    if step_seconds is not None:
        data.setdefault("release", {})["step_seconds"] = step_seconds
    if release:
        data.setdefault("release", {}).update(release)
    before = to.read_text(encoding="utf-8") if to.exists() else None
    to.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        return load_config(to)
    except ConfigError:
        if before is None:
            to.unlink()
        else:
            to.write_text(before, encoding="utf-8")
        raise
