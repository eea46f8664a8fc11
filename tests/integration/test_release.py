"""The replace-and-rollback cycle behind a real HAProxy, judged by an independent HTTP client."""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import math
import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import docker
import pytest
from labhelpers import (
    Lab,
    browse,
    readme_commands,
    release_lab_for_module,
    shared_sockets,
)
from loadgen import Load, get

from lab.release import ReleaseReport
from lab.release.report import Chart, chart


def versions(port: int, requests: int = 30) -> Counter[str]:
    """Which versions answer (the last word of each page); failures count as 'failed'."""
    seen: Counter[str] = Counter()
    for _ in range(requests):
        status, page = get(port)
        seen[page.split()[-1] if status == 200 and page else "failed"] += 1
    return seen


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory,
             docker_client: docker.DockerClient) -> Iterator[Lab]:
    """Two web servers (v1) behind HAProxy on a free port; releases move fast (1 s steps)."""
    with release_lab_for_module(docker_client, tmp_path_factory.mktemp("rel"),
                                step_seconds=1) as lab:
        yield lab


def port_of(lab: Lab) -> int:
    return int(lab.read_yml()["balancer"]["listen"])


def web_containers(lab: Lab) -> set[str]:
    return {c.labels["lab.server"] for c in lab.containers() if c.labels["lab.role"] == "web"}


def last_release(lab: Lab) -> dict:
    return json.loads(lab.run("history", "--json").stdout)[-1]


def current_version(lab: Lab) -> str:
    seen = versions(port_of(lab))
    assert len(seen) == 1, seen
    return next(iter(seen))


def test_provision_returns_once_the_balancer_health_checks_pass(balanced: Lab) -> None:
    broken = balanced.run("provision", "web-1", "--set", "broken=true", check=False)
    assert broken.returncode == 1
    assert "health check (GET /health on port 80) fails on web-1" in broken.stderr
    balanced.run("provision")  # mends web-1; returns only once the balancer sees it healthy
    status = json.loads(balanced.run("status", "--json").stdout)
    health = {s["name"]: s["balancer"]["health"] for s in status if "balancer" in s}
    assert health == {"web-1": "UP", "web-2": "UP"}


def test_release_from_an_image_that_is_not_there_is_refused_before_it_starts(
        balanced: Lab) -> None:
    before = web_containers(balanced)
    releases = len(json.loads(balanced.run("history", "--json").stdout))
    result = balanced.run("release", "--from-image", "lab/nosuch:v0", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no image lab/nosuch:v0 on docker: `lab bake` makes one "
        "(`lab history` shows what each release ran)"]
    assert web_containers(balanced) == before
    assert len(json.loads(balanced.run("history", "--json").stdout)) == releases


def test_good_release_under_load_fails_no_request(balanced: Lab, tmp_path: Path) -> None:
    before = web_containers(balanced)
    assert current_version(balanced) == "v1"
    old_sockets = shared_sockets(balanced, sorted(before))
    with Load(port_of(balanced)) as load:
        balanced.run("release", "--set", "version=v2", timeout=600)
    assert load.failed == 0, f"{load.failed} of {load.requests} requests failed"
    assert versions(port_of(balanced), 40) == Counter({"v2": 40})
    after = web_containers(balanced)
    assert len(after) == 2 and not after & before  # every old container is gone
    report = last_release(balanced)
    # The load was on through every step and the promote: requests of its own in flight in
    # each (a count, whatever the machine's speed: a busy machine sends fewer, never none).
    in_flight = requests_in_flight(load, report)
    assert [label for label, _ in in_flight] == ["10%", "50%", "100%", "promote"]
    assert all(count > 0 for _, count in in_flight), in_flight
    assert report["outcome"] == "promoted" and set(report["new"]) == after
    assert [s["percent"] for s in report["steps"]] == [10, 50, 100]
    status = json.loads(balanced.run("status", "--json").stdout)
    pool = {s["name"]: s["balancer"] for s in status if "balancer" in s}
    assert set(pool) == after
    assert all(b["weight"] == 100 and b["health"] == "UP" and b["share"] == 0.5
               for b in pool.values())
    # lab's files follow the servers: the new generation's names are in them, the old gone,
    # and the old servers' shared connections went with them.
    assert readme_commands(balanced, tmp_path) == {
        "ansible": after | {"lb-1"}, "ssh": after | {"lb-1"}, "testinfra": after}
    assert [path for path in old_sockets.values() if path.exists()] == []
    # Its picture: the data behind it adds up to what the probe measured, the share line
    # steps as the balancer was told, and the page opens in a real browser, offline.
    data = drawn(report)
    assert compress([percent for _t, percent in data.share_line]) == [0, 10, 50, 100]
    assert [e["percent"] for e in report["timeline"]["events"] if e["kind"] == "step"] == [
        10, 50, 100]
    assert data.rollback is None and all(ok for _t, _label, ok, _why in data.gates)
    page = Path(balanced.run("report", "-o", str(tmp_path / "good.html")).stdout.strip())
    shown = browse(page, tmp_path)
    assert shown.page_requests == []
    assert_chart_drawn(shown.pixels)


