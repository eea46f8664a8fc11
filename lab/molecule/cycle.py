"""`lab test` on a role's Molecule scenario: Molecule's test sequence, on lab's servers.

The scenario's ``test_sequence`` (Molecule's default: dependency, cleanup, destroy, syntax,
create, prepare, converge, idempotence, side_effect, verify, cleanup, destroy) is run as
lab's steps, with the scenario's own playbooks, in its order; the actions lab does not run
yet are named in a note, as is each playbook the scenario does not have (skipped, as
Molecule skips it, or for converge, lab's converge that applies the role by name). When
idempotence is followed straight by verify, they run side by side, as in `lab test`: a
second converge that changes nothing cannot disturb the tests, and one that does has failed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException, ImageNotFound

from lab.docker.engine import docker_client
from lab.errors import TargetError
from lab.events import Event, Listener, ignore
from lab.fleet import Fleet
from lab.harness import DestroyPolicy, TestReport, end_cycle, idempotence_problem
from lab.molecule.inventory import molecule_env, write_ephemeral
from lab.molecule.platforms import ImageLabels, Server, scenario_lab, servers_for
from lab.molecule.scenario import Scenario, ephemeral_directory
from lab.molecule.verifier import run_testinfra, testinfra_tests
from lab.provision import RunResult, run_playbook, runs_problem
from lab.state import ServerRecord, Stage
from lab.steps import FAILED, OK, Outcome, Steps

DEFAULT_CONVERGE = """\
# Written by lab: the scenario has no converge.yml, so its role is applied by name.
- name: Converge
  hosts: all
  tasks:
    - name: "Include {role}"
      ansible.builtin.include_role:
        name: "{role}"
"""


@dataclass
class Plan:
    """What lab runs of a scenario's test_sequence, in order, and what it says it does not."""

    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    destroy: bool = True  # the sequence ends by destroying its instances


def plan(scenario: Scenario) -> Plan:
    """The steps lab runs: ``create`` first (the destroys before it are lab's removal of what
    an earlier run left), then the sequence's actions up to its next destroy, less those
    the scenario has nothing for, each said in a note."""
    sequence = scenario.sequence
    result = Plan(destroy=False)
    if "create" not in sequence:
        result.notes.append("create: not in scenario.test_sequence; lab makes the "
                            "instances first all the same")
    start = sequence.index("create") if "create" in sequence else -1
    unsupported = [a for a in sequence[: start + 1] if a not in ("destroy", "create")]
    result.steps.append("create")
    for action in sequence[start + 1:]:
        if action == "destroy":
            result.destroy = True
            break
        if action not in ("prepare", "converge", "idempotence", "side_effect", "verify"):
            unsupported.append(action)
        elif _runs(scenario, action, result.notes):
            result.steps.append(action)
    if unsupported:
        result.notes.append(f"not run by lab yet: {', '.join(dict.fromkeys(unsupported))} "
                            "(in scenario.test_sequence)")
    if not result.destroy:
        result.notes.append("destroy: not in scenario.test_sequence after create; the "
                            "instances are kept, as Molecule would keep them")
    return result


def _runs(scenario: Scenario, action: str, notes: list[str]) -> bool:
    """Whether the scenario has something for ``action``; a note when it runs otherwise."""
    where = scenario.directory.relative_to(scenario.project)
    verifier = scenario.verifier
    if action in ("prepare", "side_effect") and scenario.playbooks[action] is None:
        notes.append(f"{action}: no {action}.yml in {where}, skipped as Molecule skips it")
        return False
    if action == "converge" and scenario.playbooks["converge"] is None:
        notes.append(f"converge: no converge.yml in {where}; lab applies role "
                     f"{scenario.role.name} to all instances")
    if action == "verify" and not verifier.enabled:
        notes.append("verify: the verifier is disabled (verifier.enabled)")
        return False
    if action == "verify" and verifier.name == "ansible" and scenario.playbooks["verify"] is None:
        notes.append(f"verify: no verify.yml in {where}, skipped as Molecule skips it")
        return False
    if action == "verify" and verifier.name == "testinfra" and not testinfra_tests(scenario):
        notes.append(f"verify: no test_*.py in {where / verifier.directory}, skipped as "
                     "Molecule skips it")
        return False
    return True


def run_scenario(scenario: Scenario, destroy: DestroyPolicy = "always",
                 overrides: dict[str, Any] | None = None, on_event: Listener = ignore,
                 image_labels: ImageLabels | None = None) -> TestReport:
    """Run the scenario's test sequence on fresh servers, one per platform; what cannot be
    run (an image lab has no server for) is a ConfigError before anything is made."""
    servers = servers_for(scenario, image_labels or local_image_labels)
    config = scenario_lab(scenario, servers)
    todo = plan(scenario)
    steps = Steps(on_event)
    report = TestReport(config.name, steps, [s.note for s in servers if s.note] + todo.notes)
    for note in report.notes:
        on_event(Event("phase", note))
    with _environment(molecule_env(scenario)), Fleet(config, on_event) as fleet:
        run = _Run(scenario, servers, fleet, overrides or {}, on_event)
        try:
            fleet.destroy()  # what an earlier, interrupted run left
            _run_steps(steps, todo.steps, run)
        finally:
            remedy = f"`lab test --scenario {scenario.name}` (which removes them first)"
            if todo.destroy:
                end_cycle(fleet, report, destroy, on_event, remedy)
            else:
                on_event(Event("phase", f"kept servers of {config.name} (no destroy in "
                                        f"scenario.test_sequence); remove them with {remedy}"))
    return report


