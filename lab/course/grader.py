"""The grader: an exercise's goals checked against an attendee's workspace, explained.

Checks are plain functions an instructor writes in ``exercises/NN-slug/checks.py``; each
receives an :class:`Attempt` (the workspace seen through lab: testinfra hosts, drift,
idempotence, the attendee's tests and files, the release history) and returns ``None`` or a
:class:`Feedback` (found, expected, what to try next). They run through the one step runner
(:mod:`lab.steps`) `lab test` and `lab demo` use: a ``workspace`` step first (a workspace that
cannot be checked says how to get back), then one step per goal, stopping at the first that
fails. ``lab exercise hint`` is a step of that runner too.

A goal that judges *how* the attendee got there, not only what their server looks like, asks
:meth:`Attempt.rebuild`: their code on fresh servers of a lab of its own (`lab test`'s cycle),
kept until the check ends and then destroyed. :func:`hidden_changes` is the judgement every
exercise about idempotence shares: a task says "changed" exactly when it changes the server.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import jinja2
import jinja2.meta
import testinfra
import yaml

from lab.access.ports import free_local_port
from lab.access.ssh import run_as_root
from lab.config import LabConfig
from lab.course.exercises import Exercise
from lab.course.workspace import Workspace
from lab.course.workspace import hint as next_hint
from lab.errors import ConfigError, LabError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import (
    CycleRuns,
    DriftReport,
    ProvisionReport,
    TestReport,
    check_idempotence,
    converge_and_verify,
    drift,
    provision,
    run_test_cycle,
)
from lab.loaded import Lab
from lab.provision import RunResult
from lab.release.journal import ReleaseReport, history
from lab.state import EventKind, LogEntry, ServerRecord, Stage
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


class _Servers:
    """Servers a check can look at: by name, as testinfra hosts, over SSH, through curl.

    :class:`Attempt` is the attendee's lab; :class:`Rebuild` is a throwaway one.
    """

    config: LabConfig
    fleet: Fleet

    @property
    def _servers(self) -> dict[str, ServerRecord]:
        raise NotImplementedError

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


class Attempt(_Servers):
    """The attendee's workspace as a check sees it: files, servers, and lab's own verbs.

    Made once per ``lab exercise check``; the servers are looked up on first use, the
    throwaway lab of :meth:`rebuild` made on first use and destroyed by :meth:`close`.
    """

    def __init__(self, workspace: Workspace, config: LabConfig,
                 on_event: Listener = ignore) -> None:
        self.workspace = workspace
        self.config = config
        self.directory = workspace.directory
        self.on_event = on_event
        self.fleet = Fleet(config, on_event)
        self._rebuild: Rebuild | None = None

    def close(self) -> None:
        try:
            if self._rebuild is not None:
                self._rebuild.close()
        finally:
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
        """Every task of a playbook (tasks, handlers, pre/post tasks, blocks), as mappings;
        a task in a block carries the block's ``changed_when`` when it has none of its own."""
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

    def last_provisioned(self, name: str) -> LogEntry | None:
        """The logbook's line saying the last `lab provision` on server ``name`` finished
        (``.at``: when), counted from the server's creation: a server made again starts
        over. None when none finished on it: what is on it was put there another way."""
        last = None
        for entry in self.events():
            if entry.server != name:
                continue
            if entry.kind == EventKind.CREATED:
                last = None
            elif entry.kind == Stage.PROVISIONED:
                last = entry
        return last

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

    def rebuild(self) -> Rebuild:
        """The attendee's code on fresh servers, made once per check (see :class:`Rebuild`):
        what their playbooks make from nothing, whatever was done by hand to their own
        servers. Destroyed when the check ends, whatever happened."""
        if self._rebuild is None:
            self._rebuild = Rebuild(self.config, self.on_event)  # close() destroys it now
            self._rebuild.build()
        return self._rebuild

    def releases(self) -> list[ReleaseReport]:
        """The lab's releases, oldest first, as their reports were saved: outcome, reason,
        vars, image, steps, traffic, old and new servers..."""
        return history(self.fleet.state)

    def events(self, kind: str | None = None) -> list[LogEntry]:
        """The lab's logbook (id, at, server, kind, detail), oldest first: what was run on
        it; only the lines of ``kind`` (an EventKind or a Stage) when given."""
        return [e for e in self.fleet.state.events() if kind is None or e.kind == kind]


