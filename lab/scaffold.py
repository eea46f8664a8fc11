"""``lab init``: write a complete, working example lab into a directory."""

from __future__ import annotations

import re
import shutil
from importlib.resources import files
from pathlib import Path

from lab.config import CONFIG_FILE, LAB_NAME
from lab.errors import UsageError


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
