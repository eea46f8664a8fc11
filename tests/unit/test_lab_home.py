"""Two labs of one name from two folders on one Docker engine (two `lab init demo`, or a
`name:` chosen twice): the second is refused before it adopts, replaces or destroys the
first's servers, and says which folder holds the lab. A workspace's own commands go on as
before, and containers made before lab kept their folder (no label) are still adopted."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakedocker import Engine, Image

import lab.docker.dockerengine
import lab.targets.docker as docker_target
from lab.config import DEFAULT_IMAGE, load_config
from lab.docker.dockerengine import DockerEngine
from lab.docker.runmode import RunMode
from lab.errors import ConfigError
from lab.fleet import Fleet


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    engine = Engine()
    engine.pictures = [Image("1", [DEFAULT_IMAGE], {})]
    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    monkeypatch.setattr(DockerEngine, "run_mode", RunMode("plain", "the test's", ["/sbin/init"]))
    monkeypatch.setattr(docker_target, "use_package_cache", lambda *_: None)
    monkeypatch.setattr(docker_target.DockerTarget, "wait_ready", lambda *a, **k: None)
    return engine


def lab_in(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "lab.yml").write_text("name: demo\nservers:\n  web: {count: 1}\n")
    return folder / "lab.yml"


def test_a_lab_of_the_same_name_from_another_folder_is_refused(
        engine: Engine, tmp_path: Path) -> None:
    first, second = lab_in(tmp_path / "a" / "demo"), lab_in(tmp_path / "b" / "demo")
    with Fleet(load_config(first)) as fleet:
        fleet.up()
    made = [box.name for box in engine.boxes]

    for command in ("up", "status", "destroy"):
        with Fleet(load_config(second)) as fleet, pytest.raises(
                ConfigError, match=rf"^name: lab demo already runs on this Docker engine for "
                                   rf"the lab in {tmp_path / 'a' / 'demo'}: give this lab "):
            getattr(fleet, command)()
    assert [box.name for box in engine.boxes] == made  # nothing taken, nothing removed

    with Fleet(load_config(first)) as fleet:  # the first goes on
        assert [s.name for s in fleet.status()] == ["web-1"]
        fleet.destroy()
    assert engine.boxes == []


def test_containers_without_a_folder_are_still_the_labs(engine: Engine, tmp_path: Path) -> None:
    """Made by a lab before containers carried their folder: adopted as before."""
    first, second = lab_in(tmp_path / "a" / "demo"), lab_in(tmp_path / "b" / "demo")
    with Fleet(load_config(first)) as fleet:
        fleet.up()
    for box in engine.boxes:
        del box.labels[docker_target.HOME]

    with Fleet(load_config(second)) as fleet:
        assert [s.name for s in fleet.status()] == ["web-1"]
        fleet.destroy()
    assert engine.boxes == []
