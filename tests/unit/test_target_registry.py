"""Targets are found by name, and each validates its own section of lab.yml: a target from
another package (the `lab.targets` entry point group) is accepted by `target:` and its
settings give the same one-line errors as lab's own fields, without config.py knowing it."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field
from typer.testing import CliRunner

import lab.targets.registry
from lab.cli import app
from lab.config import LabConfig, TargetSettings, load_config
from lab.doctor import run_checks
from lab.errors import ConfigError, UsageError
from lab.events import Listener, ignore
from lab.prerequisites import Check
from lab.state import ServerRecord
from lab.targets.base import ServerSpec, Target, get_target
from lab.targets.registry import names


class CloudSettings(TargetSettings):
    """``cloud:`` in lab.yml, as a third-party target would declare it."""

    region: Literal["north", "south"] = "north"
    size: int = Field(default=1, ge=1, le=8, strict=True)


class CloudTarget(Target):
    """A target that lab does not ship: only what registration and validation need."""

    name = "cloud"
    settings_model = CloudSettings

    def create(self, specs: list[ServerSpec], on_event: Listener = ignore) -> list[ServerRecord]:
        return []

    def list(self) -> list[ServerRecord]:
        return []

    def destroy(self, names: list[str] | None = None, on_event: Listener = ignore) -> list[str]:
        return []


class PlainTarget(CloudTarget):
    """A target that takes no settings."""

    name = "plain"
    settings_model = None


@pytest.fixture
def built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the fakes the way lab's own targets are: by name, as module:attribute."""
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "cloud",
                        "test_target_registry:CloudTarget")
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "plain",
                        "test_target_registry:PlainTarget")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yml"
    path.write_text("name: demo\nservers: {web: {}}\n" + text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_a_registered_target_is_accepted_with_its_settings(tmp_path: Path,
                                                           built_in: None) -> None:
    config = load_config(write(tmp_path, "target: cloud\ncloud: {region: south, size: 4}\n"))
    assert config.target == "cloud"
    assert config.settings("cloud") == CloudSettings(region="south", size=4)
    assert config.cloud.size == 4  # named as in lab.yml
    assert get_target("cloud") is CloudTarget
    assert "cloud" in names()


def test_settings_default_to_the_targets_model(tmp_path: Path, built_in: None) -> None:
    config = load_config(write(tmp_path, "target: cloud\n"))
    assert config.settings("cloud") == CloudSettings()
    assert config.settings("plain") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("cloud: {region: west}\n", "cloud.region: must be one of 'north' or 'south', got 'west'"),
    ("cloud: {size: 0}\n", "cloud.size: must be >= 1, got 0"),
    ("cloud: {size: '2'}\n", "cloud.size: must be a whole number, got '2'"),
    ("cloud: {zone: a}\n", "cloud.zone: unknown field"),
    ("cloud: north\n", "cloud: must be a mapping, got 'north'"),
    ("plain: {x: 1}\n", "plain: unknown field"),
], ids=["literal", "range", "strict", "unknown", "scalar", "no-settings"])
def test_a_bad_value_in_a_targets_section_is_one_line(tmp_path: Path, built_in: None,
                                                      text: str, expected: str) -> None:
    assert error(tmp_path, "target: cloud\n" + text).startswith(expected)


def test_errors_of_the_file_and_of_a_section_are_counted_together(tmp_path: Path,
                                                                   built_in: None) -> None:
    message = error(tmp_path, "target: cloud\nimage: 5\ncloud: {size: 0, region: x}\n")
    assert message == "image: must be a string, got 5 (and 2 more problems)"


def test_an_unknown_target_lists_the_registered_ones(tmp_path: Path, built_in: None) -> None:
    assert error(tmp_path, "target: k8s\n") == (
        "target: must be one of 'docker', 'vagrant', 'aws', 'cloud' or 'plain', got 'k8s'")


def test_a_target_from_the_entry_point_group(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """What `pip install lab-cloud` does: an entry point in group lab.targets, nothing else."""
    real = importlib.metadata.entry_points
    plugin = importlib.metadata.EntryPoint("cloud", "test_target_registry:CloudTarget",
                                           "lab.targets")

    def entry_points(**select: str) -> object:
        found = real(**select)
        return [*found, plugin] if select.get("group") == "lab.targets" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    config = load_config(write(tmp_path, "target: cloud\ncloud: {region: south}\n"))
    assert config.settings("cloud") == CloudSettings(region="south")
    assert error(tmp_path, "target: cloud\ncloud: {size: 9}\n") == "cloud.size: must be <= 8, got 9"


def test_without_registration_the_section_is_an_unknown_field(tmp_path: Path) -> None:
    assert error(tmp_path, "cloud: {size: 1}\n").startswith("cloud: unknown field")
    with pytest.raises(UsageError, match="target 'cloud' is not available"):
        get_target("cloud")


def test_aws_is_a_built_in_target_whose_section_is_required(tmp_path: Path) -> None:
    """aws needs `aws.ssh_cidr`: a lab that names the target without it gets one line."""
    config = load_config(write(tmp_path, "target: aws\naws: {ssh_cidr: 203.0.113.7/32}\n"))
    assert config.target == "aws" and get_target("aws").name == "aws"
    bare = load_config(write(tmp_path, "target: aws\n"))
    with pytest.raises(ConfigError, match=r"^lab.yml: aws.ssh_cidr: is required"):
        bare.settings("aws")


def test_config_model_validate_takes_sections_too(built_in: None) -> None:
    config = LabConfig.model_validate({"name": "x", "servers": {"web": {}},
                                       "cloud": {"size": 2}})
    assert config.settings("cloud") == CloudSettings(size=2)
    assert config.beside("y", Path("/tmp/y")).settings("cloud") == CloudSettings(size=2)


class CheckedTarget(CloudTarget):
    """A target that needs something on this machine, and builds its own image."""

    name = "checked"

    @classmethod
    def prerequisites(cls) -> list[Check]:
        return [Check("cloud cli", False, "not found", "pip install cloud-cli")]

    @classmethod
    def prepare_image(cls, config: LabConfig | None, rebuild: bool = False,
                      on_event: Listener = ignore) -> str | None:
        return f"ami-{config.name if config else 'none'}-{rebuild}"


def test_doctor_and_image_build_ask_the_target(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "checked",
                        "test_target_registry:CheckedTarget")
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "broken", "no_such_module:Target")
    for name in ("docker", "vagrant"):  # their checks ask real engines: not here
        monkeypatch.setattr(get_target(name), "prerequisites", classmethod(lambda cls: []))
    checks = {c.name: c for c in run_checks()}
    assert checks["cloud cli"] == Check("cloud cli", False, "not found", "pip install cloud-cli")
    assert not checks["target broken"].ok and not checks["target broken"].required
    assert {"python", "OpenSSH client", "ansible"} <= set(checks)

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "target: checked\n")
    result = CliRunner().invoke(app, ["image", "build", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ami-demo-True"
