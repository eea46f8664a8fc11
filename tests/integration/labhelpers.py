"""Helpers for the integration tests: a lab made with `lab init`, driven by the real CLI."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import matplotlib.image
import yaml
from ctrlc import interruptible
from docker.errors import NotFound

from lab.access.ports import free_local_port
from lab.config import LAB_NAME
from lab.course.grader import CheckReport
from lab.scaffold import edit_lab_yml

RUN_LABEL = "lab.test-run"
TIMEOUT = 180  # seconds for any one CLI call; `lab up` waits for at most 90 s per server


# labs ------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """A lab directory made by `lab init`, and ways to look at it from outside lab."""

    name: str
    dir: Path
    client: docker.DockerClient

    def run(self, *args: str, check: bool = True, timeout: float = TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            lab_command(*args), cwd=self.dir, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, check=False, env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"lab {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """`lab ARGS` running on, its stderr a pipe; Ctrl-C (SIGINT) interrupts it as in a
        terminal, also when the suite was started with SIGINT ignored (see ctrlc.py)."""
        return interruptible(lab_command(*args), cwd=self.dir, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def status(self) -> dict[str, dict]:
        """`lab status --json`, by server name."""
        servers = json.loads(self.run("status", "--json").stdout)
        return {s["name"]: s for s in servers}

    @property
    def label(self) -> str:
        return f"lab.name={self.name}"

    def containers(self) -> list:
        return self.client.containers.list(all=True, filters={"label": self.label},
                                           ignore_removed=True)

    def networks(self) -> list:
        return self.client.networks.list(filters={"label": self.label})

    def container(self, server: str):  # a docker Container
        return self.client.containers.get(f"{self.name}-{server}")

    def set_count(self, count: int, role: str = "web") -> None:
        edit_lab_yml(self.dir / "lab.yml", count=count, role=role)

    def read_yml(self) -> dict:
        return yaml.safe_load((self.dir / "lab.yml").read_text())

    def write_yml(self, data: dict) -> None:
        (self.dir / "lab.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def lab_command(*args: str) -> list[str]:
    """The CLI as a user runs it, from the interpreter running the tests."""
    return [sys.executable, "-m", "lab", *args]


def unique_lab_name(hint: str = "") -> str:
    name = f"t-{secrets.token_hex(3)}" + (f"-{hint}" if hint else "")
    assert LAB_NAME.match(name), name
    return name


def new_lab(client: docker.DockerClient, where: Path, count: int, name: str | None = None,
            balancer: bool = False) -> Lab:
    """`lab init` a lab into ``where`` with ``count`` web servers.

    The example's balancer publishes a fixed 127.0.0.1 port (its ``listen``), which would
    collide with any other lab or program using it; these tests are about servers, so it is
    left out unless asked for.
    """
    name = name or unique_lab_name()
    directory = where / name
    result = subprocess.run(lab_command("init", str(directory), "--name", name),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    config = edit_lab_yml(directory / "lab.yml", count=count, role="web", balancer=balancer)
    assert config.name == name
    return Lab(name, directory, client)


@contextmanager
def lab_for_module(client: docker.DockerClient, where: Path, *commands: tuple[str, ...],
                   count: int = 2, balancer: bool = False,
                   edit: Callable[[Lab], None] | None = None) -> Iterator[Lab]:
    """A lab shared by a module's tests: made, edited, taken through ``commands``, and
    always torn down at the end."""
    lab = new_lab(client, where, count=count, balancer=balancer)
    if edit is not None:
        edit(lab)
    try:
        for command in commands:
            lab.run(*command, timeout=600)
        yield lab
    finally:
        teardown_lab(lab)


@contextmanager
def release_lab_for_module(client: docker.DockerClient, where: Path,
                           step_seconds: float) -> Iterator[Lab]:
    """A module's lab for releases: two web servers (v1) behind HAProxy on a free 127.0.0.1
    port, up and provisioned, canary steps of ``step_seconds``. Once its containers are gone
    (whichever tests ran), the images its bakes made go too."""

    def fast_and_free(lab: Lab) -> None:
        edit_lab_yml(lab.dir / "lab.yml", listen=free_local_port(), step_seconds=step_seconds)

    made: list[Lab] = []
    try:
        with lab_for_module(client, where, ("up",), ("provision",), balancer=True,
                            edit=fast_and_free) as lab:
            made.append(lab)
            yield lab
    finally:
        for image in [i for lab in made
                      for i in client.images.list(filters={"label": f"lab.name={lab.name}"})]:
            client.images.remove(image.id, force=True)


def teardown_lab(lab: Lab) -> None:
    """`lab destroy`; if that fails, remove by label so one test cannot spoil the next."""
    with contextlib.suppress(Exception):
        lab.run("destroy", check=False, timeout=120)
    for container in lab.containers():
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)
    for network in lab.networks():
        with contextlib.suppress(NotFound):
            network.remove()


# README's own commands, on the files lab keeps in .lab/ -----------------------------------------

REACH_TEST = '''
def test_reached(host):
    assert host.run("true").rc == 0
'''


def readme_commands(lab: Lab, where: Path, role: str = "web") -> dict[str, set[str]]:
    """Which servers README's own commands reach, run as a user runs them on lab's files:
    plain `ansible -m ping` on .lab/inventory.yml, `ssh -F .lab/ssh_config NAME true` for each
    host the file names, and testinfra's `ansible://ROLE` backend on the inventory."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = functools.partial(subprocess.run, cwd=lab.dir, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL, check=False, env=env)
    pinged = run(["ansible", "-i", ".lab/inventory.yml", "all", "-m", "ping", "-o"]).stdout
    answered = {line.split(" | ")[0] for line in pinged.splitlines() if " | SUCCESS" in line}
    with_ssh = {name for name in ssh_config_hosts(lab)
                if run(["ssh", "-F", ".lab/ssh_config", name, "true"]).returncode == 0}
    test = where / "test_reach.py"
    test.write_text(REACH_TEST)
    tested = run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                  f"--rootdir={where}", f"--hosts=ansible://{role}",
                  "--ansible-inventory=.lab/inventory.yml", str(test)]).stdout
    passed = set(re.findall(r"\[ansible://([\w-]+)\] PASSED", tested))
    return {"ansible": answered, "ssh": with_ssh, "testinfra": passed}


