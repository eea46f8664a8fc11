"""The grader: an exercise's goals checked against an attendee's workspace, explained.

Checks are plain functions an instructor writes in ``exercises/NN-slug/checks.py``; each
receives an :class:`Attempt` (the workspace seen through lab: testinfra hosts, drift,
idempotence, the attendee's tests and files, the release history) and returns ``None`` or a
:class:`Feedback` (found, expected, what to try next). They run through the one step runner
(:mod:`lab.steps`) `lab test` and `lab demo` use: a ``workspace`` step first (a workspace that
cannot be checked says how to get back), then one step per goal, stopping at the first that
fails. ``lab exercise hint`` is a step of that runner too.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import testinfra
import yaml

from lab.access.ssh import run_as_root
from lab.config import LabConfig
from lab.course.exercises import Exercise
from lab.course.workspace import Workspace
from lab.course.workspace import hint as next_hint
from lab.errors import ConfigError, LabError
from lab.events import Listener, ignore
from lab.fleet import Fleet
from lab.harness import (
    DriftReport,
    ProvisionReport,
    TestReport,
    check_idempotence,
    drift,
    provision,
    run_test_cycle,
)
from lab.loaded import Lab
from lab.release.journal import ReleaseReport, history
from lab.state import LogEntry, ServerRecord
from lab.steps import FAILED, OK, Outcome, Step, Steps
from lab.verify import VerifyResult, check_test_files, verify_lab

BACK = "`lab exercise reset` brings back the start (your files are kept in .lab/backups/)"


@dataclass(frozen=True)
class Feedback:
    """Why a goal is not met, for a person: what was found, what was expected, what to try."""

    found: str
    expected: str = ""
    next: str = ""

    @property
    def ok(self) -> bool:
        return False

    @property
    def problem(self) -> str:
        parts = [self.found, self.expected and f"expected: {self.expected}",
                 self.next and f"next: {self.next}"]
        return "; ".join(p for p in parts if p)

    def outcome(self) -> Outcome:
        return Outcome(FAILED, self.problem, {"found": self.found, "expected": self.expected,
                                              "next": self.next})


class Attempt:
    """The attendee's workspace as a check sees it: files, servers, and lab's own verbs.

    Made once per ``lab exercise check``; the servers are looked up on first use.
    """

    def __init__(self, workspace: Workspace, config: LabConfig,
                 on_event: Listener = ignore) -> None:
        self.workspace = workspace
        self.config = config
        self.directory = workspace.directory
        self.on_event = on_event
        self.fleet = Fleet(config, on_event)

    def close(self) -> None:
        self.fleet.close()

    # files -------------------------------------------------------------------------------

    def read(self, path: str) -> str | None:
        file = self.directory / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def yaml(self, path: str) -> Any:
        text = self.read(path)
        return None if text is None else _parse_yaml(text, path)

    def started_files(self, path: str) -> str | None:
        """``path`` as start/ had it (the lab's name filled in)."""
        file = self.workspace.pristine / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def tasks(self, path: str) -> list[dict[str, Any]]:
        """Every task of a playbook (tasks, handlers, pre/post tasks, blocks), as mappings."""
        plays = self.yaml(path) or []
        found: list[dict[str, Any]] = []
        for play in plays if isinstance(plays, list) else []:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                found += _flatten(play.get(key) if isinstance(play, dict) else None)
        return found

    # servers -----------------------------------------------------------------------------

    @cached_property
    def _servers(self) -> dict[str, ServerRecord]:
        servers = self.fleet.live()
        self.fleet.lab.write_inventory(servers, self.fleet.key)
        return {s.name: s for s in servers}

    def server_names(self, role: str | None = None) -> list[str]:
        return [n for n, s in self._servers.items() if role is None or s.role == role]

    def host(self, name: str) -> testinfra.host.Host:
        server = self._servers[name]
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(
            self.config.state_dir / "ssh_config"), sudo=server.ssh_user != "root")

    def ssh(self, name: str, command: str) -> tuple[int, str]:
        result = run_as_root(self._servers[name], self.fleet.key, command)
        return result.returncode, (result.stdout + result.stderr).strip()

    def page(self, name: str, path: str = "/") -> str:
        """What the server's web server answers on port 80, or "" when nothing answers."""
        status, text = self.ssh(name, f"curl -sS --max-time 5 http://127.0.0.1{path}")
        return text if status == 0 else ""

    def through_balancer(self, path: str = "/") -> str:
        """What a user gets through the lab's balancer (a GET from this machine, as the
        release's probe sends), or "" when nothing answers or the answer is an error."""
        balancer = self.fleet.lab.open_balancer(list(self._servers.values()), self.fleet.key)
        if balancer is None:
            return ""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(balancer.url.rstrip("/") + path, timeout=5) as answer:
                return str(answer.read().decode("utf-8", "replace")).strip()
        except (OSError, ValueError):
            return ""

    # lab's verbs -------------------------------------------------------------------------

    def drift(self) -> DriftReport:
        return drift(self.fleet, on_event=self.on_event)

    def idempotence(self) -> ProvisionReport:
        return check_idempotence(self.fleet, on_event=self.on_event)

    def provision(self) -> ProvisionReport:
        return provision(self.fleet, on_event=self.on_event)

    def run_tests(self, names: list[str] | None = None) -> VerifyResult:
        """The attendee's testinfra tests (lab.yml's ``tests:``) against every server, or
        the ``names`` ones."""
        everyone = list(self._servers.values())
        servers = [s for s in everyone if names is None or s.name in names]
        return verify_lab(self.fleet.lab, servers, self.fleet.key, self.on_event, None, everyone)

    def test_cycle(self) -> TestReport:
        return run_test_cycle(self.config, on_event=self.on_event)

    def releases(self) -> list[ReleaseReport]:
        """The lab's releases, oldest first, as their reports were saved: outcome, reason,
        vars, image, steps, traffic, old and new servers..."""
        return history(self.fleet.state)

    def events(self, kind: str | None = None) -> list[LogEntry]:
        """The lab's logbook (id, at, server, kind, detail), oldest first: what was run on
        it; only the lines of ``kind`` (an EventKind or a Stage) when given."""
        return [e for e in self.fleet.state.events() if kind is None or e.kind == kind]


