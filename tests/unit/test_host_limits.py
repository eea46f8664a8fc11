"""The limits of the machine that every systemd server shares (lab/docker/limits.py), read from
a /proc and a /proc/sys made by the test: what is in use, how many more servers fit, `lab up`
refused before anything is made, `lab doctor`'s rows, a boot report that names the limit, and
`make setup` raising the inotify limits. The same refusal on the real CLI and engine is
tests/integration/test_host_limits_up.py's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakedocker import Engine, Image

from lab.docker import limits
from lab.docker.limits import HostLimitError, Limit, check_room, host_limits, limit_checks
from lab.errors import ExitStatus

ROOT = Path(__file__).parents[2]
SYSCTLS = {"fs/inotify/max_user_instances": "128", "fs/inotify/max_user_watches": "8192",
           "kernel/pid_max": "4194304", "kernel/threads-max": "100000", "fs/file-max": "100000",
           "fs/file-nr": "500\t0\t100000"}
INOTIFY = "anon_inode:inotify"


def fake_sys(where: Path, values: dict[str, str] | None = None) -> Path:
    """A /proc/sys holding ``SYSCTLS``, with ``values`` (by path) over them."""
    for name, value in (SYSCTLS | (values or {})).items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(value + "\n")
    return where


def fake_proc(where: Path, processes: dict[int, tuple[int, list[int | None]]],
              threads: int = 350) -> Path:
    """A /proc: pid -> (effective uid, its fds: an inotify instance with that many watches,
    or None for a file), and /proc/loadavg counting ``threads``."""
    for pid, (uid, fds) in processes.items():
        (where / str(pid) / "fd").mkdir(parents=True)
        (where / str(pid) / "fdinfo").mkdir()
        (where / str(pid) / "status").write_text(f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
        for fd, watches in enumerate(fds, start=3):
            target = "/dev/null" if watches is None else INOTIFY
            os.symlink(target, where / str(pid) / "fd" / str(fd))
            lines = [f"inotify wd:{w + 1} ino:1 sdev:2 mask:3 ignored_mask:0" for w in
                     range(watches or 0)]
            (where / str(pid) / "fdinfo" / str(fd)).write_text("pos:\t0\n" + "\n".join(lines))
    (where / "loadavg").write_text(f"0.10 0.20 0.30 2/{threads} 4242\n")
    (where / "self").mkdir()  # not a process: skipped
    return where


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """Two servers' worth of root's inotify (6 instances each), and a user's, not counted."""
    server = [8, 1, 1, 4, 4, None, None]  # systemd: five instances and two files
    return fake_proc(tmp_path / "proc", {
        100: (0, server), 101: (0, [3]),  # a server's systemd and dbus-daemon
        200: (0, server), 201: (0, [3]),
        300: (1000, [5, 5, 5]),  # a desktop user's: another user's allowance
        400: (0, [None])})


def test_the_limits_and_what_is_in_use_are_read_from_proc(proc: Path, tmp_path: Path) -> None:
    sys_dir = fake_sys(tmp_path / "sys")

    instances, watches, threads, files = host_limits(sys_dir, proc)

    assert instances == Limit("inotify instances", "fs.inotify.max_user_instances", "per user",
                              128, 12, 7, 1024)
    assert instances.room == 16  # (128 - 12) // 7: each new server 6, and one while it boots
    assert watches == Limit("inotify watches", "fs.inotify.max_user_watches", "per user",
                            8192, 42, limits.INOTIFY_WATCHES, 524288)
    # kernel.threads-max is the lower of the two limits on threads here, so it is the one
    assert (threads.sysctl, threads.limit, threads.in_use) == ("kernel.threads-max", 100000, 350)
    assert (files.sysctl, files.limit, files.in_use) == ("fs.file-max", 100000, 500)
    assert threads.room == (100000 - 350) // limits.THREADS
    assert limits.inotify_in_use(proc, uid=1000) == (3, 15, True)


def test_what_cannot_be_read_is_left_out_and_refuses_nothing(tmp_path: Path) -> None:
    """No /proc (macOS, where the engine's VM has its own): no limits, no refusal."""
    assert host_limits(tmp_path / "none", tmp_path / "none") == []
    check_room(1000, sys_dir=tmp_path / "none", proc=tmp_path / "none")
    some = fake_sys(tmp_path / "sys")
    (some / "fs/file-nr").unlink()
    # no /proc/loadavg: threads unknown; no file-nr: open files unknown; no process: 0 in use
    assert [(limit.what, limit.in_use) for limit in host_limits(some, tmp_path / "none")] == [
        ("inotify instances", 0), ("inotify watches", 0)]


