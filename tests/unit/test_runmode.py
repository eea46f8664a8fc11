"""How servers run on each engine shape attendees bring (lab.docker.runmode.choose).

Each case is an engine as `docker info` describes it; each asserts the options lab passes and
the reason it gives. The modes themselves boot for real in the integration tests, against
Docker 20.10 on cgroup v1 and Docker 26 on cgroup v2 (`make test` runs both).
"""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

import pytest

from lab.docker.engine import EngineFacts
from lab.docker.runmode import OVERRIDE, WRITABLE_OWN_CGROUP, RunMode, choose
from lab.errors import ExitStatus, PrerequisiteError, UsageError
from lab.targets.docker import console_report


def engine(version: str = "26.1.5", cgroup: int | None = 2, *security: str,
           arch: str = "x86_64", system: str = "Debian GNU/Linux 13 (trixie)") -> EngineFacts:
    info: dict[str, Any] = {
        "ServerVersion": version, "CgroupDriver": "systemd" if cgroup == 2 else "cgroupfs",
        "SecurityOptions": [f"name={s}" for s in ("seccomp,profile=builtin", *security)],
        "Architecture": arch, "OperatingSystem": system,
    }
    if cgroup is not None:
        info["CgroupVersion"] = str(cgroup)
    return EngineFacts.from_info(info)


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDE, raising=False)


def assert_private_cgroup(mode: RunMode) -> None:
    """Its own cgroup namespace, no view of the host's cgroup tree, made writable at start."""
    options = mode.sdk_options()
    assert mode.name == "private-cgroup"
    assert "least privilege" in mode.why
    assert options["cgroupns"] == "private"
    assert "volumes" not in options and "mounts" not in options
    assert options["command"] == ["/bin/sh", "-c", WRITABLE_OWN_CGROUP]
    assert options["cap_add"] == ["SYS_ADMIN"] and options["tty"] is True
    assert set(options["tmpfs"]) == {"/run", "/run/lock", "/tmp"}
    assert "--cgroupns" in mode.cli_args() and "/sys/fs/cgroup" not in " ".join(mode.cli_args())


# the engines ---------------------------------------------------------------------------------


def test_docker_20_10_on_cgroup_v1_this_machine() -> None:
    assert_private_cgroup(choose(engine("20.10.24+dfsg1", 1,
                                        system="Debian GNU/Linux 12 (bookworm)")))


def test_docker_20_10_on_cgroup_v2_ubuntu_with_apparmor() -> None:
    mode = choose(engine("20.10.21", 2, "apparmor", "cgroupns", system="Ubuntu 22.04.3 LTS"))
    assert_private_cgroup(mode)
    assert mode.sdk_options()["security_opt"] == ["apparmor=unconfined"]
    assert mode.cli_args()[-2:] == ["--security-opt", "apparmor=unconfined"]
    assert "forbids mount" in mode.notes[0]


def test_docker_26_on_cgroup_v1() -> None:
    assert_private_cgroup(choose(engine("26.1.5", 1)))


def test_docker_26_on_cgroup_v2() -> None:
    mode = choose(engine("26.1.5+dfsg1", 2, "cgroupns"))
    assert_private_cgroup(mode)
    assert "security_opt" not in mode.sdk_options()


def test_docker_desktop_28_on_apple_silicon() -> None:
    facts = engine("28.3.2", 2, "cgroupns", arch="aarch64", system="Docker Desktop")
    assert_private_cgroup(choose(facts))
    assert facts.debian_arch == "arm64"
    assert "aarch64" in facts.describe() and "Docker Desktop" in facts.describe()


def test_rootless_docker_28_on_cgroup_v2() -> None:
    facts = engine("28.0.1", 2, "rootless", "cgroupns")
    assert facts.rootless and "rootless" in facts.describe()
    assert_private_cgroup(choose(facts))


def test_fedora_with_selinux() -> None:
    mode = choose(engine("27.5.1", 2, "selinux", "cgroupns", system="Fedora Linux 41"))
    assert_private_cgroup(mode)
    assert mode.security_opt == ("label=disable",)
    assert "container_manage_cgroup" in mode.notes[0]


def test_rootless_on_cgroup_v1_cannot_work_and_says_what_to_change() -> None:
    with pytest.raises(PrerequisiteError) as caught:
        choose(engine("24.0.7", 1, "rootless"))
    assert "systemd.unified_cgroup_hierarchy=1" in str(caught.value)
    assert caught.value.exit_code == ExitStatus.MISSING_PREREQUISITE


def test_an_engine_before_20_10_on_cgroup_v2_cannot_work() -> None:
    with pytest.raises(PrerequisiteError, match=r"upgrade Docker to 20\.10"):
        choose(engine("19.03.15", 2))