# The modules that run what they are given, and so cannot know whether it changed anything.
COMMANDS = frozenset({"command", "shell", "raw", "script"})


@dataclass(frozen=True)
class TaskResult:
    """One task on one host as Ansible reported it, with the module's own result (``res``:
    ``cmd``, ``dest``, ``msg``...), read from the run's events."""

    host: str
    task: str
    action: str  # the module, without its collection: copy, shell
    status: str  # ok | changed | failed (ignored or not) | skipped | unreachable
    res: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        """The task did its work: not skipped, and not a command that `creates:` or
        `removes:` kept from running."""
        if self.status == "skipped" or self.res.get("skipped"):
            return False
        said = f"{self.res.get('msg', '')} {self.res.get('stdout', '')}"
        return not (self.action in COMMANDS and ("not run command" in said or
                                                 said.strip().startswith("skipped, since")))

    @property
    def command(self) -> str:
        """What a command task ran, in one short line ("" for other modules)."""
        cmd = self.res.get("cmd")
        shown = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd or "")
        shown = " ".join(shown.split())
        return shown if len(shown) <= 60 else shown[:57] + "..."


_STATUS = {"runner_on_ok": "ok", "runner_on_failed": "failed",
           "runner_on_unreachable": "unreachable", "runner_on_skipped": "skipped"}


def task_results(runs: list[RunResult]) -> list[TaskResult]:
    """What each task of ``runs`` did, in order, from the events ansible-runner kept in each
    run's directory (``artifacts/*/job_events``)."""
    found: list[TaskResult] = []
    for run in runs:
        files = sorted(run.run_dir.glob("artifacts/*/job_events/*.json"),
                       key=lambda p: int(p.name.split("-", 1)[0]) if p.name[0].isdigit() else 0)
        for file in files:
            try:
                event = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            status = _STATUS.get(event.get("event", ""))
            if status is None:
                continue
            data = event.get("event_data") or {}
            res = data.get("res") if isinstance(data.get("res"), dict) else {}
            if status == "ok" and res.get("changed"):
                status = "changed"
            action = str(data.get("task_action", "")).rsplit(".", 1)[-1]
            found.append(TaskResult(str(data.get("host", "?")), str(data.get("task", "?")),
                                    action, status, res))
    return found


