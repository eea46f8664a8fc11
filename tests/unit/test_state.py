"""State: server records survive a round trip, events are append-only, names never reused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lab.state import GONE, EventKind, Liveness, LogEntry, ServerRecord, Stage, State, shown_status


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path / ".lab")


def full_record(name: str = "web-3", role: str = "web") -> ServerRecord:
    return ServerRecord(
        name=name, role=role, target="docker", address="172.18.0.5", ssh_host="127.0.0.1",
        ssh_port=32768, ssh_user="admin", image="lab/base:bookworm", generation=4,
        liveness=Liveness.RUNNING, stage=Stage.READY, ports={80: 32769, 443: 32770},
        created=1700000000.25,
    )


def name_servers(state: State, role: str, count: int) -> list[str]:
    """Name servers the way Fleet does: take next_index, save, log 'named'."""
    names = []
    for _ in range(count):
        index = state.next_index(role)
        name = f"{role}-{index}"
        state.save(ServerRecord(name, role, "docker"))
        state.log("named", name, str(index))
        names.append(name)
    return names


def test_state_db_is_created(tmp_path: Path) -> None:
    State(tmp_path / "deep" / ".lab")
    assert (tmp_path / "deep" / ".lab" / "state.db").is_file()


def test_record_round_trip(state: State) -> None:
    record = full_record()
    state.save(record)
    loaded = state.server("web-3")
    assert loaded == record
    assert loaded is not None
    assert loaded.ports == {80: 32769, 443: 32770}
    assert all(isinstance(k, int) for k in loaded.ports)
    assert state.servers() == [record]


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    State(tmp_path).save(full_record())
    assert State(tmp_path).server("web-3") == full_record()


def test_defaults_round_trip(state: State) -> None:
    record = ServerRecord("db-1", "db", "docker")
    state.save(record)
    assert state.server("db-1") == record
    assert record.status == "creating" and record.ports == {}


def test_to_dict_has_every_field(state: State) -> None:
    data = full_record().to_dict()
    assert data["ports"] == {80: 32769, 443: 32770}
    assert ServerRecord(**data) == full_record()


def test_save_replaces(state: State) -> None:
    state.save(full_record())
    changed = ServerRecord(**{**full_record().to_dict(), "liveness": Liveness.DEAD, "ssh_port": 1})
    state.save(changed)
    assert state.servers() == [changed]


def test_unknown_server_is_none(state: State) -> None:
    assert state.server("nope-1") is None


def test_set_liveness_and_forget(state: State) -> None:
    state.save(full_record("web-1"))
    state.save(full_record("web-2"))
    state.set_liveness("web-1", Liveness.DEAD)
    web1 = state.server("web-1")
    assert web1 is not None and web1.status == "dead"
    state.forget("web-1")
    assert state.server("web-1") is None
    assert [s.name for s in state.servers()] == ["web-2"]


def test_servers_by_role(state: State) -> None:
    state.save(full_record("web-1", "web"))
    state.save(full_record("db-1", "db"))
    assert [s.name for s in state.servers("web")] == ["web-1"]
    assert [s.name for s in state.servers("db")] == ["db-1"]
    assert state.servers("nothing") == []
    assert [s.name for s in state.servers()] == ["db-1", "web-1"]  # ordered by role


# events --------------------------------------------------------------------------------------


def test_events_are_logged_in_order(state: State) -> None:
    state.log("named", "web-1", "1")
    state.log("created", "web-1", "lab/base:bookworm")
    state.log("destroy")
    events = state.events()
    assert [(e.kind, e.server, e.detail) for e in events] == [
        ("named", "web-1", "1"), ("created", "web-1", "lab/base:bookworm"), ("destroy", None, ""),
    ]
    assert [e.kind for e in state.events("web-1")] == ["named", "created"]
    assert events[0].at <= events[1].at <= events[2].at


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET kind = 'forged'",
        "UPDATE events SET detail = 'x' WHERE id = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE id = 1",
    ],
)
def test_events_are_append_only(state: State, statement: str) -> None:
    state.log("named", "web-1", "1")
    state.log("ready", "web-1")
    before = state.events()
    db = sqlite3.connect(state.path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
        db.commit()
    finally:
        db.close()
    assert state.events() == before


def test_forget_keeps_the_events(state: State) -> None:
    state.save(full_record("web-1"))
    state.log("named", "web-1", "1")
    state.forget("web-1")
    assert [e.kind for e in state.events("web-1")] == ["named"]


def test_the_logbook_reads_back_typed_with_its_kinds_as_enums(state: State) -> None:
    state.log(EventKind.NAMED, "web-1", "1")
    state.log(Stage.PROVISIONED, "web-1", "site.yml")
    state.log(EventKind.release_ended("rolled-back"), None, "20261127-101500-abcdef")
    named, provisioned, ended = state.events()
    assert isinstance(named, LogEntry) and named.kind is EventKind.NAMED
    assert provisioned.kind is Stage.PROVISIONED and provisioned.detail == "site.yml"
    assert (ended.kind, ended.server) == (EventKind.RELEASE_ROLLED_BACK, None)
    assert ended.kind == "release-rolled-back"  # the word stored, as graders compare it
    assert named.id < provisioned.id < ended.id and named.at <= ended.at


def test_a_kind_lab_does_not_know_is_refused_when_logged_and_kept_when_read(
        state: State) -> None:
    with pytest.raises(ValueError, match="provisoned"):
        state.log("provisoned", "web-1")  # type: ignore[arg-type]
    assert state.events() == []
    db = sqlite3.connect(state.path)  # a word an older or newer lab logged
    with db:
        db.execute("INSERT INTO events (at, server, kind) VALUES (1.0, 'web-1', 'rebooted')")
    db.close()
    [entry] = state.events()
    assert type(entry.kind) is str and entry.kind == "rebooted"


def test_every_outcome_a_release_saves_has_its_kind() -> None:
    from lab.release.journal import INTERRUPTED, RUNNING

    for outcome in ("promoted", "rolled-back", INTERRUPTED, RUNNING):
        assert EventKind.release_ended(outcome) == f"release-{outcome}"


# next_index ----------------------------------------------------------------------------------


def test_first_index_is_one(state: State) -> None:
    assert state.next_index("web") == 1


def test_indexes_count_up(state: State) -> None:
    assert name_servers(state, "web", 3) == ["web-1", "web-2", "web-3"]


def test_numbers_are_not_reused_after_forget(state: State) -> None:
    names = name_servers(state, "web", 3)
    for name in names:
        state.forget(name)
    assert state.servers() == []
    assert state.next_index("web") == 4
    assert name_servers(state, "web", 1) == ["web-4"]


def test_numbers_are_not_reused_after_forgetting_the_newest(state: State) -> None:
    name_servers(state, "web", 3)
    state.forget("web-3")
    assert state.next_index("web") == 4


def test_numbers_are_not_reused_across_reopening(tmp_path: Path) -> None:
    first = State(tmp_path)
    for name in name_servers(first, "web", 2):
        first.forget(name)
    assert State(tmp_path).next_index("web") == 3


def test_adopted_servers_count(state: State) -> None:
    """A server found by label (no 'named' event) still takes its number."""
    state.save(ServerRecord("web-7", "web", "docker"))
    assert state.next_index("web") == 8


def test_an_adopted_servers_number_is_not_reused_once_it_is_gone(state: State) -> None:
    """Adopted (found by label, as Fleet.reconcile logs it), then destroyed and forgotten."""
    state.save(ServerRecord("web-7", "web", "docker"))
    state.log("adopted", "web-7", "found by label, not in state")
    state.forget("web-7")
    state.log("destroyed", "web-7")
    assert state.next_index("web") == 8


def test_roles_are_counted_apart(state: State) -> None:
    name_servers(state, "web", 3)
    name_servers(state, "webx", 5)
    assert state.next_index("web") == 4
    assert state.next_index("db") == 1
    assert name_servers(state, "db", 1) == ["db-1"]


def test_underscore_in_role_is_not_a_wildcard(state: State) -> None:
    """'_' is a LIKE wildcard: role a_b must not see the events of role axb."""
    for name in name_servers(state, "a_b", 3):
        state.forget(name)
    name_servers(state, "axb", 1)
    assert state.next_index("a_b") == 4
    assert state.next_index("axb") == 2


def test_numbers_are_compared_as_numbers(state: State) -> None:
    for name in name_servers(state, "web", 10):
        state.forget(name)
    assert state.next_index("web") == 11


# liveness and stage ---------------------------------------------------------------------------


@pytest.mark.parametrize(("liveness", "stage", "shown"), [
    (Liveness.CREATING, Stage.CREATED, "creating"),
    (Liveness.RUNNING, Stage.CREATED, "running"),
    (Liveness.RUNNING, Stage.READY, "ready"),
    (Liveness.RUNNING, Stage.VERIFY_FAILED, "verify-failed"),
    (Liveness.DEAD, Stage.VERIFIED, "dead"),
    (Liveness.MISSING, Stage.PROVISIONED, "missing"),
    (Liveness.RESTARTING, Stage.READY, "restarting"),
])
def test_status_is_liveness_unless_running_then_stage(liveness: Liveness, stage: Stage,
                                                      shown: str) -> None:
    assert shown_status(liveness, stage) == shown
    record = ServerRecord("web-1", "web", "docker", liveness=liveness, stage=stage)
    assert record.status == shown and record.shown()["status"] == shown
    assert record.gone == (liveness in GONE)


def test_liveness_and_stage_are_stored_apart(state: State) -> None:
    state.save(full_record("web-1"))
    state.set_liveness("web-1", Liveness.DEAD)
    dead = state.server("web-1")
    assert dead is not None and (dead.liveness, dead.stage) == (Liveness.DEAD, Stage.READY)
    state.set_stage("web-1", Stage.VERIFIED)
    state.set_liveness("web-1", Liveness.RUNNING)
    back = state.server("web-1")
    assert back is not None and back.status == "verified"
    assert isinstance(back.liveness, Liveness) and isinstance(back.stage, Stage)


def test_strings_become_the_enums() -> None:
    record = ServerRecord("web-1", "web", "docker", liveness="dead", stage="verified")  # type: ignore[arg-type]
    assert record.liveness is Liveness.DEAD and record.stage is Stage.VERIFIED
    with pytest.raises(ValueError, match="'zombie' is not a valid Liveness"):
        ServerRecord("web-1", "web", "docker", liveness="zombie")  # type: ignore[arg-type]


OLD_SCHEMA = """
CREATE TABLE servers (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, target TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '', ssh_port INTEGER NOT NULL DEFAULT 0,
    image TEXT NOT NULL DEFAULT '', generation INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'creating', ports TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, server TEXT,
                     kind TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
"""


def test_an_old_state_db_is_migrated_in_place(tmp_path: Path) -> None:
    """A state.db from before liveness and stage: one `status` column, fewer columns."""
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(OLD_SCHEMA)
    old = ["creating", "running", "restarting", "dead", "missing", "ready", "provisioned",
           "failed", "verified", "verify-failed", "something-new"]
    for index, status in enumerate(old):
        db.execute("INSERT INTO servers (name, role, target, ssh_port, status, created) "
                   "VALUES (?, 'web', 'docker', 2200, ?, 1.5)", (f"web-{index}", status))
    db.execute("INSERT INTO events (at, server, kind) VALUES (1.0, 'web-0', 'named')")
    db.commit()
    db.close()

    state = State(tmp_path)
    servers = {s.name: s for s in state.servers()}
    assert [servers[f"web-{i}"].status for i in range(len(old) - 1)] == old[:-1]
    assert servers["web-10"].status == "running"  # a word lab no longer knows
    assert (servers["web-8"].liveness, servers["web-8"].stage) == (Liveness.RUNNING,
                                                                   Stage.VERIFIED)
    assert (servers["web-3"].liveness, servers["web-3"].stage) == (Liveness.DEAD, Stage.CREATED)
    assert servers["web-5"].ssh_host == "127.0.0.1" and servers["web-5"].ssh_port == 2200
    assert [e.kind for e in state.events()] == ["named"]
    columns = {row[1] for row in sqlite3.connect(state.path).execute(
        "PRAGMA table_info(servers)")}
    assert {"liveness", "stage"} <= columns and "status" not in columns
    # Opening it again changes nothing, and it takes new records as any state.db does.
    assert {s.name: s for s in State(tmp_path).servers()} == servers
    state.save(full_record("web-20"))
    assert state.server("web-20") == full_record("web-20")


@pytest.mark.parametrize(("ssh_host", "nearby"), [
    ("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True),
    ("54.12.0.9", False), ("10.0.0.5", False), ("ec2-54-12-0-9.compute.amazonaws.com", False),
])
def test_a_server_is_nearby_when_reached_over_loopback(ssh_host: str, nearby: bool) -> None:
    # Provisioning sends such servers module payloads with bytecode (lab_module_cache).
    assert ServerRecord("web-1", "web", "docker", ssh_host=ssh_host).nearby is nearby
