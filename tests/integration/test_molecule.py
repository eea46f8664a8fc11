"""`lab test` in a role's folder runs its Molecule scenarios unchanged.

The role is tests/fixtures/molecule/ansible-role-motd, in Molecule's layout, with three
scenarios, run side by side (one `lab test --scenario` each) and asserted on together:
- default: two platforms (groups, children, group and host vars), prepare.yml, converge.yml
  naming the role ``labfix.motd``, a testinfra test reading MOLECULE_INVENTORY_FILE;
- verify-playbook: no converge.yml, a side_effect.yml and the ansible verifier's verify.yml;
- not-idempotent: its own test_sequence, a converge that changes on every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import docker
import pytest
from labhelpers import TIMEOUT, lab_command

ROLE = Path(__file__).resolve().parents[1] / "fixtures" / "molecule" / "ansible-role-motd"
SCENARIOS = ("default", "verify-playbook", "not-idempotent")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
         test_run_label: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each scenario's `lab test --json` (stdout: the report; stderr: progress), in a copy
    of the role, all at once."""
    role = tmp_path_factory.mktemp("roles") / ROLE.name
    shutil.copytree(ROLE, role)
    started = {name: subprocess.Popen(lab_command("test", "--json", "--scenario", name),
                                      cwd=role, stdin=subprocess.DEVNULL, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name in SCENARIOS}
    done = {}
    for name, proc in started.items():
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done


def left_behind(client: docker.DockerClient, scenario: str) -> list[str]:
    """The containers of a scenario's lab (named after the role and the scenario)."""
    found = client.containers.list(all=True, filters={"label": f"lab.name=motd-{scenario}-test"})
    return [container.name for container in found]


def report(run: subprocess.CompletedProcess[str]) -> dict:
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout)


def phases(run: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {phase["name"]: phase for phase in report(run)["phases"]}


def test_a_role_s_scenarios_pass_as_under_molecule(
        runs: dict[str, subprocess.CompletedProcess[str]],
        docker_client: docker.DockerClient) -> None:
    default, playbook = runs["default"], runs["verify-playbook"]
    assert default.returncode == 0, default.stderr
    assert list(phases(default)) == ["create", "prepare", "converge", "idempotence", "verify",
                                     "destroy"]
    assert all(phase["ok"] for phase in phases(default).values())
    # the testinfra test ran twice on each of the two instances, and passed
    assert phases(default)["verify"]["figures"] == {"passed": 4, "failed": 0}
    notes = report(default)["notes"]
    assert ("platform motd-web: geerlingguy/docker-debian12-ansible:latest is not on this "
            "machine and lab pulls no image: using lab/base:bookworm (Debian 12) instead"
            in notes)
    assert "not run by lab yet: dependency, cleanup, syntax (in scenario.test_sequence)" in notes

    assert playbook.returncode == 0, playbook.stderr
    assert list(phases(playbook)) == ["create", "converge", "idempotence", "side_effect",
                                      "verify", "destroy"]
    assert "converge: no converge.yml in molecule/verify-playbook; lab applies role " \
           "labfix.motd to all instances" in report(playbook)["notes"]
    assert "task: The default greeting, with the host's name" in playbook.stderr
    assert left_behind(docker_client, "default") == left_behind(docker_client,
                                                                "verify-playbook") == []


def test_an_idempotence_failure_names_host_and_task(
        runs: dict[str, subprocess.CompletedProcess[str]],
        docker_client: docker.DockerClient) -> None:
    run = runs["not-idempotent"]
    assert run.returncode == 1, run.stderr
    found = report(run)
    assert found["problem"] == ("idempotence failed: not idempotent: changed on the second "
                                "run: motd-stamp: Stamp the time")
    assert list(phases(run)) == ["create", "converge", "idempotence", "destroy"]
    assert phases(run)["destroy"]["ok"]
    assert left_behind(docker_client, "not-idempotent") == []
