"""Configure servers with Ansible, through ansible-runner: provision, idempotence, drift.

Each run keeps everything under ``.lab/runs/<id>/`` (ansible-runner's artifacts: stdout and
every event), and is summarised from ansible-runner's per-task events rather than the recap
text, so a changed or failed task is named with its host, whatever stdout callback is set.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.access.ansiblecfg import ansible_env
from lab.access.keys import KeyPair
from lab.access.knownhosts import refusal_note
from lab.access.ssh import MULTIPLEX
from lab.docker.cache import missing_packages_hint
from lab.events import Event, Listener, ignore
from lab.loaded import Lab
from lab.state import ServerRecord

# Fast by default: pipelining and the connection lab already holds to each server (see
# lab.access.ssh.SHARED_CONNECTION), no retry files, facts gathered only when a play asks and cached
# between runs.
ANSIBLE_ENV = {
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_SSH_ARGS": " ".join(MULTIPLEX),
    # Checked, against .lab/known_hosts (the inventory's ssh args): "False" would make
    # Ansible put StrictHostKeyChecking=no ahead of them, and ssh takes the first.
    "ANSIBLE_HOST_KEY_CHECKING": "True",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_GATHERING": "smart",
    "ANSIBLE_CACHE_PLUGIN": "jsonfile",
    "ANSIBLE_DEPRECATION_WARNINGS": "False",
    "ANSIBLE_SYSTEM_WARNINGS": "False",
    "ANSIBLE_FORCE_COLOR": "False",
    "ANSIBLE_NOCOLOR": "True",
}
# lab's own callbacks: lab_service_mgr puts ansible_service_mgr=systemd among the facts of
# lab's servers, so the service action does not run the setup module before each service task
# to learn it; lab_module_cache keeps the payloads Ansible builds for its own modules between
# runs (in module_store()), so a run does not build apt, copy or systemd again.
CALLBACKS = Path(__file__).parent / "data" / "ansible" / "callback"


def module_store() -> Path:
    """Where lab_module_cache keeps module payloads: the user's cache, shared by every lab."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lab" / "ansible-modules"


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class TaskOutcome:
    """One task on one host: what happened, and the module's message or diff."""

    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""
    diff: str = ""
    handler: bool = False  # a handler: it runs because another task changed something


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    playbook: Path
    hosts: dict[str, HostStats] = field(default_factory=dict)
    tasks: list[TaskOutcome] = field(default_factory=list)
    rc: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failures

    @property
    def failures(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.status in ("failed", "unreachable")]

    @property
    def changed(self) -> list[TaskOutcome]:
        return [t for t in self.tasks if t.status == "changed"]


def run_playbook(
    playbook: Path,
    inventory: Path,
    runs_dir: Path,
    hosts: list[str],
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    label: str = "provision",
    on_event: Listener = ignore,
    cancel: threading.Event | None = None,
    project: Path | None = None,
    nearby: bool = False,
) -> RunResult:
    """Run ``playbook`` on ``hosts`` and return what each task did on each host.

    ``project``: the lab's directory, where Ansible looks for the user's ``ansible.cfg``
    (lab.access.ansiblecfg); None: the user's configuration is not looked for. ``nearby``: the hosts
    are reached over loopback, where module payloads three times larger cost nothing, so
    they go with their bytecode (lab_module_cache)."""
    import ansible_runner

    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(run_id, run_dir, playbook)
    collector = _EventCollector(result, on_event)
    started = time.monotonic()
    env = ANSIBLE_ENV | {
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_dir(runs_dir.parent)),
        # Every host lab provisions was seen running systemd (lab.access.ssh.wait_until_ready).
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "lab_service_mgr,lab_module_cache",
        "LAB_SYSTEMD_HOSTS": ",".join(hosts),
        "LAB_MODULE_STORE": str(module_store()),
        "LAB_MODULE_BYTECODE": "1" if nearby else "",
        # ansible-playbook comes with lab's Python, whether or not its venv is activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if project is not None:  # the user's ansible.cfg, and their callbacks beside lab's
        env = ansible_env(project, env)
    runner = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=str(playbook.resolve()),
        inventory=str(inventory.resolve()),
        limit=",".join(hosts),
        forks=max(1, len(hosts)),
        extravars=extravars or {},
        envvars=env,
        cmdline="--check --diff" if check else None,
        quiet=True,
        event_handler=collector,
        cancel_callback=(lambda: cancel.is_set()) if cancel else None,
        settings={"suppress_ansible_output": True},
    )
    result.rc = runner.rc if runner.rc is not None else 1
    result.seconds = time.monotonic() - started
    for host in hosts:
        result.hosts.setdefault(host, HostStats())
    return result


_FACT_FILE = re.compile(r"^s\d+_")


def facts_dir(state_dir: Path) -> Path:
    """Where Ansible caches the facts it gathered, one file per server (``ANSIBLE_GATHERING``
    is ``smart``: a play that asks for facts gathers them once, later runs read them)."""
    return state_dir / "facts"


def forget_facts(state_dir: Path, names: list[str] | None = None) -> None:
    """Drop the cached facts of servers that are gone (all of them when ``names`` is None): a
    server made later under the same name (once ``.lab/state.db`` was deleted) must not
    inherit the old one's facts (addresses, packages) for a day, and a lab's facts do not
    pile up, one file per server it ever had."""
    doomed = None if names is None else set(names)
    for path in facts_dir(state_dir).glob("*"):
        # The jsonfile plugin names a file after the host, with a format prefix (s1_web-1).
        host = _FACT_FILE.sub("", path.name)
        if doomed is None or host in doomed:
            path.unlink(missing_ok=True)