def test_processes_that_cannot_be_read_make_the_count_a_lower_bound(
        proc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who is not root sees none of root's fds: "at least" what could be counted."""
    real = os.readlink

    def refuse(path: Any) -> str:
        if "/200/" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(limits.os, "readlink", refuse)
    [instances, *_] = host_limits(fake_sys(tmp_path / "sys"), proc)
    assert (instances.in_use, instances.exact) == (7, False)
    assert "at least 7 in use" in instances.describe()


def test_check_room_refuses_what_will_not_fit_and_names_the_setting_to_raise(
        proc: Path, tmp_path: Path) -> None:
    sys_dir = fake_sys(tmp_path / "sys")
    check_room(16, sys_dir=sys_dir, proc=proc)
    check_room(0, sys_dir=sys_dir, proc=proc)

    with pytest.raises(HostLimitError) as caught:
        check_room(17, sys_dir=sys_dir, proc=proc)

    assert caught.value.exit_code == ExitStatus.MISSING_PREREQUISITE == 3
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "no room on this machine for 17 more servers: inotify instances are 128 per user "
        "(fs.inotify.max_user_instances), 12 in use: room for ~16 more servers (7 each); as "
        "root run `sysctl -w fs.inotify.max_user_instances=1024` (`lab doctor` shows how to "
        "keep it)")


def test_every_limit_short_of_room_is_named_with_a_value_that_fits(
        proc: Path, tmp_path: Path) -> None:
    sys_dir = fake_sys(tmp_path / "sys", {"fs/inotify/max_user_watches": "300"})
    with pytest.raises(HostLimitError, match=r"inotify instances are 128 per user .*"
                       r"`sysctl -w fs\.inotify\.max_user_instances=1024 "
                       r"fs\.inotify\.max_user_watches=524288`"):
        check_room(20, sys_dir=sys_dir, proc=proc)
    # 200 servers need more than 1024 instances: the next power of two above what they need
    with pytest.raises(HostLimitError, match=r"max_user_instances=2048 "):
        check_room(200, sys_dir=sys_dir, proc=proc)