def requests_in_flight(load: Load, report: dict) -> list[tuple[str, int]]:
    """For each canary step and the promote of ``report``, how many of ``load``'s requests
    were in flight in it (sent before it ended, answered after it began). The release's
    timeline counts from its wall-clock ``started``; the load's samples are on this process's
    monotonic clock: one machine, so one offset turns the one into the other."""
    timeline = report["timeline"]
    origin = timeline["started"] - (time.time() - time.monotonic())  # t=0, monotonic here
    marks = [(e["label"], origin + e["t"]) for e in timeline["events"]
             if e["kind"] in ("step", "promote", "destroyed")]  # each ends where the next begins
    return [(label, sum(s.started < end and s.started + s.seconds > start
                        for s in load.samples))
            for (label, start), (_, end) in pairwise(marks)]


def drawn(report: dict) -> Chart:
    """What `lab report` draws of a release, after checking it against the probe's totals:
    every request the probe counted is in exactly one second, by version and as an error."""
    seconds = report["timeline"]["seconds"]
    traffic = report["traffic"]
    assert sum(sum(s["requests"].values()) + s["errors"] for s in seconds) == traffic[
        "requests"] > 0
    assert sum(s["errors"] for s in seconds) == traffic["errors"]
    for version, count in traffic["versions"].items():
        assert sum(s["requests"].get(version, 0) for s in seconds) == count
    data = chart(ReleaseReport.from_dict(report))
    assert data is not None
    assert [sum(column) for column in zip(*data.requests.values(), strict=True)] == [
        sum(s["requests"].values()) for s in seconds]
    return data


def compress(values: list[float]) -> list[int]:
    """A step line as the steps it takes (percent, rounded): 0 0 10 10 50 -> 0 10 50."""
    steps: list[int] = []
    for value in values:
        if not steps or steps[-1] != round(value):
            steps.append(round(value))
    return steps


def assert_chart_drawn(pixels: Any, top: int = 60, bottom: int = 560) -> None:
    """Where the chart stands on the page, the screenshot is a picture, not a blank: much of
    it is coloured, and the first version's area colour is there."""
    region = pixels[top:bottom, 40:1160, :3]
    coloured = (region.sum(axis=2) < 2.9).mean()
    blue = ((region[..., 2] > region[..., 0] + 0.2) & (region[..., 2] > 0.5)).mean()
    assert coloured > 0.2, f"only {coloured:.0%} of the chart's area is drawn"
    assert blue > 0.05, f"the first version's area covers only {blue:.0%} of the chart"


def test_release_whose_tests_fail_rolls_back(balanced: Lab) -> None:
    before, version = web_containers(balanced), current_version(balanced)
    with Load(port_of(balanced), rate=50, threads=4) as load:
        result = balanced.run("release", "--set", "version=v9", "--set", "broken=true",
                              check=False, timeout=600)
    assert result.returncode == 1 and "rolled back" in result.stderr
    assert "test_health_endpoint_answers_ok" in result.stderr
    assert load.failed == 0  # never in rotation
    assert web_containers(balanced) == before
    assert current_version(balanced) == version
    assert last_release(balanced)["outcome"] == "rolled-back"


def test_release_failing_health_check_is_pulled_back(balanced: Lab) -> None:
    """No tests to catch it (`--untested`, or lab refuses): the balancer's health check is
    the gate that says no."""
    before, version = web_containers(balanced), current_version(balanced)
    original = balanced.read_yml()
    data = json.loads(json.dumps(original))
    data["servers"]["web"]["tests"] = []
    balanced.write_yml(data)
    try:
        result = balanced.run("release", "--untested", "--set", "version=v8", "--set",
                              "broken=true", check=False, timeout=600)
    finally:
        balanced.write_yml(original)
    assert result.returncode == 1 and "health check /health" in result.stderr
    assert web_containers(balanced) == before
    assert current_version(balanced) == version


