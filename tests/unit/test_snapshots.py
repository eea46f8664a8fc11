"""Start snapshots (lab.course.snapshots): what a snapshot is keyed by, which starts fall back
to the usual way (and say so), how snapshots are told apart from images that only inherited
their labels, and what a start from one writes in the logbook. The same start, made from
real images and checked by the real grader, is in tests/integration/test_snapshot_start.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import release_fakes
import yaml
from release_fakes import World

import lab.targets.registry
from lab.config import load_config
from lab.course import snapshots, workspace
from lab.course.exercises import Exercise, find_exercise, load_exercise
from lab.course.snapshots import Held, Logged, Plan, Snapshot
from lab.events import Event
from lab.state import EventKind, Stage, State

DRIFT = 4  # up, provision, then a change by hand: what a snapshot is for
BASE = "sha256:" + "b" * 64


@pytest.fixture
def exercise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Exercise:
    """A copy of exercise 04 in a course of its own (LAB_COURSE), free to be changed."""
    folder = tmp_path / "course" / "04-drift"
    shutil.copytree(find_exercise(DRIFT).folder, folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("LAB_COURSE", str(folder.parent))
    return load_exercise(folder)


def key_of(exercise: Exercise, base: str = BASE) -> str:
    return snapshots.fingerprint(load_exercise(exercise.folder), base)


def edit_spec(exercise: Exercise, **changes: Any) -> Exercise:
    path = exercise.folder / "exercise.yml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | changes))
    return load_exercise(exercise.folder)


def config_of(exercise: Exercise, where: Path, **changes: Any) -> Any:
    """The exercise's start/lab.yml as a workspace lays it down (name and port filled in)."""
    text = (exercise.start_dir / "lab.yml").read_text()
    data = yaml.safe_load(text.replace("__NAME__", "ex-unit").replace("__PORT__", "18080"))
    shutil.copytree(exercise.start_dir, where, dirs_exist_ok=True)
    (where / "lab.yml").write_text(yaml.safe_dump(data | changes))
    return load_config(where / "lab.yml")


# the key -------------------------------------------------------------------------------------


def test_the_key_is_the_same_for_the_same_files_and_base_image(exercise: Exercise) -> None:
    assert key_of(exercise) == key_of(exercise)
    assert len(key_of(exercise)) == 64


@pytest.mark.parametrize("change", ["exercise.yml", "a start file", "a new start file",
                                    "the base image"])
def test_the_key_changes_with_what_makes_the_start(exercise: Exercise, change: str) -> None:
    before = key_of(exercise)
    base = BASE
    if change == "exercise.yml":
        edit_spec(exercise, hints=["another hint"])
    elif change == "a start file":
        playbook = exercise.start_dir / "playbooks" / "web.yml"
        playbook.write_text(playbook.read_text() + "\n# one more line\n")
    elif change == "a new start file":
        (exercise.start_dir / "files").mkdir()
        (exercise.start_dir / "files" / "motd").write_text("hello\n")
    else:
        base = "sha256:" + "c" * 64
    assert key_of(exercise, base) != before


def test_a_copy_of_an_exercise_under_another_number_has_a_key_of_its_own(
        exercise: Exercise) -> None:
    copy = exercise.folder.with_name("41-drift-copy")
    shutil.copytree(exercise.folder, copy)
    assert key_of(load_exercise(copy)) != key_of(exercise)