def test_the_limits_are_read_where_lab_proc_sys_says(
        proc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(limits.PROC_SYS, str(fake_sys(tmp_path / "sys", {
        "fs/inotify/max_user_instances": "1"})))
    with pytest.raises(HostLimitError, match="inotify instances are 1 per user"):
        check_room(1, proc=proc)


def test_doctor_shows_each_limit_and_how_to_raise_and_keep_it(
        proc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.doctor

    monkeypatch.setattr(lab.doctor.targets, "known", lambda: [])
    monkeypatch.setattr(limits, "PROC", proc)
    monkeypatch.setenv(limits.PROC_SYS, str(fake_sys(tmp_path / "sys")))
    rows = {check.name: check for check in lab.doctor.run_checks()}

    # 16 more servers fit, fewer than a class's: flagged (not a failure) with the remedy
    instances = rows["inotify instances"]
    assert (instances.ok, instances.required) == (False, False)
    assert instances.detail == ("128 per user (fs.inotify.max_user_instances), 12 in use: "
                                "room for ~16 more servers (7 each)")
    assert instances.fix == (
        "as root: `sysctl -w fs.inotify.max_user_instances=1024`; to keep it: "
        "`echo 'fs.inotify.max_user_instances = 1024' >> /etc/sysctl.d/99-lab.conf`")
    assert rows["threads"].ok and rows["open files"].ok and rows["inotify watches"].ok


@pytest.mark.parametrize(("value", "ok", "required"), [
    ("1024", True, False),  # room for a class: fine
    ("18", False, True)])  # no room for even one more server: doctor exits 3
def test_doctor_fails_a_limit_with_no_room_and_passes_a_raised_one(
        proc: Path, tmp_path: Path, value: str, ok: bool, required: bool) -> None:
    sys_dir = fake_sys(tmp_path / "sys", {"fs/inotify/max_user_instances": value})
    [instances, *_] = limit_checks(sys_dir, proc)
    assert (instances.ok, instances.required) == (ok, required)


def test_lab_up_on_docker_is_refused_before_anything_is_made(
        proc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab up` of three servers with room for two: no container, no network, no record."""
    import lab.docker.dockerengine
    import lab.targets.docker as docker_target
    from lab.config import DEFAULT_IMAGE, load_config
    from lab.docker.dockerengine import DockerEngine
    from lab.docker.runmode import RunMode
    from lab.fleet import Fleet

    engine = Engine()
    engine.pictures = [Image("1", [DEFAULT_IMAGE], {})]
    monkeypatch.setattr(lab.docker.dockerengine, "docker_client", lambda: engine)
    monkeypatch.setattr(DockerEngine, "run_mode", RunMode("plain", "the test's", ["/sbin/init"]))
    monkeypatch.setattr(docker_target, "use_package_cache", lambda *_: None)
    monkeypatch.setattr(limits, "PROC", proc)
    monkeypatch.setenv(limits.PROC_SYS, str(fake_sys(tmp_path / "sys", {
        "fs/inotify/max_user_instances": "26"})))  # 12 in use: room for 2
    (tmp_path / "lab.yml").write_text("name: shop\nservers:\n  web: {count: 3}\n")

    with Fleet(load_config(tmp_path / "lab.yml")) as fleet, pytest.raises(
            HostLimitError, match="no room on this machine for 3 more servers: inotify "
                                  r"instances are 26 per user .*max_user_instances=1024"):
        fleet.up()

    assert engine.boxes == [] and engine.nets == []
    assert fleet.state.servers() == []
    # No name was taken: once there is room, the lab's first server is still web-1.
    monkeypatch.setenv(limits.PROC_SYS, str(tmp_path / "no-limits"))
    with Fleet(load_config(tmp_path / "lab.yml")) as fleet:
        assert fleet.state.next_index("web") == 1


def test_a_boot_report_names_the_limit_when_systemd_ran_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.docker.dockerengine import console_report
    from lab.docker.engine import EngineFacts
    from lab.docker.runmode import RunMode

    monkeypatch.setenv(limits.PROC_SYS, str(fake_sys(tmp_path / "sys")))
    facts = EngineFacts.from_info({"ServerVersion": "20.10.24"})
    mode = RunMode("private-cgroup", "the least privilege", ["/sbin/init"])
    console = ("systemd 252.38-1~deb12u1 running in system mode\r\n"
               "Failed to create control group inotify object: Too many open files\r\n"
               "Failed to allocate manager object: Too many open files\r\n"
               "[!!!!!!] Failed to allocate manager object.\r\nExiting PID 1...\r\n")

    report = console_report(console, facts, mode)

    assert ("    Exiting PID 1...\n  the machine's inotify instances ran out: "
            "fs.inotify.max_user_instances (now 128, shared by every server's systemd); as "
            "root run `sysctl -w fs.inotify.max_user_instances=1024`, `lab doctor` shows how "
            "many servers fit\n  engine: Docker 20.10.24") in report
    # systemd ends every failure to boot so: alone, it is no sign of inotify
    other = ("Failed to create /init.scope control group: Read-only file system\r\n"
             "Failed to allocate manager object: Read-only file system\r\n"
             "[!!!!!!] Failed to allocate manager object.\r\n")
    assert "inotify" not in console_report(other, facts, mode)


@pytest.mark.parametrize("uid", ["0", "1000"])
def test_setup_raises_the_inotify_limits_as_root_and_never_lowers_them(
        tmp_path: Path, uid: str) -> None:
    """scripts/host-limits.sh, which `make setup` runs, on a /proc/sys of the test's; `id` is
    the test's too, so that both root and another user are seen."""
    sys_dir = fake_sys(tmp_path / "sys", {"fs/inotify/max_user_watches": "1000000"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "id").chmod(0o755)
    env = os.environ | {"LAB_PROC_SYS": str(sys_dir), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    result = subprocess.run([ROOT / "scripts/host-limits.sh"], env=env, capture_output=True,
                            text=True, timeout=30, check=False)

    assert result.returncode == 0, result.stderr
    watches = (sys_dir / "fs/inotify/max_user_watches").read_text().strip()
    assert watches == "1000000"  # higher than asked for: left as it is
    instances = (sys_dir / "fs/inotify/max_user_instances").read_text().strip()
    raise_to = {limit.sysctl: limit.raise_to for limit in host_limits(sys_dir, tmp_path)}
    if uid == "0":
        assert instances == str(raise_to["fs.inotify.max_user_instances"]) == "1024"
        assert "raised fs.inotify.max_user_instances from 128 to 1024" in result.stdout
        assert "max_user_watches" not in result.stdout + result.stderr
    else:
        assert instances == "128"
        assert ("fs.inotify.max_user_instances is 128, too few for a class's servers: as root "
                "run `sysctl -w fs.inotify.max_user_instances=1024`") in result.stderr
    # and the watches' figure agrees with lab's too, when it is low
    low = fake_sys(tmp_path / "low", {"fs/inotify/max_user_watches": "8192"})
    subprocess.run([ROOT / "scripts/host-limits.sh"], env=env | {"LAB_PROC_SYS": str(low)},
                   capture_output=True, timeout=30, check=True)
    expected = str(raise_to["fs.inotify.max_user_watches"]) if uid == "0" else "8192"
    assert (low / "fs/inotify/max_user_watches").read_text().strip() == expected


def test_make_setup_runs_the_limits_step() -> None:
    setup = (ROOT / "scripts/setup.sh").read_text()
    assert "\n./scripts/host-limits.sh\n" in setup
    assert setup.index("host-limits.sh") < setup.index("lab\" image build")