# A test of the new generation's own, held until the test says how it ends (the file it
# names reads "pass" or "fail"): the tests' gate kept open as long as the test needs.
HELD_TEST = """
import pathlib, time

def test_held_until_the_release_test_says(host):
    verdict = pathlib.Path({verdict!r})
    deadline = time.monotonic() + 600
    while not verdict.exists():
        assert time.monotonic() < deadline, "nobody said how to end"
        time.sleep(0.1)
    assert verdict.read_text() == "pass"
"""


def test_new_servers_join_at_zero_weight_and_take_no_request_before_their_tests_pass(
        balanced: Lab) -> None:
    """Under load, the new servers are in HAProxy's pool and pass its health checks while
    their tests are held: they stay at weight 0 and take no request while the old servers
    take many, until the tests' gate (here: fails, and the release rolls back)."""
    before, version = web_containers(balanced), current_version(balanced)
    verdict = balanced.dir / "held-verdict"
    held = balanced.dir / "tests" / "test_held.py"
    held.write_text(HELD_TEST.format(verdict=str(verdict)))
    original = balanced.read_yml()
    data = json.loads(json.dumps(original))
    data["servers"]["web"]["tests"] = [*original["servers"]["web"]["tests"], "tests/test_held.py"]
    balanced.write_yml(data)
    try:
        with Load(port_of(balanced), rate=50, threads=4) as load:
            release = Watched(balanced.popen("release", "--set", "version=v10"))
            try:
                wait_until("the new servers", release,
                           lambda: len(web_containers(balanced) - before) == len(before))
                new = sorted(web_containers(balanced) - before)
                # Both in the pool, healthy by a check HAProxy completed: the health checks'
                # gate has passed, the tests' gate has not.
                wait_until("health checks passed on the new servers", release, lambda: all(
                    backend_row(balanced, n).get("check_status") == "L7OK" for n in new))
                taken = old_requests(balanced, before)
                # The load goes on until the old servers took 100 more requests (a count,
                # however long a busy machine takes): all of them, none for the new ones.
                wait_until("100 more requests on the old servers", release,
                           lambda: old_requests(balanced, before) >= taken + 100)
                rows = {name: backend_row(balanced, name) for name in new}
                assert {n: (r["status"], r["check_status"], r["weight"], r["stot"])
                        for n, r in rows.items()} == dict.fromkeys(new, ("UP", "L7OK", "0", "0"))
                assert not any("canary" in line for line in release.said()), release.seen
                assert release.process.poll() is None
            finally:
                verdict.write_text("fail")
                code = release.wait()
    finally:
        balanced.write_yml(original)
        held.unlink()
        verdict.unlink(missing_ok=True)
    assert code == 1
    reason = last_release(balanced)["reason"]
    assert reason.startswith("the new generation failed its tests: "), reason
    assert load.failed == 0
    assert web_containers(balanced) == before
    assert current_version(balanced) == version


def wait_until(what: str, release: Watched, check: Callable[[], bool],
               timeout: float = 600) -> None:
    """Return once ``check()`` holds; fail at the deadline, or if lab exits first."""
    deadline = time.monotonic() + timeout
    while not check():
        assert release.process.poll() is None, f"lab exited before {what}: {release.said()[-5:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def old_requests(lab: Lab, names: set[str]) -> int:
    """Requests ``names`` took, by HAProxy's counters."""
    return sum(int(backend_row(lab, name).get("stot") or 0) for name in names)


def canary_failure_bound(load: Load, share: float = 0.10, detection: float = 1.0) -> int:
    """What a bad canary may cost users: its share of the requests sent while the balancer's
    health checks notice (fall 2 x inter 500 ms = 1 s)."""
    return math.ceil(share * load.rate * detection)


