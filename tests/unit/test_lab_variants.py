"""Variants of a lab.yml (`edit_lab_yml`): structured edits, validated as any lab.yml is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.errors import ConfigError
from lab.scaffold import edit_lab_yml, init_lab


@pytest.fixture
def lab_yml(tmp_path: Path) -> Path:
    init_lab(tmp_path / "lab", name="variant")
    return tmp_path / "lab" / "lab.yml"


def test_good_edits_give_a_lab_yml_load_config_accepts(lab_yml: Path) -> None:
    config = edit_lab_yml(lab_yml, name="other", count=4, listen=18080, step_seconds=0.5,
                          target="vagrant")
    assert (config.name, config.target, config.servers["web"].count) == (
        "other", "vagrant", 4)
    assert config.balancer is not None and config.balancer.listen == 18080
    assert config.release.step_seconds == 0.5
    assert config.directory == lab_yml.parent
    assert yaml.safe_load(lab_yml.read_text())["servers"]["web"]["count"] == 4


def test_without_balancer_the_section_is_gone(lab_yml: Path) -> None:
    config = edit_lab_yml(lab_yml, balancer=False, count=2)
    assert config.balancer is None
    assert "balancer" not in yaml.safe_load(lab_yml.read_text())


def test_a_variant_can_go_to_another_file_beside_the_original(lab_yml: Path) -> None:
    copy = lab_yml.with_name("lab-copy.yml")
    config = edit_lab_yml(lab_yml, to=copy, name="variant-test")
    assert config.name == "variant-test"
    assert yaml.safe_load(lab_yml.read_text())["name"] == "variant"


def test_a_placeholder_name_is_replaced(tmp_path: Path) -> None:
    bench_app = Path(__file__).parents[2] / "bench" / "labs" / "app"
    (tmp_path / "lab.yml").write_text((bench_app / "lab.yml").read_text())
    for part in ("playbooks", "tests"):
        (tmp_path / part).symlink_to(bench_app / part)
    assert edit_lab_yml(tmp_path / "lab.yml", name="app-1").name == "app-1"


@pytest.mark.parametrize(("changes", "message"), [
    ({"count": 2, "role": "db"}, "servers.db: no such role (roles: web)"),
    ({"count": 0}, "servers.web.count: must be >= 1, got 0"),
    ({"step_seconds": -1}, "release.step_seconds: must be > 0"),
    ({"name": "Bad Name"}, "name: must be 1-32 lowercase letters"),
    ({"target": "cloud"}, "target: "),  # the registered targets are named after it
])
def test_a_bad_edit_is_one_line_and_leaves_the_file_alone(
        lab_yml: Path, changes: dict, message: str) -> None:
    before = lab_yml.read_text()
    with pytest.raises(ConfigError) as raised:
        edit_lab_yml(lab_yml, **changes)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(lab_yml))
    assert "\n" not in str(raised.value)
    assert lab_yml.read_text() == before


def test_listen_needs_a_balancer(lab_yml: Path) -> None:
    edit_lab_yml(lab_yml, balancer=False)
    with pytest.raises(ConfigError, match="balancer: there is none"):
        edit_lab_yml(lab_yml, listen=9000)


def test_several_roles_need_to_be_told_which_gets_the_count(lab_yml: Path) -> None:
    data = yaml.safe_load(lab_yml.read_text())
    data["servers"]["db"] = dict(data["servers"]["web"])
    lab_yml.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="2 roles"):
        edit_lab_yml(lab_yml, count=3)
    assert edit_lab_yml(lab_yml, count=3, role="db").servers["db"].count == 3
