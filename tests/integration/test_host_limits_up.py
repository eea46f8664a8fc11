"""`lab up` on the real engine, on a machine whose inotify instances (lowered by the test,
through a /proc/sys of its own) leave no room for its servers: refused with the setting to
raise, before any container or network is made. `lab doctor` says the same."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from labhelpers import Lab

from lab.docker.limits import PROC_SYS


def test_lab_up_is_refused_before_anything_is_made_when_the_servers_would_not_fit(
        make_lab: Callable[..., Lab], tmp_path: Path) -> None:
    sys_dir = tmp_path / "sys"
    (sys_dir / "fs/inotify").mkdir(parents=True)
    (sys_dir / "fs/inotify/max_user_instances").write_text("1\n")
    env = os.environ | {PROC_SYS: str(sys_dir), "COLUMNS": "400"}
    lab = make_lab(count=2)

    result = lab.run("up", check=False, env=env)

    assert result.returncode == 3, result.stderr
    verdict = result.stderr.splitlines()[-1]
    assert verdict.startswith("error: no room on this machine for 2 more servers: inotify "
                              "instances are 1 per user (fs.inotify.max_user_instances)"), (
        result.stderr)
    assert "as root run `sysctl -w fs.inotify.max_user_instances=1024`" in verdict
    assert "Traceback" not in result.stderr
    assert lab.containers() == [] and lab.networks() == []
    assert lab.status() == {}

    doctor = lab.run("doctor", check=False, env=env)
    assert doctor.returncode == 3
    assert "sysctl -w fs.inotify.max_user_instances=1024" in doctor.stdout
    assert "/etc/sysctl.d/99-lab.conf" in doctor.stdout