def test_an_engine_before_20_10_on_cgroup_v1_binds_the_tree_read_only() -> None:
    facts = engine("19.03.15", None)  # engines before 20.10 do not say their cgroup version
    assert facts.cgroup_version == 1
    mode = choose(facts)
    assert mode.name == "legacy"
    options = mode.sdk_options()
    assert options["volumes"] == {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}}
    assert "cgroupns" not in options  # 19.03 has no such option
    assert options["command"] == ["/sbin/init"]
    assert "-v" in mode.cli_args() and "--cgroupns" not in mode.cli_args()


# overrides -----------------------------------------------------------------------------------


def test_override_host_cgroup_gives_the_whole_tree_read_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "host-cgroup")
    mode = choose(engine("28.0.1", 2))
    options = mode.sdk_options()
    assert mode.why.startswith(f"chosen by {OVERRIDE}")
    assert options["cgroupns"] == "host"
    assert options["volumes"] == {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    assert "/sys/fs/cgroup:/sys/fs/cgroup:rw" in mode.cli_args()


def test_legacy_on_docker_25_and_later_keeps_submounts_writable() -> None:
    """Docker 25 made `:ro` recursive: the old recipe needs a non-recursive bind there."""
    mode = choose(engine("26.1.5", 1), override="legacy")
    options = mode.sdk_options()
    assert "volumes" not in options
    (mount,) = options["mounts"]
    assert mount["Target"] == "/sys/fs/cgroup" and mount["ReadOnly"] is True
    assert mount["BindOptions"] == {"ReadOnlyNonRecursive": True}
    assert "bind-recursive=writable" in " ".join(mode.cli_args())


def test_legacy_on_docker_20_10_uses_plain_ro() -> None:
    mode = choose(engine("20.10.24", 1), override="legacy")
    assert mode.sdk_options()["volumes"]["/sys/fs/cgroup"]["mode"] == "ro"
    assert mode.sdk_options()["cgroupns"] == "host"


def test_private_cgroup_forced_on_an_engine_without_cgroupns_is_refused() -> None:
    with pytest.raises(PrerequisiteError, match="no cgroup namespaces"):
        choose(engine("19.03.15", 1), override="private-cgroup")


def test_unknown_override_names_the_variable_and_the_choices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OVERRIDE, "privileged")
    with pytest.raises(UsageError) as caught:
        choose(engine())
    assert str(caught.value) == (f"{OVERRIDE}=privileged: not a run mode "
                                 "(known: private-cgroup, host-cgroup, legacy)")


# the pieces ----------------------------------------------------------------------------------


