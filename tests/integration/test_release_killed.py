"""`kill -9` of a `lab release` at each of its steps, through a real HAProxy, then the next command.

A kill leaves what was there at that instant: new containers made, HAProxy's weights split.
The release's journal in .lab/state.db says which step had begun; the test watches it from
outside (read-only SQLite, as any program could) and kills the process the moment a step
begins. Then the next command must name the interrupted release and put it right, and the
invariant holds after every command: traffic reaches at most two generations, and exactly one
once the release has been rolled back or promoted. Traffic is judged by an independent HTTP
client through HAProxy (which version answers), never by lab's own word.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

import docker
import pytest
from journalwatch import running_step
from labhelpers import Lab, lab_command, release_lab_for_module
from loadgen import Load, get

from lab.balancers.haproxy import BACKEND, SOCKET


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory,
           docker_client: docker.DockerClient) -> Iterator[Lab]:
    """Two web servers (v1) behind HAProxy on a free port; 2 s canary steps."""
    with release_lab_for_module(docker_client, tmp_path_factory.mktemp("kill"),
                                step_seconds=2) as lab:
        yield lab


# looking from outside ----------------------------------------------------------------------


def versions(lab: Lab, requests: int = 40) -> Counter[str]:
    """Which versions answer through HAProxy (the last word of each page)."""
    port = int(lab.read_yml()["balancer"]["listen"])
    seen: Counter[str] = Counter()
    for _ in range(requests):
        status, page = get(port)
        seen[page.split()[-1] if status == 200 and page else "failed"] += 1
    return seen


def web_containers(lab: Lab) -> set[str]:
    return {c.labels["lab.server"] for c in lab.containers() if c.labels["lab.role"] == "web"}


def history(lab: Lab) -> list[dict]:
    return json.loads(lab.run("history", "--json").stdout)


def journal_step(lab: Lab) -> str | None:
    """The step the running release has begun last, read from its journal; None if none."""
    return running_step(lab.dir / ".lab" / "state.db")


def haproxy_weights(lab: Lab) -> set[int]:
    """The weights HAProxy gives the web servers now, asked on its own runtime socket."""
    shown = lab.container("lb-1").exec_run(["sh", "-c", f"echo 'show stat' | socat stdio {SOCKET}"])
    rows = csv.DictReader(io.StringIO(shown.output.decode().lstrip("# ")))
    return {int(row["weight"]) for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("BACKEND", "FRONTEND")}


class Releasing:
    """A `lab release` running in a session of its own, watched through its journal. On exit
    the whole session is killed: what the release started (an ansible-playbook, an ssh
    master) is not the test's to leave running; a user's kill leaves them, and the next
    command copes with that too."""

    def __init__(self, lab: Lab, *args: str) -> None:
        self.lab = lab
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(lab_command("release", *args), cwd=lab.dir,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=self.log, text=True, start_new_session=True)

    def __enter__(self) -> Releasing:
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_for(self, step: str, weights: set[int] | None = None,
                 deadline: float = 300) -> None:
        """Return once the journal says ``step`` has begun (and, with ``weights``, once
        HAProxy's weights are those: the step's traffic has moved)."""
        give_up = time.monotonic() + deadline
        while journal_step(self.lab) != step or (
                weights is not None and haproxy_weights(self.lab) != weights):
            if self.process.poll() is not None:
                raise AssertionError(f"lab release ended ({self.process.returncode}) before "
                                     f"{step}: {self.stderr()[-800:]}")
            assert time.monotonic() < give_up, f"the release never reached {step}"
            time.sleep(0.01)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL


def kill_at(lab: Lab, step: str, *args: str, weights: set[int] | None = None) -> None:
    """`lab release ARGS`, killed with SIGKILL the moment ``step`` has begun (see wait_for)."""
    with Releasing(lab, *args) as release:
        release.wait_for(step, weights)
        release.kill()


def assert_named_as_interrupted(lab: Lab, step: str, traffic: str = "") -> str:
    """`lab status` and `lab history` say a release was interrupted, at which step, and
    (``traffic``) where traffic goes now."""
    [stopped] = [r for r in history(lab) if r["outcome"] == "interrupted"]
    status = lab.run("status")
    assert f"release {stopped['id']} was interrupted at {step}" in status.stderr, status.stderr
    assert f"traffic now: {traffic}" in status.stderr, status.stderr
    assert "`lab rollback` puts it right" in status.stderr
    return stopped["id"]


def assert_one_generation_serves(lab: Lab, version: str, servers: set[str]) -> None:
    """Exactly one generation takes traffic, and it is the one expected."""
    assert versions(lab) == Counter({version: 40})
    assert web_containers(lab) == servers
    status = json.loads(lab.run("status", "--json").stdout)
    generations = {s["generation"] for s in status if s["role"] == "web"
                   and s.get("balancer", {}).get("share", 0) > 0}
    assert len(generations) == 1, status


def current_version(lab: Lab) -> str:
    [(version, _count)] = versions(lab).items()
    return version


# the tests, in the order they run: each leaves one generation serving ------------------------


def test_killed_while_provisioning_is_named_refused_then_rolled_back(killed: Lab) -> None:
    before = web_containers(killed)
    kill_at(killed, "provision", "--set", "version=v2")
    assert len(web_containers(killed)) == 4  # the new generation was made, then left

    release_id = assert_named_as_interrupted(killed, "provision")
    for command in ("bake", "provision"):
        refused = killed.run(command, check=False)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"error: release {release_id} was interrupted at provision (new servers: "
            f"{', '.join(sorted(web_containers(killed) - before))}): `lab rollback` puts it "
            f"right, then run `lab {command}` again"]

    mended = killed.run("rollback")
    assert f"release {release_id}: rolled-back (interrupted at provision" in mended.stdout
    assert_one_generation_serves(killed, "v1", before)
    assert history(killed)[-1]["outcome"] == "rolled-back"
    # Baking works again; later kills release from this image and one of v3 (no provisioning).
    killed.run("verify")
    killed.run("bake", "--version", "v1")


def test_the_next_release_puts_a_killed_one_right_then_serves_one_version(killed: Lab) -> None:
    """The defect this guards: after a kill at 50%, the next release took the killed one's
    servers for the old generation and left the first one a share for good."""
    kill_at(killed, "canary 50%", "--set", "version=v2", weights={50})
    assert set(versions(killed)) == {"v1", "v2"}  # split, as the kill left it
    assert_named_as_interrupted(killed, "canary 50%", "generation 1 50%, generation 2 50%")

    with Load(int(killed.read_yml()["balancer"]["listen"]), rate=30, threads=2) as load:
        killed.run("release", "--set", "version=v3", timeout=600)
    assert load.failed == 0
    *_, mended, promoted = history(killed)
    assert mended["outcome"] == "rolled-back"
    assert mended["reason"].startswith("interrupted at canary 50%")
    assert promoted["outcome"] == "promoted" and set(promoted["old"]) == {"web-1", "web-2"}
    assert_one_generation_serves(killed, "v3", set(promoted["new"]))
    killed.run("verify")
    killed.run("bake", "--version", "v3")


def other_image(lab: Lab) -> tuple[str, str]:
    """The baked version not serving now, and its image."""
    version = "v1" if current_version(lab) == "v3" else "v3"
    return version, f"lab/{lab.name}-web:{version}"


@pytest.mark.parametrize("step", ["create", "verify + join", "canary 10%", "canary 100%"])
def test_killed_before_promote_is_rolled_back_by_the_next_rollback(killed: Lab,
                                                                   step: str) -> None:
    before, serving = web_containers(killed), current_version(killed)
    version, image = other_image(killed)
    kill_at(killed, step, "--from-image", image,
            weights={0, 100} if step == "canary 100%" else None)
    if step == "canary 100%":  # all traffic on the new generation, the old one still there
        assert versions(killed) == Counter({version: 40})
    assert_named_as_interrupted(killed, step)

    killed.run("rollback")

    assert_one_generation_serves(killed, serving, before)
    assert history(killed)[-1]["reason"].startswith(f"interrupted at {step}")


def test_killed_while_promoting_the_promote_is_finished(killed: Lab) -> None:
    version, image = other_image(killed)
    kill_at(killed, "promote", "--from-image", image)
    assert_named_as_interrupted(killed, "promote")

    killed.run("rollback")

    last = history(killed)[-1]
    assert last["outcome"] == "promoted" and "interrupted at promote" in last["reason"]
    assert_one_generation_serves(killed, version, set(last["new"]))


def test_killed_while_rolling_back_is_rolled_back_again(killed: Lab) -> None:
    """Ctrl-C at the first canary step starts a rollback; a kill then leaves it half done."""
    before, serving = web_containers(killed), current_version(killed)
    _version, image = other_image(killed)
    with Releasing(killed, "--from-image", image) as release:
        release.wait_for("canary 10%")
        release.process.terminate()  # SIGTERM, handled as Ctrl-C: the rollback begins
        release.wait_for("rollback")
        release.kill()
    assert_named_as_interrupted(killed, "rollback")

    killed.run("release", "--from-image", image, timeout=600)  # puts it right, then releases

    *_, mended, promoted = history(killed)
    assert mended["outcome"] == "rolled-back"
    assert mended["reason"].startswith("interrupted at rollback")
    assert promoted["outcome"] == "promoted" and set(promoted["old"]) == before
    assert current_version(killed) != serving


def test_sigterm_rolls_back_as_ctrl_c_does(killed: Lab) -> None:
    before, serving = web_containers(killed), current_version(killed)
    _version, image = other_image(killed)
    with Releasing(killed, "--from-image", image) as release:
        release.wait_for("canary 10%")
        release.process.terminate()
        assert release.process.wait(timeout=120) == 130, release.stderr()
        said = release.stderr()
    assert "interrupted (SIGTERM); cleaned up what this command had started" in said
    assert history(killed)[-1]["reason"] == "interrupted (SIGTERM)"
    assert_one_generation_serves(killed, serving, before)