@dataclass
class CheckReport:
    """``lab exercise check``: the workspace step, then a step per goal."""

    exercise: Exercise
    steps: Steps = field(default_factory=Steps)
    goals: dict[str, str] = field(default_factory=dict)  # step name -> the goal's words

    @property
    def ok(self) -> bool:
        return self.steps.ok and len(self.steps.done) == len(self.exercise.spec.goals) + 1

    @property
    def problem(self) -> str:
        failed = self.first_failure
        return "" if failed is None else failed.detail or failed.outcome

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps.done if not s.ok), None)

    def to_dict(self) -> dict[str, Any]:
        done = {s.name: s for s in self.steps.done}
        goals = []
        for goal in self.exercise.spec.goals:
            step = done.get(goal.check)
            entry: dict[str, Any] = {"check": goal.check, "goal": goal.goal,
                                     "status": "not checked" if step is None else
                                     "pass" if step.ok else "FAIL"}
            if step is not None:
                entry |= {"seconds": round(step.seconds, 2)} | (
                    {} if step.ok else {"feedback": step.detail} | step.figures)
            goals.append(entry)
        workspace = done.get("workspace")
        return {"exercise": self.exercise.id, "title": self.exercise.title, "ok": self.ok,
                "workspace": None if workspace is None or workspace.ok else workspace.detail,
                "goals": goals}


def check(workspace: Workspace, on_event: Listener = ignore) -> CheckReport:
    """Every goal of the workspace's exercise, in order; recorded in progress."""
    exercise = workspace.exercise
    report = CheckReport(exercise, Steps(on_event))
    attempt: Attempt | None = None

    def ready() -> Outcome:
        nonlocal attempt
        found = _workspace_problem(workspace)
        if isinstance(found, Feedback):
            return found.outcome()
        attempt = Attempt(workspace, found, on_event)
        return Outcome()

    try:
        report.steps.run("workspace", ready)
        for goal in exercise.spec.goals:
            function = exercise.checks[goal.check]
            report.steps.run(goal.check, lambda f=function: _goal(f, attempt))
    finally:
        if attempt is not None:
            attempt.close()
    workspace.state.record_exercise(exercise.id, check=report.ok)
    return report


SHOWN = "shown"  # a hint step's expected outcome; "none left" once every hint was shown


def hint(workspace: Workspace, on_event: Listener = ignore) -> Step:
    """The next hint, as a step of the runner ``check`` and `lab demo` use: named ``hint
    N/TOTAL``, its text in the detail, its number in the figures; counted in progress.
    Once every hint was shown, the step's outcome is ``none left``, and its detail says
    where to go from there."""
    total = len(workspace.exercise.spec.hints)
    used = workspace.progress.hints
    steps = Steps(on_event)

    def show() -> Outcome:
        number, text = next_hint(workspace)
        return Outcome(SHOWN if number else "none left", text, {"hint": number, "of": total})

    step = steps.run(f"hint {used + 1}/{total}" if used < total else "hint", show, SHOWN)
    assert step is not None  # the only step: never skipped
    return step


def _goal(function: Any, attempt: Attempt | None) -> Outcome:
    """One goal's check; whatever goes wrong inside it is that goal's failure, in words."""
    assert attempt is not None
    try:
        found = function(attempt)
    except LabError as exc:
        return Feedback(str(exc), next=BACK if "not running" in str(exc) else "").outcome()
    except Exception as exc:
        return Feedback(f"the check could not finish: {exc}", next=BACK).outcome()
    if isinstance(found, Feedback):
        return found.outcome()
    if isinstance(found, str) and found:
        return Feedback(found).outcome()
    return Outcome(OK)


def _workspace_problem(workspace: Workspace) -> LabConfig | Feedback:
    """The attendee's lab config, or why the workspace cannot be checked at all."""
    try:
        config = workspace.config()
        for role in config.servers.values():
            if role.playbook is not None:
                _parse_yaml((config.directory / role.playbook).read_text(encoding="utf-8"),
                            str(role.playbook))
        check_test_files(Lab.resolve(config), list(config.servers))
    except ConfigError as exc:
        return Feedback(f"the workspace cannot be checked: {exc}",
                        "files lab can read", f"fix that line, or {BACK}")
    if not any(a.do == "up" for a in workspace.exercise.spec.start):
        return config
    try:
        with Fleet(config) as fleet:
            servers = fleet.status()
    except LabError as exc:
        return Feedback(f"the workspace's servers cannot be reached: {exc}", next=BACK)
    for role, spec in config.servers.items():
        running = [s for s in servers if s.role == role and not s.gone]
        if len(running) < spec.count:
            gone = [s.name for s in servers if s.role == role and s.gone]
            what = f"{', '.join(gone)} not running" if gone else "none running"
            return Feedback(f"the exercise's {role} servers are gone: {what}",
                            f"{spec.count} running, as the exercise started them", BACK)
    return config


def _parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{label}{where}: not valid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None


def _flatten(tasks: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        if "block" in task:
            for key in ("block", "rescue", "always"):
                found += _flatten(task.get(key))
        else:
            found.append(task)
    return found