def test_canary_that_fails_requests_users_never_see_is_still_pulled_back(balanced: Lab) -> None:
    """Healthy by its health check, no tests to catch it, and HAProxy retries each of its
    500s on an old server: users see nothing wrong; the canary's own counters do."""
    before, version = web_containers(balanced), current_version(balanced)
    playbook = balanced.dir / "playbooks" / "web.yml"
    original_playbook, original_yml = playbook.read_text(), balanced.read_yml()
    assert "return 200" in original_playbook
    playbook.write_text(original_playbook.replace("return 200",
                                                  "return {{ status | default(200) }}"))
    data = json.loads(json.dumps(original_yml))
    data["servers"]["web"]["tests"] = []
    balanced.write_yml(data)
    try:
        with Load(port_of(balanced), rate=50, threads=4) as load:
            result = balanced.run("release", "--untested", "--set", "version=v4", "--set",
                                  "status=500", check=False, timeout=600)
    finally:
        playbook.write_text(original_playbook)
        balanced.write_yml(original_yml)
    assert result.returncode == 1
    report = last_release(balanced)
    assert report["reason"].startswith("at 10%: the new generation failed "), report["reason"]
    assert report["steps"][0]["gate"] == "canary errors"
    assert f"report: .lab/releases/{report['id']}.json" in result.stderr.replace(
        str(balanced.dir) + "/", "")
    # Its picture: the marker stands where the gate said no, inside the 10 % step, with the
    # reason; the new servers' own failures are in the seconds of that step.
    data = drawn(report)
    assert data.rollback is not None
    refused = [(t, why) for t, label, ok, why in data.gates if not ok]
    assert refused == [data.rollback] and data.rollback[1] == report["reason"]
    [(_name, start, end)] = [p for p in data.phases if p[0] == "canary 10%"]
    assert start <= data.rollback[0] <= end
    assert compress([percent for _t, percent in data.share_line]) == [0, 10, 0]
    in_step = range(int(start), int(data.rollback[0]) + 1)
    assert sum(data.canary_failed[s] for s in in_step) == report["steps"][0]["canary"]["failed"]
    assert load.failed == 0  # every failed request was retried on an old server
    assert web_containers(balanced) == before
    assert current_version(balanced) == version