def ssh_config_hosts(lab: Lab) -> list[str]:
    config = lab.dir / ".lab" / "ssh_config"
    return [line.split()[1] for line in config.read_text().splitlines()
            if line.startswith("Host ")]


def shared_sockets(lab: Lab, names: list[str]) -> dict[str, Path]:
    """Each server's shared SSH connection socket (/tmp/lab-ssh-*), opened now if it was not:
    what `ssh -F .lab/ssh_config NAME` reuses."""
    sockets = {}
    for name in names:
        argv = ["ssh", "-F", str(lab.dir / ".lab" / "ssh_config"), name]
        subprocess.run([*argv, "true"], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL, check=True)
        shown = subprocess.run(["ssh", "-G", *argv[1:]], capture_output=True, text=True,
                               timeout=60, check=True).stdout
        [path] = [line.split(" ", 1)[1] for line in shown.splitlines()
                  if line.startswith("controlpath ")]
        sockets[name] = Path(path)
    return sockets


# a real browser ---------------------------------------------------------------------------------

BROWSER_ONLY = "not an origin"  # netlog's initiator of the browser's own requests (updates...)


@dataclass
class Browsed:
    pixels: Any  # the screenshot, rows x columns x RGB(A) floats in 0..1
    page_requests: list[str]  # every URL the page itself asked the network for


def browse(page: Path, where: Path, width: int = 1200, height: int = 1400) -> Browsed:
    """Open ``page`` from a file:// URL in Debian's chromium, headless, with networking off
    (its own empty network namespace), and take a screenshot. Chromium's network log says
    what the page asked for; the browser's own background requests are told apart by it."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (scripts/setup.sh installs it)"
    shot, netlog = where / "screenshot.png", where / "netlog.json"
    result = subprocess.run(
        ["unshare", "--net", chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--hide-scrollbars", f"--window-size={width},{height}",
         f"--user-data-dir={where / 'profile'}", f"--screenshot={shot}",
         f"--log-net-log={netlog}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert shot.is_file(), f"no screenshot: {result.stderr[-2000:]}"
    log = json.loads(netlog.read_text())
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    asked = [e["params"] for e in log["events"]
             if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})]
    return Browsed(
        pixels=matplotlib.image.imread(shot),
        page_requests=[p["url"] for p in asked if p.get("initiator") != BROWSER_ONLY
                       and not p["url"].startswith("file:")])


# a real browser driven by selenium (the class page) ----------------------------------------------

# The class page redraws every second: its grid is read in one script call, never element by
# element (an element found before a redraw is gone after it).
READ_CLASS_GRID = """
return Array.from(document.querySelectorAll('#grid tbody tr')).map((row) => [
  row.querySelector('th').textContent,
  Object.fromEntries(Array.from(row.querySelectorAll('td[data-exercise]')).map(
    (td) => [td.dataset.exercise, td.innerText]))]);
"""


@contextmanager
def chromium_driver(profile: Path, width: int = 1500, height: int = 900) -> Iterator[Any]:
    """Debian's chromium, headless, driven through Debian's chromium-driver (a selenium
    ``webdriver.Chrome``), quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver: scripts/setup.sh installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={width},{height}", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield browser
    finally:
        browser.quit()


def class_grid_shown(browser: Any) -> dict[str, dict[str, str]]:
    """Each student's row as the class page shows it: exercise number -> the cell's text."""
    return dict(browser.execute_script(READ_CLASS_GRID))


def first_feedback(report: CheckReport) -> str:
    """What an exercise check said first when it failed (the proofs of every exercise compare
    it with the feedback exercise.yml promises)."""
    assert not report.ok, "check passed where it should fail"
    step = report.first_failure
    assert step is not None
    return step.detail