class _EventCollector:
    """Turns ansible-runner's event dicts into TaskOutcomes and lab Events as they arrive."""

    STATUS: ClassVar[dict[str, str]] = {
        "runner_on_ok": "ok",
        "runner_on_failed": "failed",
        "runner_on_unreachable": "unreachable",
        "runner_on_skipped": "skipped",
    }

    def __init__(self, result: RunResult, on_event: Listener) -> None:
        self.result = result
        self.on_event = on_event
        self.handlers: set[str] = set()  # handler tasks, by uuid and by name

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.on_event(Event("task", f"task: {data.get('task', '?')}"))
        elif kind == "playbook_on_handler_task_start":
            self.handlers.add(data.get("task_uuid", ""))
            self.on_event(Event("task", f"handler: {data.get('task', '?')}"))
        elif kind == "playbook_on_notify":  # how ansible-core 2.19 names a handler to come
            self.handlers.add(data.get("handler", ""))
        elif kind in self.STATUS:
            self._outcome(kind, data)
        elif kind == "playbook_on_stats":
            self._stats(data)
        return True

    def _outcome(self, kind: str, data: dict[str, Any]) -> None:
        res = data.get("res") or {}
        status = self.STATUS[kind]
        if status == "failed" and data.get("ignore_errors"):
            status = "ok"
        if status == "ok" and res.get("changed"):
            status = "changed"
        outcome = TaskOutcome(
            host=data.get("host", "?"),
            task=data.get("task", "?"),
            status=status,
            message=_message(res) if status in ("failed", "unreachable") else "",
            diff=_render_diff(res.get("diff")),
            handler=bool({data.get("task_uuid"), data.get("task")} & self.handlers),
        )
        self.result.tasks.append(outcome)
        self.on_event(Event("task-result", f"{outcome.host}: {outcome.task}: {status}",
                            subject=outcome.host, data={"status": status}))

    def _stats(self, data: dict[str, Any]) -> None:
        names = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
                 "skipped": "skipped"}
        for key, attribute in names.items():
            for host, count in (data.get(key) or {}).items():
                stats = self.result.hosts.setdefault(host, HostStats())
                setattr(stats, attribute, count)


def _message(res: dict[str, Any]) -> str:
    # Packages apt could not fetch (offline, not in lab's cache) are named in a sentence that
    # says what to do, read from the whole message rather than its first 400 characters.
    hint = missing_packages_hint(" ".join(str(res.get(key) or "") for key in
                                          ("msg", "stderr", "stdout")))
    if hint:
        return hint
    for key in ("msg", "stderr", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            return refusal_note(str(value)) or " ".join(str(value).split())[:400]
    return "failed (no message; see the run's stdout)"


def _render_diff(diff: Any) -> str:
    """ansible's diff (a dict or a list of dicts with before/after) as a unified diff."""
    if not diff:
        return ""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if "prepared" in part:
            out.append(str(part["prepared"]).rstrip())
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = _dict_lines(before), _dict_lines(after)
        lines = difflib.unified_diff(
            str(before).splitlines(), str(after).splitlines(),
            fromfile=str(part.get("before_header", "running server")),
            tofile=str(part.get("after_header", "code")), lineterm="",
        )
        out.extend(lines)
    return "\n".join(out)


def _dict_lines(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value or "")
    return "\n".join(f"{k}: {v}" for k, v in sorted(value.items()))



def provision_lab(
    lab: Lab,
    servers: list[ServerRecord],
    key: KeyPair,
    overrides: dict[str, Any] | None = None,
    check: bool = False,
    on_event: Listener = ignore,
    everyone: list[ServerRecord] | None = None,
) -> list[RunResult]:
    """Run each role's playbook on ``servers`` of that role, lab.yml's ``vars`` as extra vars.

    ``everyone`` (default: ``servers``) goes into the inventory, so a playbook sees the
    whole lab (the balancer lists its backends) while only ``servers`` are changed.
    """
    config = lab.config
    inventory = lab.write_inventory(everyone or servers, key)
    extravars = config.vars | (overrides or {})
    jobs = []
    for role_name, role in lab.roles.items():
        members = [s.name for s in servers if s.role == role_name]
        if members and role.playbook is not None:
            on_event(Event("role", f"{'checking' if check else 'provisioning'} {role_name}: "
                                   f"{', '.join(members)}", subject=role_name))
            jobs.append((config.directory / role.playbook, members))
    # Roles run side by side. Each run is in a worker thread, so ansible-runner leaves the
    # main thread's Ctrl-C handling alone; on Ctrl-C the runs are cancelled, then it goes on.
    cancel = threading.Event()
    nearby = all(s.nearby for s in servers)
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = [pool.submit(run_playbook, playbook, inventory, config.state_dir / "runs",
                               members, extravars, check, "drift" if check else "provision",
                               on_event, cancel, config.directory, nearby)
                   for playbook, members in jobs]
        try:
            return [future.result() for future in futures]
        except BaseException:
            cancel.set()
            raise


def runs_problem(results: list[RunResult]) -> str:
    """One line naming each failed host, its task and the module's message."""
    failures = [f for r in results for f in r.failures]
    if not failures:
        failed = [r for r in results if not r.ok]
        return "; ".join(f"ansible-playbook exited {r.rc}, see {r.run_dir}" for r in failed)
    shown = "; ".join(f"{f.host}: task '{f.task}' {f.status}: {f.message}" for f in failures[:3])
    more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
    return f"{shown}{more}; full run in {results[0].run_dir}"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are read as YAML scalars (``2`` is a number)."""
    import yaml

    from lab.errors import UsageError

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--set {pair!r}: expected key=value with a variable name as key")
        overrides[key.strip()] = yaml.safe_load(value) if value else ""
    return overrides