class Rebuild(_Servers):
    """The attendee's code on fresh servers: `lab test`'s cycle (create, provision, then
    idempotence and verify side by side) in a lab of its own beside theirs (named
    ``<their lab>-check``, its state in ``.lab/check/``), so it never touches their servers.

    Kept after the cycle, so that goals can look at what the code made from nothing
    (:meth:`page`, :meth:`host`, :meth:`ssh`) and at what each run reported
    (:meth:`results`); :meth:`close` destroys it, whatever happened.
    """

    def __init__(self, config: LabConfig, on_event: Listener = ignore) -> None:
        self.config = config.beside(throwaway_name(config.name), config.state_dir / "check",
                                    listen=free_local_port())
        on_event = self.on_event = _fresh(on_event)
        self.steps = Steps(on_event)
        self.fleet = Fleet(self.config, on_event)
        self.runs = CycleRuns()
        self._live: dict[str, ServerRecord] = {}

    @property
    def _servers(self) -> dict[str, ServerRecord]:
        return self._live

    def build(self) -> Rebuild:
        fleet = self.fleet

        def create() -> None:
            fleet.destroy()  # what an interrupted check left
            fleet.up()

        self.runs = converge_and_verify(fleet, self.steps, create, on_event=self.on_event)
        if self.steps.done and self.steps.done[0].ok:
            self._live = {s.name: s for s in fleet.live()}
        return self

    def close(self) -> None:
        try:
            self.steps.run("destroy", self.fleet.destroy, always=True)
        finally:
            self.fleet.close()

    @property
    def report(self) -> TestReport:
        """The cycle as `lab test` reports it: its phases, ``ok``, ``problem``."""
        return TestReport(self.config.name, self.steps)

    @property
    def failed(self) -> Step | None:
        """The first phase that failed (create, provision, idempotence, verify), or None."""
        return next((s for s in self.steps.done if not s.ok), None)

    # What checks.py reads (exercises/README.md): each run of the cycle's report.
    @property
    def converge(self) -> ProvisionReport | None:
        return self.runs.converge

    @property
    def second(self) -> ProvisionReport | None:
        return self.runs.second

    @property
    def verified(self) -> VerifyResult | None:
        return self.runs.verified

    @property
    def converged(self) -> bool:
        """The fresh servers were made and provisioned from the code without a failure."""
        return self.converge is not None and self.converge.ok

    def results(self, phase: str = "provision") -> list[TaskResult]:
        """What each task did in the first run on the fresh servers (``provision``) or in
        the second (``idempotence``)."""
        report = self.converge if phase == "provision" else self.second
        if report is None:
            return []
        return task_results(report.runs if phase == "provision" else report.second)


def _fresh(on_event: Listener) -> Listener:
    """The throwaway lab's progress, each line marked as the fresh servers': their names are
    the attendee's (web-1), and "web-1 removed" must not read as theirs being removed."""

    def listener(event: Event) -> None:
        on_event(replace(event, message=f"fresh: {event.message}",
                         subject=event.subject and f"fresh {event.subject}"))

    return listener


def throwaway_name(name: str, suffix: str = "-check") -> str:
    """A lab name for servers made beside lab ``name``: ``<name>-check``, or when that is
    too long, the name shortened with six hex digits of it kept, so that two workspaces'
    throwaway labs never share a name."""
    if len(name) + len(suffix) <= 32:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:32 - len(suffix) - 7].rstrip('-')}-{digest}{suffix}"


# The judgement of idempotence's exercises ------------------------------------------------

_JINJA = jinja2.Environment()
EVERY_CHANGE_SAID = ("each task says changed exactly when it changes the server: on a fresh "
                     "server when it makes something, never on a second run")


def quiet_changed_when(task: dict[str, Any]) -> str:
    """Why a task's ``changed_when`` cannot tell what the task did, or "" when it may.

    It cannot when it is never true whatever the task did (``false``, ``0``, ``"{{ false
    }}"``, ``1 == 2``), or when it reads nothing of what the task did: no variable its own
    ``register:`` names. A ``changed_when`` that reads it may still lie; only running the
    task on a fresh server tells (:func:`hidden_changes`).
    """
    if "changed_when" not in task:
        return ""
    value = task["changed_when"]
    conditions = [c for c in (value if isinstance(value, list) else [value]) if c is not None]
    register = task.get("register")
    reads = elsewhere = False
    for condition in conditions:  # all of them must be true: one never true is enough
        names, truth = _condition(condition)
        if names is None:
            return ""  # not an expression: Ansible fails the task, and the run says so
        if truth is False:
            return "it is never true"
        reads = reads or (isinstance(register, str) and register in names)
        elsewhere = elsewhere or bool(names)
    if reads or not elsewhere:  # reads the task's result; or always true, which a second
        return ""               # run shows, or a constant plain Jinja cannot work out
    return ("it reads nothing the task did (no variable its `register:` names)" if register
            else "it reads nothing the task did (the task has no `register:`)")


