"""A workspace's results, sent to its class's page; and joining a class.

Reporting is best effort: a check's outcome is the attendee's, whether or not the class
hears of it. :func:`send` waits at most :data:`TIMEOUT` seconds, never raises, and says what
went wrong through a ``debug`` event only. Joining is the opposite: ``lab class join`` is
asked for, so its failures are errors that say what to do.

Requests go straight to the class's URL (no proxy from the environment: the class is on
this machine or this room's network).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.classroom.membership import Membership, find, save
from lab.errors import PrerequisiteError, UsageError
from lab.events import Event, Listener, ignore

if TYPE_CHECKING:
    from lab.course.grader import CheckReport
    from lab.course.workspace import Workspace

TIMEOUT = 2.0  # seconds: a check must not wait on the class noticeably longer than this
JOIN_TIMEOUT = 10.0
MAX_FEEDBACK = 4000  # what the server takes (lab.classroom.web.ReportBody)


def report_check(workspace: Workspace, report: CheckReport, on_event: Listener = ignore) -> bool:
    """Send a check's result to the workspace's class, if it has one."""
    failed = report.first_failure
    goals = [{"check": g["check"], "status": g["status"]} for g in report.to_dict()["goals"]]
    return _report(workspace, "check", on_event, passed=report.ok, goals=goals,
                   failing="" if failed is None else failed.name,
                   feedback=report.problem[:MAX_FEEDBACK])


def report_hint(workspace: Workspace, on_event: Listener = ignore) -> bool:
    """Tell the class a hint was read (the count travels with every report)."""
    return _report(workspace, "hint", on_event)


def report_start(workspace: Workspace, on_event: Listener = ignore) -> bool:
    """Tell the class the workspace is on a (new) exercise."""
    return _report(workspace, "start", on_event)


def _report(workspace: Workspace, kind: str, on_event: Listener, **fields: Any) -> bool:
    membership = find(workspace.directory)
    if membership is None:
        return False
    try:
        progress = workspace.progress
        payload = {"code": membership.code, "student": membership.name,
                   "token": membership.token, "exercise": workspace.exercise.number,
                   "exercise_id": workspace.exercise.id, "kind": kind,
                   "hints": progress.hints, "seconds": round(progress.seconds, 1)} | fields
    except Exception as exc:  # a report must never fail the command it follows
        on_event(Event("debug", f"no report to the class: {exc!r}"))
        return False
    return send(membership.url, payload, on_event)


def send(url: str, payload: dict[str, Any], on_event: Listener = ignore,
         timeout: float = TIMEOUT) -> bool:
    """POST a report to the class at ``url``: True when it was stored. Never raises."""
    try:
        _post(f"{url.rstrip('/')}/api/report", payload, timeout)
        return True
    except Exception as exc:
        on_event(Event("debug", f"the class at {url} did not take the report: {_why(exc)}"))
        return False


def join(url: str, code: str, name: str, file: Path,
         timeout: float = JOIN_TIMEOUT) -> Membership:
    """Join the class at ``url`` as ``name`` and save the membership in ``file``. Joining
    again as the same name, to the same class, from the same file sends the token the
    first join gave (the server gives a joined name to no one else)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"URL: must start with http:// or https://, got {url!r}")
    before = _read(file)
    token = before.token if before and before.url == url and before.name == name.strip() \
        else None
    try:
        answer = _post(f"{url}/api/join", {"code": code, "name": name, "token": token},
                       timeout)
    except urllib.error.HTTPError as exc:
        reason = _server_reason(exc)
        if exc.code == 403:
            raise UsageError(f"{url} refused the join code: check --code with your "
                             "instructor") from None
        if 400 <= exc.code < 500:
            raise UsageError(f"{url} refused to join: {reason}") from None
        raise PrerequisiteError(f"{url} answered {exc.code}: {reason}") from None
    except (OSError, ValueError) as exc:
        raise PrerequisiteError(f"cannot reach the class at {url}: {_why(exc)} (is "
                                "`lab class serve` running there, and the URL right?)") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("token", 0), str | None):
        raise PrerequisiteError(f"{url} did not answer as a lab class does (is it the "
                                "page of `lab class serve`?)")
    membership = Membership(url, code, str(answer.get("student", name)), answer["token"])
    save(membership, file)
    return membership


def _read(file: Path) -> Membership | None:
    try:
        return Membership(**json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _post(url: str, payload: dict[str, Any], timeout: float) -> Any:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as answer:
        return json.loads(answer.read(64 * 1024))


def _server_reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read(4096))["error"])
    except Exception:
        return exc.reason if isinstance(exc.reason, str) else str(exc)


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"{exc.code} {_server_reason(exc)}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