class Watched:
    """A running `lab release` whose stderr a thread reads, so no wait can block on silence."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        """Return once a line with ``text`` is printed; fail at the deadline, or at exit."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"lab exited before printing {text!r}: {self.seen[-5:]}")
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout} s; last lines: {self.seen[-5:]}")

    def said(self) -> list[str]:
        """Every line printed so far (what waits to be read is read, without blocking)."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return self.seen
            if line is None:
                self.lines.put(None)  # the end stays the end for wait_for
                return self.seen
            self.seen.append(line)

    def wait(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return code


def slow_release(lab: Lab, *args: str) -> Watched:
    data = lab.read_yml()
    data["release"]["step_seconds"] = 6
    lab.write_yml(data)
    return Watched(lab.popen("release", *args))


def finish(release: Watched, lab: Lab) -> int:
    code = release.wait()
    data = lab.read_yml()
    data["release"]["step_seconds"] = 1
    lab.write_yml(data)
    return code


def test_new_server_killed_mid_canary_rolls_back(balanced: Lab,
                                                 docker_client: docker.DockerClient) -> None:
    before, version = web_containers(balanced), current_version(balanced)
    with Load(port_of(balanced), rate=50, threads=4) as load:
        process = slow_release(balanced, "--set", "version=v7")
        try:
            process.wait_for("canary 10%...")
            new = web_containers(balanced) - before
            assert len(new) == 2
            docker_client.containers.get(f"{balanced.name}-{sorted(new)[0]}").kill()
        finally:
            code = finish(process, balanced)
    assert code == 1
    reason = last_release(balanced)["reason"]
    assert "stopped running" in reason or "health check failing" in reason, reason
    assert web_containers(balanced) == before
    assert current_version(balanced) == version
    # HAProxy retries a request that met the dead server on a live one; at worst the canary's
    # share fails until the health checks notice.
    assert load.failed <= canary_failure_bound(load), load.failed


def test_health_check_failing_at_the_canary_step_rolls_back(
        balanced: Lab, docker_client: docker.DockerClient) -> None:
    """The new servers passed every gate before traffic; at 10% one of them goes bad."""
    before, version = web_containers(balanced), current_version(balanced)
    with Load(port_of(balanced), rate=50, threads=4) as load:
        process = slow_release(balanced, "--set", "version=v5")
        try:
            process.wait_for("canary 10%...")
            new = sorted(web_containers(balanced) - before)
            container = docker_client.containers.get(f"{balanced.name}-{new[0]}")
            assert container.exec_run("rm /var/www/html/health").exit_code == 0
        finally:
            code = finish(process, balanced)
    assert code == 1
    reason = last_release(balanced)["reason"]
    assert reason == f"at 10%: health check failing on {new[0]}", reason
    assert web_containers(balanced) == before
    assert current_version(balanced) == version
    assert load.failed <= canary_failure_bound(load), load.failed


def test_ctrl_c_mid_release_rolls_back(balanced: Lab) -> None:
    before, version = web_containers(balanced), current_version(balanced)
    process = slow_release(balanced, "--set", "version=v6")
    try:
        process.wait_for("canary 10%...")
        process.process.send_signal(signal.SIGINT)
    finally:
        code = finish(process, balanced)
    assert code == 130
    assert last_release(balanced)["reason"] == "interrupted (Ctrl-C)"
    assert web_containers(balanced) == before
    assert current_version(balanced) == version


def test_bake_then_release_from_image_skips_provisioning(
        balanced: Lab, docker_client: docker.DockerClient) -> None:
    version = current_version(balanced)
    balanced.run("verify")
    tag = balanced.run("bake").stdout.strip()
    assert tag == f"lab/{balanced.name}-web:{version}"
    image = docker_client.images.get(tag)
    assert image.labels["lab.role"] == "web" and image.labels["lab.version"] == version
    balanced.run("release", "--from-image", tag, timeout=600)
    report = last_release(balanced)
    assert report["outcome"] == "promoted" and "provision" not in report["phases"]
    status = json.loads(balanced.run("status", "--json").stdout)
    assert {s["image"] for s in status if s["role"] == "web"} == {tag}
    assert current_version(balanced) == version


def test_rollback_releases_what_ran_before(balanced: Lab) -> None:
    """From what serves now to a version of its own, then `lab rollback`: what served before
    answers again, never the version rolled back from (a rollback that released the current
    version again would leave v11 answering; in the module's order, what served before is the
    baked v2, not lab.yml's v1, so releasing lab.yml again would fail too)."""
    before = current_version(balanced)
    assert before != "v11"
    balanced.run("release", "--set", "version=v11", timeout=600)
    assert current_version(balanced) == "v11"
    rolled = balanced.run("rollback", timeout=600)
    assert current_version(balanced) == before
    report = last_release(balanced)
    assert report["outcome"] == "promoted" and report["rollback_of"] is not None
    # It says what it rolls back and where it goes: the release that served before.
    assert "(version v11, image -) to release " in rolled.stderr, rolled.stderr
    assert balanced.run("history").stdout.count("promoted") >= 3
    # Rolling back again never goes to v11, the version just rolled back from: further back,
    # or a refusal when nothing older is safe.
    again = balanced.run("rollback", check=False, timeout=600)
    assert again.returncode in (0, 2), again.stderr
    assert current_version(balanced) != "v11"
    if again.returncode == 2:
        assert "nothing safe to roll back to" in again.stderr


# a slow request through the real HAProxy during promote -------------------------------------

# A response that flows a byte at a time until the test says it may end (GET /slow/end, or the
# file /tmp/slow-end appears): a request exactly as long as the test needs, on a web server of
# the old generation. It answers behind the server's own nginx (location /slow/), the port
# HAProxy sends traffic to and the one the server publishes.
SLOW_SERVER = """
import http.server, os, time
class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/slow/end":
            open("/tmp/slow-end", "w").close()
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while self.path == "/slow/stream" and not os.path.exists("/tmp/slow-end"):
            self.wfile.write(b"1\\r\\n.\\r\\n")
            self.wfile.flush()
            time.sleep(0.2)
        self.wfile.write(b"4\\r\\ndone\\r\\n0\\r\\n\\r\\n")
http.server.ThreadingHTTPServer(("127.0.0.1", 8081), Slow).serve_forever()
"""
SLOW_LOCATION = ("    location /slow/ { proxy_pass http://127.0.0.1:8081; "
                 "proxy_http_version 1.1; proxy_buffering off; }\\n    location = / {")


def serve_slowly(lab: Lab, server: str, timeout: float = 60) -> None:
    """Start the slow endpoint on ``server`` and wait until nginx answers for it."""
    container = lab.container(server)
    container.exec_run(["python3", "-c", SLOW_SERVER], detach=True)
    site = "/etc/nginx/sites-available/default"
    edited = container.exec_run(["sh", "-c", f"sed -i 's|^    location = / {{|{SLOW_LOCATION}|' "
                                             f"{site} && nginx -s reload"])
    assert edited.exit_code == 0, edited.output
    deadline = time.monotonic() + timeout
    while container.exec_run(["curl", "-sf", "http://127.0.0.1/slow/ready"]).exit_code != 0:
        assert time.monotonic() < deadline, f"the slow endpoint on {server} never answered"
        time.sleep(0.2)


class SlowRequest:
    """A GET of /slow/stream through the balancer, read by a thread until it ends."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.connection.request("GET", "/slow/stream")
        self.response = self.connection.getresponse()
        self.server = self.response.getheader("X-Lab-Server", "")
        self.body = b""
        self.error: Exception | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            self.body = self.response.read()  # raises if the response is cut short
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            self.connection.close()

    @property
    def in_flight(self) -> bool:
        return self._reader.is_alive()

    def wait(self, timeout: float = 60) -> None:
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the slow request neither ended nor failed"


def backend_row(lab: Lab, server: str) -> dict[str, str]:
    """The server's row in HAProxy's own table (``show stat``, by column: status UP, DRAIN,
    MAINT...; weight; scur, requests in flight; stot, requests taken), from its socket; {}
    when it is not in the pool."""
    shown = lab.container("lb-1").exec_run(
        ["sh", "-c", "echo 'show stat' | socat stdio /run/haproxy/admin.sock"])
    assert shown.exit_code == 0, shown.output
    rows = csv.DictReader(io.StringIO(shown.output.decode().lstrip("# ")))
    return next((row for row in rows if (row["pxname"], row["svname"]) == ("app", server)), {})


def first_move_on(lab: Lab, server: str, release: Watched,
                  timeout: float = 120) -> dict[str, str]:
    """``server``'s row the first time HAProxy shows it anything but UP (what lab did to it
    first); fails at the deadline or if lab exits first."""
    deadline = time.monotonic() + timeout
    while (row := backend_row(lab, server)).get("status", "").startswith("UP"):
        assert release.process.poll() is None, f"lab exited while {server} was {row}"
        assert time.monotonic() < deadline, f"{server} was still {row} after {timeout} s"
        time.sleep(0.05)
    return row


def test_promote_lets_a_slow_request_in_flight_finish(balanced: Lab) -> None:
    before = web_containers(balanced)
    for server in before:
        serve_slowly(balanced, server)
    request = SlowRequest(port_of(balanced))
    assert request.response.status == 200 and request.server in before
    published = int(balanced.status()[request.server]["ports"]["80"])  # the server's own nginx
    release = Watched(balanced.popen("release", "--set", "version=v3"))
    try:
        release.wait_for("promote...", timeout=600)
        # What lab does first to the old server, while the request is in flight on it, is
        # drain it; and it leaves it draining, twice in a row by HAProxy's table (a promote
        # that did not wait would put it in maintenance, or out of the pool, at once). Then,
        # with the request still going, the server is there and the release not over: an
        # order of events, whatever the machine's speed. Only then may the request end.
        for seen in (first_move_on(balanced, request.server, release),
                     backend_row(balanced, request.server)):
            assert seen.get("status") == "DRAIN" and int(seen["scur"]) >= 1, seen
        assert request.in_flight and request.server in web_containers(balanced)
        assert release.process.poll() is None, "the promote ended with a request in flight"
    finally:
        ended = get(published, path="/slow/end")[0] == 200
        if not ended:
            with contextlib.suppress(docker.errors.APIError):
                balanced.container(request.server).exec_run(["touch", "/tmp/slow-end"])
        request.wait()
        code = release.wait()
    said = release.seen + [line for line in iter(release.lines.get_nowait, None)]
    assert code == 0, said[-5:]
    assert request.error is None, f"the request was cut: {request.error!r}"
    assert request.body.endswith(b"done") and len(request.body) > len(b"done")
    assert not any("left in maintenance" in line for line in said)
    assert last_release(balanced)["outcome"] == "promoted"
    assert not web_containers(balanced) & before


# the latency gates: a version judged on its speed, with the numbers kept ----------------------


@contextlib.contextmanager
def release_rules(lab: Lab, **rules: object) -> Iterator[None]:
    """lab.yml's ``release:`` with ``rules`` added (everything else kept), put back after."""
    original = lab.read_yml()
    data = json.loads(json.dumps(original))
    data["release"] = {**data.get("release", {}), **rules}
    lab.write_yml(data)
    try:
        yield
    finally:
        lab.write_yml(original)