def _run_steps(steps: Steps, names: list[str], run: _Run) -> None:
    bodies: dict[str, Callable[[], Any]] = {
        "create": run.create, "prepare": lambda: run.play("prepare"),
        "converge": lambda: run.play("converge"), "idempotence": run.idempotence,
        "side_effect": lambda: run.play("side_effect"), "verify": run.verify}
    index = 0
    while index < len(names):
        name = names[index]
        if names[index: index + 2] == ["idempotence", "verify"]:
            steps.run_together({"idempotence": run.idempotence, "verify": run.verify})
            index += 2
        else:
            steps.run(name, bodies[name])
            index += 1
        if not steps.ok:
            return


class _Run:
    """One scenario's servers and the playbooks and tests run on them."""

    def __init__(self, scenario: Scenario, servers: list[Server], fleet: Fleet,
                 overrides: dict[str, Any], on_event: Listener) -> None:
        self.scenario, self.servers, self.fleet = scenario, servers, fleet
        self.overrides, self.on_event = overrides, on_event
        self.hosts: dict[str, ServerRecord] = {}  # lab's server of each platform
        self.inventory = Path()

    def create(self) -> None:
        made = {record.role: record for record in self.fleet.up()}
        self.hosts = {s.platform: made[s.role] for s in self.servers}
        self.inventory = write_ephemeral(self.scenario, self.hosts, self.fleet.key)

    def playbook(self, action: str, label: str | None = None) -> RunResult:
        path = self.scenario.playbooks[action]
        if path is None:  # plan() leaves out every other step the scenario has nothing for
            path = self._default_converge()
        return run_playbook(path, self.inventory, self.fleet.config.state_dir / "runs",
                            list(self.hosts), self.overrides, label=label or action,
                            on_event=self.on_event,
                            nearby=all(s.nearby for s in self.hosts.values()))

    def play(self, action: str) -> str:
        result = self.playbook(action)
        if action == "converge":
            failed = {f.host for f in result.failures}
            self._mark(failed, Stage.FAILED, result.run_id)
            if result.ok:
                self._mark(set(self.hosts), Stage.PROVISIONED, result.run_id)
        return playbook_problem(result)

    def idempotence(self) -> str:
        return idempotence_problem([self.playbook("converge", "idempotence")])

    def verify(self) -> Outcome:
        if self.scenario.verifier.name == "ansible":
            result = self.playbook("verify")
            return Outcome() if result.ok else Outcome(FAILED, playbook_problem(result))
        run_dir = self.fleet.config.state_dir / "runs" / \
            f"{time.strftime('%Y%m%d-%H%M%S')}-verify-{os.getpid()}"
        found = run_testinfra(self.scenario, testinfra_tests(self.scenario), run_dir)
        failed = {o.host for o in found.failures}
        self._mark(failed, Stage.VERIFY_FAILED)
        self._mark(set(self.hosts) - failed, Stage.VERIFIED)
        return Outcome(OK if found.ok else FAILED, found.failed_tests,
                       {"passed": found.passed, "failed": len(found.failures)})

    def _default_converge(self) -> Path:
        path = ephemeral_directory(self.scenario.project, self.scenario.name) / "converge.yml"
        path.write_text(DEFAULT_CONVERGE.format(role=self.scenario.role.name), encoding="utf-8")
        return path

    def _mark(self, platforms: set[str], stage: Stage, detail: str = "") -> None:
        names = [self.hosts[p].name for p in sorted(platforms) if p in self.hosts]
        self.fleet.mark(names, stage, detail)


def playbook_problem(result: RunResult) -> str:
    """A run's failed tasks in one line, or when Ansible stopped before any task (a role it
    cannot find, a playbook that does not parse), its own error line; "" when it went well."""
    if result.ok:
        return ""
    if not result.failures:
        for stdout in sorted(result.run_dir.glob("artifacts/*/stdout")):
            text = stdout.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if line.startswith(("[ERROR]:", "ERROR!")):
                    message = line.split(":" if line.startswith("[") else "!", 1)[1].strip()
                    return f"{result.playbook.name}: {message} (see {stdout})"
    return runs_problem([result])


def local_image_labels(image: str) -> dict[str, str] | None:
    """The labels of ``image`` on this machine's engine; None when it is not here."""
    client = docker_client()
    try:
        return dict(client.images.get(image).labels or {})
    except ImageNotFound:
        return None
    except DockerException as exc:
        raise TargetError(f"the engine could not say whether image {image} is here: "
                          f"{exc}") from None
    finally:
        client.close()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Molecule's variables in lab's environment while the scenario runs: ansible-runner
    starts each playbook with a copy of it (lab's own settings on top), and pytest inherits
    it, as Molecule starts ansible-playbook and pytest with them. Put back afterwards."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