def test_the_start_command_is_valid_sh() -> None:
    result = subprocess.run(["sh", "-n", "-c", WRITABLE_OWN_CGROUP], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert WRITABLE_OWN_CGROUP.endswith("exec /sbin/init")


def test_engine_facts_read_docker_info() -> None:
    facts = EngineFacts.from_info({
        "ServerVersion": "20.10.24+dfsg1", "CgroupVersion": "1", "CgroupDriver": "cgroupfs",
        "SecurityOptions": ["name=apparmor", "name=seccomp,profile=default"],
        "Architecture": "x86_64", "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
    })
    assert facts.version_tuple == (20, 10)
    assert facts.security == {"apparmor", "seccomp"}
    assert not facts.rootless and facts.debian_arch == "amd64"
    assert facts.describe() == ("Docker 20.10.24+dfsg1, cgroup v1 (cgroupfs), rootful, x86_64, "
                                "Debian GNU/Linux 12 (bookworm)")


def test_boot_report_shows_the_consoles_last_lines_without_colours() -> None:
    console = "\r\n".join([f"line {n}" for n in range(30)] + [
        "\x1b[0;1;31mFailed to create /init.scope control group: Read-only file system\x1b[0m",
        "[\x1b[0;1;31m!!!!!!\x1b[0m] Failed to allocate manager object.", ""])
    report = console_report(console, engine("26.1.5", 2), choose(engine("26.1.5", 2)))
    lines = report.splitlines()
    assert lines[1] == "  console (last 12 lines):"
    assert lines[2] == "    line 20"
    assert lines[12] == "    Failed to create /init.scope control group: Read-only file system"
    assert lines[13] == "    [!!!!!!] Failed to allocate manager object."
    assert lines[14].startswith("  engine: Docker 26.1.5, cgroup v2")
    assert lines[14].endswith("run mode private-cgroup")
    assert OVERRIDE in lines[15]
    assert "\x1b" not in report


def test_boot_report_of_a_silent_console() -> None:
    report = console_report("", engine(), choose(engine()))
    assert "console (last 0 lines):\n    (nothing)" in report


def test_the_base_image_is_bootstrapped_for_the_engines_architecture() -> None:
    from lab.docker.image import debootstrap_command

    facts = engine("28.3.2", 2, arch="aarch64", system="Docker Desktop")
    command = debootstrap_command("/tmp/root", facts.debian_arch)
    assert command[:3] == ["debootstrap", "--variant=minbase", "--arch=arm64"]
    assert command[-2:] == ["bookworm", "/tmp/root"]


def test_boot_timeout_defaults_to_90_s_and_refuses_nonsense(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.targets.base import BOOT_TIMEOUT, boot_timeout

    monkeypatch.delenv(BOOT_TIMEOUT, raising=False)
    assert boot_timeout() == 90
    monkeypatch.setenv(BOOT_TIMEOUT, "15")
    assert boot_timeout() == 15
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(BOOT_TIMEOUT, bad)
        with pytest.raises(UsageError, match=f"{BOOT_TIMEOUT}={bad}: must be"):
            boot_timeout()


def test_doctor_names_the_mode_or_says_what_to_change() -> None:
    from lab.targets.docker import run_mode_check as _run_mode

    good = _run_mode(engine("26.1.5", 2, "apparmor"))
    assert good.ok and good.detail.startswith("private-cgroup: ")
    assert "apparmor=unconfined" in good.detail
    bad = _run_mode(engine("24.0.7", 1, "rootless"))
    assert not bad.ok and bad.required  # so `lab doctor` exits 3
    assert "cgroup v2" in bad.fix


def test_boot_report_says_what_to_try_next_by_who_chose_the_mode() -> None:
    facts = engine("26.1.5", 2)
    chosen = choose(facts)
    assert console_report("", facts, chosen).endswith(
        f"{OVERRIDE}=host-cgroup tries another way")
    forced = dataclasses.replace(chosen, why=f"chosen by {OVERRIDE}; {chosen.why}")
    assert console_report("", facts, forced).endswith(f"unset {OVERRIDE} to let lab choose")


def test_the_run_mode_check_says_which_mode_and_why_or_what_is_wrong() -> None:
    from lab.prerequisites import Check
    from lab.targets.docker import run_mode_check

    facts = engine("26.1.5", 2, "apparmor")
    mode = choose(facts)
    assert run_mode_check(facts) == Check(
        "server run mode", True, "; ".join([f"{mode.name}: {mode.why}", *mode.notes]))
    assert len(mode.notes) >= 1  # so the joining of notes is seen
    bad = engine("24.0.7", 1, "rootless")
    with pytest.raises(PrerequisiteError) as caught:
        choose(bad)
    assert run_mode_check(bad) == Check("server run mode", False, "none works on this engine",
                                        str(caught.value))


class Asked:
    """A stand-in engine client for `lab doctor`'s docker checks: what was asked of it."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("current", [True, False])
def test_doctor_asks_the_engine_its_facts_the_image_and_the_cache(
        monkeypatch: pytest.MonkeyPatch, current: bool) -> None:
    import lab.docker.image
    import lab.targets.docker as docker_target
    from lab.config import DEFAULT_IMAGE
    from lab.prerequisites import Check

    client, facts, asked = Asked(), engine("26.1.5", 2), []
    cache = Check("package cache", False, "not running", required=False)
    monkeypatch.setattr(docker_target, "docker_client",
                        lambda timeout: asked.append(("client", timeout)) or client)
    monkeypatch.setattr(docker_target, "engine_facts",
                        lambda c: asked.append(("facts", c)) or facts)
    monkeypatch.setattr(lab.docker.image, "image_is_current",
                        lambda c, tag, arch: asked.append(("image", c, tag, arch)) or current)
    monkeypatch.setattr(docker_target, "cache_check", lambda c: asked.append(("cache", c))
                        or cache)

    checks = docker_target.DockerTarget.prerequisites()

    assert asked == [("client", 10), ("facts", client), ("image", client, DEFAULT_IMAGE, "amd64"),
                     ("cache", client)]
    assert client.closed
    image = Check("base image", current, DEFAULT_IMAGE if current else
                  f"{DEFAULT_IMAGE} missing or out of date", "run `lab image build`")
    assert checks == [Check("docker engine", True, facts.describe()),
                      docker_target.run_mode_check(facts), image, cache]


@pytest.mark.parametrize(("uid", "fix"), [
    (0, "run `make setup` (installs docker.io and starts dockerd)"),
    (1000, "install Docker Engine or Docker Desktop and start it")])
def test_doctor_without_an_engine_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch,
                                                      uid: int, fix: str) -> None:
    import lab.targets.docker as docker_target
    from lab.prerequisites import Check

    def no_engine(timeout: float) -> None:
        raise PrerequisiteError("no Docker engine answers at /var/run/docker.sock; details")

    monkeypatch.setattr(docker_target, "docker_client", no_engine)
    monkeypatch.setattr(docker_target.os, "geteuid", lambda: uid)

    assert docker_target.DockerTarget.prerequisites() == [
        Check("docker engine", False, "no Docker engine answers at /var/run/docker.sock", fix)]
