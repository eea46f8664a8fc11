"""The class's server over real HTTP on 127.0.0.1: joins, reports, the grid, and every
hostile request refused with a 4xx, nothing stored, the server still answering.

The server runs in this process (uvicorn in a thread, :func:`lab.classroom.web.running`);
the last test runs the real `lab class serve` as a subprocess.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ctrlc import interruptible

from lab.classroom.config import Classroom, load_class
from lab.classroom.reporter import send
from lab.classroom.store import open_store
from lab.classroom.web import MAX_BODY, running

CODE = "k7f3-q9x2"
CLASS_YML = f"""\
name: autumn-workshop
code: {CODE}
students: [alice, bob]
exercises: [1, 2]
"""


@pytest.fixture
def classroom(tmp_path: Path) -> Classroom:
    (tmp_path / "class.yml").write_text(CLASS_YML)
    return load_class(tmp_path)


@pytest.fixture
def url(classroom: Classroom) -> Iterator[str]:
    with running(classroom) as found:
        yield found


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        data = answer.read()
        shown = json.loads(data) if answer.getheader("content-type", "").startswith(
            "application/json") else data.decode()
        return answer.status, shown, {k.lower(): v for k, v in answer.getheaders()}
    finally:
        connection.close()


def post(url: str, path: str, payload: Any) -> tuple[int, Any]:
    status, data, _ = request(url, "POST", path, json.dumps(payload).encode(),
                              {"Content-Type": "application/json"})
    return status, data


def a_report(**changes: Any) -> dict[str, Any]:
    return {"code": CODE, "student": "alice", "exercise": 1, "exercise_id": "01-pet-server",
            "kind": "check", "passed": False, "failing": "page_changed",
            "goals": [{"check": "page_changed", "status": "FAIL"}],
            "feedback": "still serves \"Welcome to the shop\"", "hints": 1,
            "seconds": 120.0} | changes


def the_grid(url: str) -> dict[str, Any]:
    status, grid, _ = request(url, "GET", "/api/grid")
    assert status == 200
    return grid


def test_a_report_reaches_the_grid(url: str) -> None:
    assert post(url, "/api/report", a_report())[0] == 201
    grid = the_grid(url)
    alice = grid["students"][0]
    assert alice["student"] == "alice" and alice["current"] == 1
    assert alice["cells"]["1"] == {"state": "working", "checks": 1, "hints": 1,
                                   "seconds": alice["cells"]["1"]["seconds"]}
    assert alice["feedback"] == "still serves \"Welcome to the shop\""
    assert grid["stuck"][0]["check"] == "page_changed"
    assert post(url, "/api/report", a_report(passed=True, failing="", feedback=""))[0] == 201
    assert the_grid(url)["students"][0]["cells"]["1"]["state"] == "passed"


def test_join_gives_a_token_that_the_students_reports_then_need(url: str) -> None:
    status, joined = post(url, "/api/join", {"code": CODE, "name": "dave"})
    assert status == 200 and joined["student"] == "dave" and joined["token"]
    assert post(url, "/api/report", a_report(student="dave"))[0] == 403
    assert post(url, "/api/report", a_report(student="dave", token="guess"))[0] == 403
    assert post(url, "/api/report", a_report(student="dave", token=joined["token"]))[0] == 201
    # The same name again: only with its token (the same workspace joining again).
    assert post(url, "/api/join", {"code": CODE, "name": "dave"})[0] == 409
    again = post(url, "/api/join", {"code": CODE, "name": "dave", "token": joined["token"]})
    assert again == (200, joined | {"token": joined["token"]})
    # A student class.yml lists joins from a laptop with no token: the code is enough, as
    # for the workspaces `lab class up` makes.
    assert post(url, "/api/join", {"code": CODE, "name": "alice"}) == (
        200, {"class": "autumn-workshop", "student": "alice", "token": None})
    assert post(url, "/api/report", a_report())[0] == 201


HOSTILE: list[tuple[str, str, bytes, int]] = [
    ("bad JSON", "/api/report", b'{"code": "k7f3-q9x2", "student": ', 400),
    ("not an object", "/api/report", b"[1, 2]", 422),
    ("wrong code", "/api/report", json.dumps(a_report(code="guess-1234")).encode(), 403),
    ("wrong code at join", "/api/join", b'{"code": "guess-1234", "name": "eve"}', 403),
    ("unknown student", "/api/report", json.dumps(a_report(student="mallory")).encode(), 404),
    ("missing field", "/api/report", json.dumps(
        {k: v for k, v in a_report().items() if k != "kind"}).encode(), 422),
    ("unknown field", "/api/report", json.dumps(a_report(admin=True)).encode(), 422),
    ("unknown kind", "/api/report", json.dumps(a_report(kind="delete")).encode(), 422),
    ("oversized feedback", "/api/report", json.dumps(a_report(feedback="x" * 5000)).encode(),
     422),
    ("oversized name", "/api/join", json.dumps({"code": CODE, "name": "n" * 65}).encode(), 422),
    ("control characters in a name", "/api/join",
     json.dumps({"code": CODE, "name": "a\x1b[2Jb"}).encode(), 422),
    ("text reversed in a name", "/api/join",
     json.dumps({"code": CODE, "name": "alice\u202etxt.exe"}).encode(), 422),
    ("exercise not in the class", "/api/report", json.dumps(a_report(exercise=4,
     exercise_id="04-drift")).encode(), 422),
    ("too many goals", "/api/report", json.dumps(a_report(
        goals=[{"check": "g", "status": "pass"}] * 51)).encode(), 422),
    ("not UTF-8", "/api/report", b'{"code": "\xff\xfe"}', 400),
    ("nested too deep", "/api/report", b"[" * 60000 + b"]" * 60000, 413),
    ("nested deep, within the limit", "/api/report", b"[" * 30000 + b"]" * 30000, 400),
]


@pytest.mark.parametrize(("path", "body", "status"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_a_hostile_request_is_refused_and_nothing_stored(
        url: str, classroom: Classroom, path: str, body: bytes, status: int) -> None:
    before = the_grid(url)["version"]
    answer, data, headers = request(url, "POST", path, body, {"Content-Type": "application/json"})
    assert answer == status, data
    assert isinstance(data["error"], str) and data["error"]
    assert "content-security-policy" in headers
    assert the_grid(url)["version"] == before  # the server answers; nothing was stored
    assert open_store(classroom).reports() == []


def test_a_body_not_declared_as_json_is_refused(url: str) -> None:
    """What a form on another site could post from the instructor's own browser."""
    before = the_grid(url)["version"]
    for media in ("text/plain", "application/x-www-form-urlencoded", ""):
        status, data, _ = request(url, "POST", "/api/report", json.dumps(a_report()).encode(),
                                  {"Content-Type": media} if media else {})
        assert status == 415, (media, data)
    assert the_grid(url)["version"] == before