def verdicts_of(step: dict) -> dict[str, dict]:
    """A step's verdicts by rule (each rule is judged once a step)."""
    rules = [v["rule"] for v in step["verdicts"]]
    assert len(rules) == len(set(rules)), rules
    return {v["rule"]: v for v in step["verdicts"]}


def test_a_slow_but_correct_version_is_pulled_back_by_the_latency_gate(balanced: Lab) -> None:
    """Right pages, each about a second late (`--set slow=true`): no error for users nor for
    the balancer, so only the latency gate can say no. It does at the first step, on the new
    generation's p99 beside the old one's measured in the same step, and says it in figures."""
    before, version = web_containers(balanced), current_version(balanced)
    with release_rules(balanced, max_p99_ratio=3):
        result = balanced.run("release", "--set", "version=v6", "--set", "slow=true",
                              check=False, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    report = last_release(balanced)
    assert report["outcome"] == "rolled-back", report["reason"]
    assert report["reason"].startswith("at 10%: p99 vs old "), report["reason"]
    [step] = report["steps"]
    assert step["percent"] == 10 and step["gate"] == "p99 vs old", step
    verdicts = verdicts_of(step)
    slow = verdicts["p99 vs old"]
    assert slow["outcome"] == "failed" and slow["unit"] == "ms", slow
    assert slow["value"] > slow["limit"] and slow["value"] > 500 and slow["requests"] > 0, slow
    assert "in this step" in slow["note"], slow  # the old generation took traffic beside it
    assert verdicts["error rate"]["outcome"] == "passed", verdicts  # slow is not an error
    assert verdicts["error rate"]["requests"] > 0, verdicts
    # The reason is the failed verdict's own line: its value, limit, requests and note.
    assert report["reason"] == (
        f"at 10%: p99 vs old {slow['value']:.1f} ms > {slow['limit']:.1f} ms "
        f"({slow['requests']} requests, {slow['note']})"), (report["reason"], slow)
    # What the user reads says the same figures (a rolled-back release prints no step table:
    # its reason, on stderr, carries the verdict).
    said = " ".join((result.stdout + result.stderr).split())
    assert (f"p99 vs old {slow['value']:.1f} ms > {slow['limit']:.1f} ms "
            f"({slow['requests']} requests") in said, said[-3000:]
    assert web_containers(balanced) == before
    assert current_version(balanced) == version


def test_a_fast_version_passes_the_latency_gates_with_their_numbers_kept(balanced: Lab) -> None:
    """Every step passes every rule, each verdict kept with the requests it rests on; at
    100% the old generation takes no traffic, so its p99 from before the release stands in."""
    serving = current_version(balanced)
    with release_rules(balanced, max_p99_ms=500, max_p99_ratio=3):
        result = balanced.run("release", "--set", "version=v7", check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = last_release(balanced)
    assert report["outcome"] == "promoted", report["reason"]
    assert [s["percent"] for s in report["steps"]] == [10, 50, 100]
    for step in report["steps"]:
        verdicts = verdicts_of(step)
        assert {"error rate", "p99", "p99 vs old", "requests"} <= set(verdicts), step
        assert all(v["outcome"] == "passed" and v["requests"] > 0
                   for v in verdicts.values()), step
        assert step["gate"] == "passed", step
        assert verdicts["p99"]["limit"] == 500 and verdicts["p99"]["value"] <= 500, step
    old_p99 = [verdicts_of(s)["p99 vs old"]["note"] for s in report["steps"]]
    # The old generation is measured in the step while it answers there (at 10 % it takes
    # most of the traffic); only in a step where it answered nothing (at 100 %) does its p99
    # from before the release stand in.
    assert "in this step" in old_p99[0], old_p99
    for step, note in zip(report["steps"], old_p99, strict=True):
        answered_old = step["window"].get("versions", {}).get(serving, 0)
        assert ("in this step" in note) == (answered_old > 0), (step["percent"], note, step)
    assert "before the release" in old_p99[-1], old_p99
    # The step table says each step's verdicts (the analysis column).
    table = " ".join(result.stdout.split())
    assert "analysis" in table, result.stdout
    for step in report["steps"]:
        p99 = verdicts_of(step)["p99"]
        assert f"p99 {p99['value']:.1f} ms <= 500.0 ms ({p99['requests']} requests)" in table, (
            result.stdout)
    assert current_version(balanced) == "v7"


def test_a_paused_release_waits_for_a_person_in_another_terminal(balanced: Lab) -> None:
    """A `pause` after the 50 % step: `lab status` (another process) says paused, `lab
    promote` lets it go on; the next release, paused too, is rolled back by `lab abort`."""
    with release_rules(balanced, steps=[50, "pause", 100]):
        release = Watched(balanced.popen("release", "--set", "version=v8"))
        try:
            release.wait_for("paused at 50%", timeout=600)
            status = balanced.run("status", check=False)
            assert status.returncode == 0 and "is paused at 50% for " in status.stderr, (
                status.stderr)
            time.sleep(1)  # held, and still served at 50 %
            promoted = balanced.run("promote", check=False)
            assert promoted.returncode == 0 and "promote asked" in promoted.stderr, (
                promoted.stderr)
        finally:
            code = release.wait()
        assert code == 0, release.said()[-5:]
        report = last_release(balanced)
        assert report["outcome"] == "promoted"
        held = report["steps"][0]
        assert held["resumed_by"] == "lab promote" and held["paused"] >= 1, held
        assert current_version(balanced) == "v8"

        serving = web_containers(balanced)
        release = Watched(balanced.popen("release", "--set", "version=v9"))
        try:
            release.wait_for("paused at 50%", timeout=600)
            assert balanced.run("abort", check=False).returncode == 0
        finally:
            code = release.wait()
    assert code == 1, release.said()[-5:]
    report = last_release(balanced)
    assert (report["outcome"], report["reason"]) == (
        "rolled-back", "at 50%: aborted by `lab abort` while paused")
    assert web_containers(balanced) == serving and current_version(balanced) == "v8"
    refused = balanced.run("promote", check=False)  # nothing runs now
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "error: no release is running on this lab: nothing to promote (`lab history` lists "
        "past releases)")


SMOKE = """\
- name: Smoke test of the new generation, before any traffic
  hosts: all
  gather_facts: false
  tasks:
    - name: The page answers with the version expected
      ansible.builtin.uri:
        url: http://127.0.0.1/
        return_content: true
      register: page
      failed_when: page.content.split() | last != (expect | default(version))
    - name: Leave a mark of what the hook was told
      ansible.builtin.copy:
        dest: /tmp/hooked
        content: "{{ lab_release.hook }} {{ lab_release.generation }}\\n"
        mode: "0644"
"""


def test_a_playbook_hook_runs_on_the_new_generation_and_can_stop_the_release(
        balanced: Lab) -> None:
    """A pre-rollout playbook hook (Ansible on the new servers, told the release's facts as
    ``lab_release``): it passes and the release goes on; it fails and the release is rolled
    back before any traffic, with the failed task as the reason."""
    (balanced.dir / "playbooks" / "smoke.yml").write_text(SMOKE)
    with release_rules(balanced, hooks={"pre-rollout": {"playbook": "playbooks/smoke.yml"}}):
        balanced.run("release", "--set", "version=v10", timeout=600)
        report = last_release(balanced)
        assert report["outcome"] == "promoted" and "pre-rollout hook" in report["phases"]
        for name in report["new"]:
            mark = balanced.container(name).exec_run(["cat", "/tmp/hooked"]).output.decode()
            assert mark.split()[0] == "pre-rollout" and int(mark.split()[1]) > 1, mark

        serving = web_containers(balanced)
        failed = balanced.run("release", "--set", "version=v11", "--set", "expect=v99",
                              check=False, timeout=600)
    assert failed.returncode == 1, failed.stderr[-2000:]
    report = last_release(balanced)
    assert report["outcome"] == "rolled-back" and report["steps"] == []  # no traffic moved
    assert report["reason"].startswith("the pre-rollout hook failed: "), report["reason"]
    assert "The page answers with the version expected" in report["reason"]
    assert web_containers(balanced) == serving and current_version(balanced) == "v10"


# last: it takes the module's lab down --------------------------------------------------------


def test_destroy_with_images_leaves_nothing(balanced: Lab,
                                           docker_client: docker.DockerClient) -> None:
    assert docker_client.images.list(filters={"label": f"lab.name={balanced.name}"})
    balanced.run("destroy", "--images")
    assert docker_client.images.list(filters={"label": f"lab.name={balanced.name}"}) == []
    assert balanced.containers() == [] and balanced.networks() == []