def test_the_key_holds_lab_s_own_playbooks_a_start_runs(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The balancer's playbook is lab's, not the exercise's: a change to it makes new
    snapshots too."""
    assert (snapshots.LAB_FILES / "haproxy.yml").is_file()
    own = tmp_path / "balancer"
    shutil.copytree(snapshots.LAB_FILES, own, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(snapshots, "LAB_FILES", own)
    before = key_of(exercise)
    (own / "haproxy.yml").write_text((own / "haproxy.yml").read_text() + "\n# changed\n")
    assert key_of(exercise) != before


def test_compiled_python_beside_the_files_is_not_in_the_key(exercise: Exercise) -> None:
    before = key_of(exercise)
    (exercise.start_dir / "tests" / "__pycache__").mkdir(exist_ok=True)
    (exercise.start_dir / "tests" / "__pycache__" / "test_web.cpython-311.pyc").write_bytes(b"x")
    assert key_of(exercise) == before


def test_the_base_image_is_read_from_start_lab_yml(exercise: Exercise) -> None:
    assert snapshots.base_image(exercise) == "lab/base:bookworm"
    path = exercise.start_dir / "lab.yml"
    path.write_text(path.read_text() + "image: lab/other:1\n")
    assert snapshots.base_image(exercise) == "lab/other:1"


# which starts a snapshot holds, and the one line said when it cannot -------------------------


def test_up_provision_and_a_change_by_hand_on_docker_are_held(exercise: Exercise,
                                                               tmp_path: Path) -> None:
    assert snapshots.cannot_hold(exercise, config_of(exercise, tmp_path / "ws")) is None
    assert snapshots.worth_keeping(exercise.spec.start)


@pytest.mark.parametrize(("start", "lab_yml", "reason"), [
    (["up", "provision", {"release": {"version": "v2"}}], {}, "its start has `release`"),
    (["up", "provision", "bake"], {}, "its start has `bake`"),
    (["provision", "up"], {}, "does not begin with `up`"),
    (["up", "provision"], {"target": "aws"}, "its lab runs on aws"),
    (["up", "provision"], {"servers": {"web": {"count": 2, "playbook": "playbooks/web.yml"}}},
     "role web has more than one server"),
])
def test_a_start_a_snapshot_cannot_hold_says_why(exercise: Exercise, tmp_path: Path,
                                                 start: list[Any], lab_yml: dict[str, Any],
                                                 reason: str) -> None:
    exercise = edit_spec(exercise, start=start)
    assert reason in (snapshots.cannot_hold(exercise, config_of(exercise, tmp_path / "ws",
                                                                **lab_yml)) or "")


def _no_engine(*_: object, **__: object) -> None:
    raise AssertionError("the engine was asked")


def test_a_start_that_falls_back_says_so_in_one_line_without_asking_the_engine(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "docker_client", _no_engine)
    exercise = edit_spec(exercise, start=["up", "provision", {"release": {"version": "v2"}}])
    said: list[Event] = []
    assert snapshots.plan(exercise, config_of(exercise, tmp_path / "ws"), said.append) is None
    assert [e.message for e in said] == [
        "no start snapshot: its start has `release` (a snapshot holds up, provision, ssh, "
        "drift and verify on docker): made the usual way"]


@pytest.mark.parametrize("start", [[], ["up"]])
def test_a_start_with_nothing_to_save_is_made_as_usual_and_says_nothing(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start: list[str]) -> None:
    monkeypatch.setattr(snapshots, "docker_client", _no_engine)
    exercise = edit_spec(exercise, start=start)
    said: list[Event] = []
    assert snapshots.plan(exercise, config_of(exercise, tmp_path / "ws"), said.append) is None
    assert said == []


@pytest.mark.parametrize("value", ["0", "off", "no"])
def test_lab_snapshots_0_turns_them_off(exercise: Exercise, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setattr(snapshots, "docker_client", _no_engine)
    monkeypatch.setenv(snapshots.OFF, value)
    assert snapshots.plan(exercise, config_of(exercise, tmp_path / "ws")) is None


# finding them among the engine's images ------------------------------------------------------


class Image:
    def __init__(self, tags: list[str], labels: dict[str, str]) -> None:
        self.tags, self.labels = tags, labels


def image(key: str, server: str, servers: str, log: list[list[Any]], tag: str | None = None,
          again: str = "") -> Image:
    own = f"lab/snapshot-04-drift:{key[:12]}-{server}"
    return Image([own] if tag is None else [tag], {
        "lab.snapshot": key, "lab.snapshot.exercise": "04-drift", "lab.snapshot.tag": own,
        "lab.snapshot.server": server, "lab.snapshot.role": server.split("-")[0],
        "lab.snapshot.servers": servers, "lab.snapshot.made": "1700000000",
        "lab.snapshot.log": json.dumps(log), "lab.snapshot.size": "1000",
        "lab.snapshot.again": again})


def test_a_snapshot_is_its_images_and_their_logbook_lines_in_the_original_order() -> None:
    key = "a" * 64
    found = snapshots._gather([
        image(key, "web-1", "lb-1,web-1", [[7, "provisioned", "{}"], [9, "drift", "page"]]),
        image(key, "lb-1", "lb-1,web-1", [[8, "provisioned", "{}"]],
              again="/etc/haproxy/haproxy.cfg")])
    assert len(found) == 1
    snapshot = found[0]
    assert snapshot.complete and snapshot.size == 2000
    assert [(line.order, line.server, line.kind) for line in snapshot.log] == [
        (7, "web-1", "provisioned"), (8, "lb-1", "provisioned"), (9, "web-1", "drift")]
    assert snapshot.again == ["lb-1"]
    assert snapshot.image_of("lb") == f"lab/snapshot-04-drift:{key[:12]}-lb-1"


def test_an_image_that_only_inherited_the_labels_is_not_a_snapshot() -> None:
    """`lab bake` of a server started from a snapshot: its image carries the snapshot's
    labels (a container inherits its image's), never the snapshot's tag."""
    key = "a" * 64
    assert snapshots._gather([image(key, "web-1", "web-1", [], tag="lab/ex-a-web:v2")]) == []


def test_a_snapshot_missing_an_image_is_incomplete_and_not_used() -> None:
    key = "a" * 64
    [snapshot] = snapshots._gather([image(key, "web-1", "lb-1,web-1", [])])
    assert not snapshot.complete

    class Images:
        def list(self, filters: dict[str, str]) -> list[Image]:
            return [image(key, "web-1", "lb-1,web-1", [])]

    class Client:
        images = Images()

    assert snapshots.find(Client(), "04-drift", key) is None


def test_a_replayed_provision_names_its_snapshot_and_no_ansible_run() -> None:
    detail = json.dumps({"runs": ["20261208-provision-1"], "vars": {"version": "v1"}})
    replayed = json.loads(snapshots._replayed_detail(Stage.PROVISIONED, detail, "f" * 64))
    assert replayed == {"runs": [], "vars": {"version": "v1"}, "snapshot": "f" * 12}
    assert snapshots._replayed_detail(EventKind.DRIFT, "The shop's page", "f" * 64) == \
        "The shop's page"


# a start from one: the servers, and the logbook the grader reads ----------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World()
    monkeypatch.setattr(release_fakes, "world", world)
    monkeypatch.setitem(lab.targets.registry.BUILT_IN, "fake", "release_fakes:FakeTarget")
    return world


def fake_snapshot(again: tuple[str, ...] = ()) -> Snapshot:
    key = "d" * 64
    provisioned = json.dumps({"runs": [], "vars": {}, "snapshot": key[:12]})
    return Snapshot("04-drift", key, 1700000000.0, ("web-1",),
                    {"web-1": Held("web-1", "web", f"lab/snapshot-04-drift:{key[:12]}-web-1",
                                   1000, again)},
                    (Logged(4, "web-1", "provisioned", provisioned),
                     Logged(5, "web-1", "drift", "The shop's page")))


def test_a_start_from_a_snapshot_writes_the_logbook_a_provisioned_start_writes(
        world: World, exercise: Exercise, tmp_path: Path) -> None:
    config = config_of(exercise, tmp_path / "ws", target="fake")
    said: list[Event] = []
    again = snapshots.start_from(config, fake_snapshot(), said.append)
    assert again == []
    state = State(config.state_dir)
    assert [(e.server, str(e.kind)) for e in state.events()] == [
        ("web-1", "named"), ("web-1", "created"), ("web-1", "ready"),
        ("web-1", "provisioned"), ("web-1", "drift")]
    [web] = state.servers()
    assert web.stage is Stage.PROVISIONED
    assert web.image == fake_snapshot().images["web-1"].tag
    assert "from start snapshot dddddddddddd" in said[0].message


def test_a_server_naming_another_s_address_gets_its_actions_again_and_no_copied_lines(
        world: World, exercise: Exercise, tmp_path: Path) -> None:
    config = config_of(exercise, tmp_path / "ws", target="fake")
    again = snapshots.start_from(config, fake_snapshot(again=("/etc/haproxy/haproxy.cfg",)))
    assert again == ["web-1"]
    kinds = [str(e.kind) for e in State(config.state_dir).events()]
    assert kinds == ["named", "created", "ready"]  # the actions, run again, write the rest


# the workspace: a snapshot when there is one, else the usual way and then kept ---------------


def test_a_workspace_starts_from_the_snapshot_and_runs_actions_only_where_needed(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[list[str], Any]] = []
    monkeypatch.setattr(snapshots, "plan", lambda *_: Plan("d" * 64, fake_snapshot()))
    monkeypatch.setattr(snapshots, "start_from", lambda *_: ["lb-1"])
    monkeypatch.setattr(snapshots, "keep", _no_engine)
    monkeypatch.setattr(workspace, "run_actions", lambda _c, actions, _e, _calls, only=None:
                        ran.append(([a.do for a in actions], only)))
    workspace.start(DRIFT, tmp_path / "ws", name="ex-unit")
    assert ran == [(["up", "provision", "ssh"], ["lb-1"])]


def test_a_workspace_without_a_snapshot_is_made_the_usual_way_then_kept(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []
    monkeypatch.setattr(snapshots, "plan", lambda *_: Plan("d" * 64, None))
    monkeypatch.setattr(snapshots, "start_from", _no_engine)
    monkeypatch.setattr(snapshots, "keep", lambda _c, e, key, _l: ran.append(("keep", key)))
    monkeypatch.setattr(workspace, "run_actions", lambda _c, actions, _e, _calls, only=None:
                        ran.append(([a.do for a in actions], only)))
    workspace.start(DRIFT, tmp_path / "ws", name="ex-unit")
    assert ran == [(["up", "provision", "ssh"], None), ("keep", "d" * 64)]


def test_a_snapshot_that_cannot_be_kept_never_fails_the_start_it_follows(
        exercise: Exercise, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def engine_gone(*_: object) -> None:
        raise ConnectionError("the engine went away")

    monkeypatch.setattr(snapshots, "capture", engine_gone)
    said: list[Event] = []
    snapshots.keep(config_of(exercise, tmp_path / "ws"), exercise, "d" * 64, said.append)
    assert [(e.kind, e.message) for e in said] == [
        ("warning", "no start snapshot kept: the engine went away")]