def _condition(condition: Any) -> tuple[set[str] | None, bool | None]:
    """The variables a condition reads (None when it does not parse) and, for a constant,
    its truth (None when it reads variables, or cannot be worked out)."""
    if isinstance(condition, bool | int | float):
        return set(), bool(condition)
    expression = str(condition).strip()
    if expression.startswith("{{") and expression.endswith("}}"):
        expression = expression[2:-2].strip()
    try:
        names = jinja2.meta.find_undeclared_variables(_JINJA.parse(f"{{{{ ({expression}) }}}}"))
    except jinja2.TemplateError:
        return None, None
    if names:
        return set(names), None
    try:
        return set(), bool(_JINJA.compile_expression(expression)())
    except Exception:  # an Ansible filter or test plain Jinja does not have
        return set(), None


def hidden_changes(attempt: Attempt, playbook: str) -> Feedback | None:
    """A task that changes the server and says it did not: the way past an idempotence check
    without making a task idempotent. Read first in the playbook (a ``changed_when`` that
    cannot tell, :func:`quiet_changed_when`), then on fresh servers (:meth:`Attempt.rebuild`):
    a task that did its work there, where there was everything to do, and said it changed
    nothing, had its change hidden. Both 02 and 08 judge idempotence this way."""
    tasks = attempt.tasks(playbook)
    for task in tasks:
        why = quiet_changed_when(task)
        if why:
            name = _task_name(task)
            return Feedback(
                found=f"the task '{name}' says `changed_when: {_shown(task['changed_when'])}`, "
                      f"and {why}: it hides the task's change from the idempotence check "
                      "instead of not making it",
                expected=EVERY_CHANGE_SAID, next=_unhide(name))
    said = {_task_name(t) for t in tasks if "changed_when" in t}
    for result in attempt.rebuild().results("provision"):
        if result.status == "ok" and result.ran and (
                result.task in said or result.action in COMMANDS):
            what = f" (`{result.command}`)" if result.command else ""
            return Feedback(
                found=f"on a fresh server, '{result.task}' did its work{what} and said it "
                      "changed nothing: its `changed_when:` hides the change",
                expected=EVERY_CHANGE_SAID, next=_unhide(result.task))
    return None


def _unhide(name: str) -> str:
    return (f"remove `changed_when` from '{name}' and let a module that compares first do its "
            "work (ansible.builtin.copy with `content:` for a file, ansible.builtin.apt with "
            "`state: present` for a package)")


def _task_name(task: dict[str, Any]) -> str:
    name = task.get("name")
    if isinstance(name, str) and name:
        return name
    keywords = {"args", "become", "changed_when", "failed_when", "ignore_errors", "notify",
                "register", "tags", "vars", "when", "loop", "with_items"}
    return next((str(k) for k in task if k not in keywords), "?")


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


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
    failed = report.first_failure
    workspace.state.record_exercise(  # the goal `lab exercise hint` then gives hints for
        exercise.id, check=report.ok,
        failing=failed.name if failed is not None and failed.name in exercise.checks else None)
    return report


SHOWN = "shown"  # a hint step's expected outcome; "none left" once every hint was shown


def hint(workspace: Workspace, on_event: Listener = ignore) -> Step:
    """The next hint, as a step of the runner ``check`` and `lab demo` use: named ``hint
    N/TOTAL``, its text in the detail, its number in the figures (and ``goal``, the check of
    the goal it helps with, when it is one of that goal's: the first goal the last check
    failed); counted in progress. Once every hint was shown, the step's outcome is ``none
    left``, and its detail says where to go from there."""
    _, hints, used = workspace.exercise.hints_for(workspace.progress)
    total = len(hints)
    steps = Steps(on_event)

    def show() -> Outcome:
        given = next_hint(workspace)
        return Outcome(SHOWN if given.number else "none left", given.text,
                       {"hint": given.number, "of": given.of}
                       | ({"goal": given.goal.check} if given.goal else {}))

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


def _flatten(tasks: Any, inherited: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        if "block" in task:
            passed = dict(inherited or {})
            if "changed_when" in task:
                passed["changed_when"] = task["changed_when"]
            for key in ("block", "rescue", "always"):
                found += _flatten(task.get(key), passed)
        else:
            found.append({**(inherited or {}), **task})
    return found
