"""`lab demo`, README's main command, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import docker
from labhelpers import lab_command


def test_demo_tells_the_whole_story_and_leaves_nothing_behind(
        tmp_path: Path, docker_client: docker.DockerClient, test_run_label: str) -> None:
    marker = f"lab-demo-test-{uuid.uuid4().hex}"  # inherited by whatever the demo starts
    temporary, here = tmp_path / "tmp", tmp_path / "here"
    temporary.mkdir()
    here.mkdir()
    env = os.environ | {"TMPDIR": str(temporary),  # where the demo makes its temporary lab
                        "LAB_TEST_MARKER": marker}
    result = subprocess.run(lab_command("demo", "--step-seconds", "1"), cwd=here, env=env,
                            capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split("  ")[0].strip(): line.split() for line in result.stdout.splitlines()}
    good, slow = rows["release v2, paused at 50%"], rows["release slow v3"]
    broken = rows["release broken v4"]
    assert good.count("promoted") == 2  # expected and outcome
    assert good[good.index("failed:") + 1] == "0"  # no request failed during the release
    held = re.search(r"paused s: ([\d.]+)", result.stdout)  # held, then promoted
    assert held is not None and float(held[1]) >= 2, result.stdout
    assert slow.count("rolled-back") == 2  # by the latency gate: its page says so, below
    assert broken.count("rolled-back") == 2
    demo_containers = [
        c.name for c in docker_client.containers.list(
            all=True, filters={"label": test_run_label}, ignore_removed=True)
        if c.labels.get("lab.name", "").startswith("demo-")]
    assert demo_containers == []
    assert list(temporary.iterdir()) == []  # the temporary lab, its key and state are gone
    # What it leaves is the picture of each release, where it was run, and says so.
    pages = sorted(here.iterdir())
    assert [p.name for p in pages] == ["lab-demo-v2-promoted.html",
                                       "lab-demo-v3-rolled-back.html",
                                       "lab-demo-v4-rolled-back.html"]
    for page in pages:
        assert f"report: {page.name}" in result.stdout
        assert "<svg" in page.read_text()
    assert "rolled back: at 10%: p99 vs old" in pages[1].read_text()
    assert "rolled back: the new generation failed" in pages[2].read_text()
    # No process the demo started outlives it: an ssh master holds a /tmp/lab-ssh-* socket.
    assert processes_with(marker) == []


def processes_with(marker: str) -> list[str]:
    """Command lines of the processes whose environment carries ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found