def test_on_loopback_a_request_by_another_name_is_refused(url: str) -> None:
    """A name of another site's that resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    status, _, _ = request(url, "GET", "/api/grid", headers={"Host": "evil.example"})
    assert status == 400
    status, _, _ = request(url, "POST", "/api/report", json.dumps(a_report()).encode(),
                              {"Host": "evil.example", "Content-Type": "application/json"})
    assert status == 400
    assert request(url, "GET", "/api/grid", headers={"Host": "localhost"})[0] == 200
    assert the_grid(url)["version"] == 2


def raw_exchange(url: str, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and only ``body`` of what it announces; the server's answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes: it does not wait
            answer += chunk
    return answer


def test_a_one_megabyte_body_is_refused_without_being_read(url: str) -> None:
    """Its Content-Length says 1 MB; only 1 KB is sent: a server reading it all would wait
    (and the socket time out) instead of answering 413."""
    head = (b"POST /api/report HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1048576\r\n\r\n")
    answer = raw_exchange(url, head, b"{" + b" " * 1023)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert the_grid(url)["version"] == 2


def test_a_chunked_body_over_the_limit_is_refused(url: str) -> None:
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // 8192 + 1))
    head = (b"POST /api/report HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer = raw_exchange(url, head, body)  # no final chunk: the server stops at the limit
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert the_grid(url)["version"] == 2


def test_sql_and_html_in_fields_are_stored_as_inert_text(url: str, classroom: Classroom) -> None:
    name = "<script>alert(1)</script>"
    feedback = "'); DROP TABLE reports; -- <img src=x onerror=alert(2)>"
    status, joined = post(url, "/api/join", {"code": CODE, "name": name})
    assert status == 200
    assert post(url, "/api/report", a_report(student=name, token=joined["token"],
                                              feedback=feedback, failing="<b>x</b>"))[0] == 201
    grid = the_grid(url)
    [shown] = [s for s in grid["students"] if s["student"] == name]
    assert shown["feedback"] == feedback
    assert [r.feedback for r in open_store(classroom).reports()] == [feedback]
    # The page itself carries no data: the script builds it with textContent.
    status, page, headers = request(url, "GET", "/")
    assert status == 200 and name not in page and "script-src 'self'" in \
        headers["content-security-policy"]
    _, script, _ = request(url, "GET", "/page.js")
    assert "innerHTML" not in script and "textContent" in script


def test_send_never_raises_and_gives_up_quickly_when_nobody_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        seen = []
        assert send(f"http://127.0.0.1:{port}", a_report(), seen.append) is False
    assert seen and seen[0].kind == "debug"


def test_lab_class_serve_keeps_the_class_across_a_restart(tmp_path: Path,
                                                         classroom: Classroom) -> None:
    """The real command: serves on the port class.yml names, stops on Ctrl-C with 130, and
    the next start shows what the first one stored; `lab class status` reads it too."""
    port = free_port()
    (tmp_path / "class.yml").write_text(CLASS_YML + f"serve: {{port: {port}}}\n")
    url = f"http://127.0.0.1:{port}"
    first = start_serving(tmp_path, url)
    assert send(url, a_report()) is True
    stop(first, expect=130)
    second = start_serving(tmp_path, url)
    try:
        assert the_grid(url)["students"][0]["cells"]["1"]["checks"] == 1
    finally:
        stop(second, expect=130)
    status = subprocess.run([sys.executable, "-m", "lab", "class", "status", str(tmp_path),
                             "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["students"][0]["feedback"].startswith("still serves")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serving(directory: Path, url: str) -> subprocess.Popen[str]:
    # Ctrl-C stops it as in a terminal, also when the suite runs with SIGINT ignored.
    process = interruptible([sys.executable, "-m", "lab", "class", "serve", str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    for _ in range(300):  # until it answers (or exits)
        if process.poll() is not None:
            raise AssertionError(f"lab class serve exited: {process.communicate()}")
        try:
            the_grid(url)
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("lab class serve did not answer")


def stop(process: subprocess.Popen[str], expect: int) -> None:
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == expect, err
    assert "Ctrl-C stops" in out
